"""``etika hsm init``: create the token if absent, then its keys if absent.

python-pkcs11 0.10.1 has no ``C_InitToken`` (it has ``init_pin``/``set_pin`` only), so the
token is created with SoftHSM's own ``softhsm2-util --init-token --free``. That tool takes
PINs either on its command line, where ``ps`` shows them to every user of the machine, or
by prompting on a terminal (it refuses a pipe). We give it a pseudo-terminal of its own and
answer its prompts there: the PINs never appear in any process's argv or environment.

Creating a token on a real HSM is the vendor's key ceremony, not ours: for a module other
than SoftHSM2, a missing token is reported and nothing is created.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pkcs11.exceptions as p11

from hsm import session as sess
from hsm.config import HsmSettings, ensure_pin_file, ensure_softhsm_conf, read_pin
from hsm.errors import TokenInitFailedError, TokenMissingError, map_pkcs11_error
from hsm.keystore import KeyStore

__all__ = ["InitResult", "init_token", "token_present"]

INIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class InitResult:
    token_created: bool
    keys_created: list[str]
    pin_files: list[str]


def token_present(settings: HsmSettings) -> bool:
    lib = sess.load_module(settings.module)
    with sess.PKCS11_LOCK:
        try:
            return any(t.label == settings.token_label for t in lib.get_tokens())
        except p11.PKCS11Error as exc:
            raise map_pkcs11_error(exc, where="listing the tokens") from exc


def _is_softhsm(module: str) -> bool:
    return "softhsm" in Path(module).name.lower()


def _answer_prompts(argv: list[str], so_pin: str, user_pin: str, timeout: float) -> str:
    """Run ``argv`` on a new pseudo-terminal, typing the PIN each prompt asks for."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                close_fds=True, start_new_session=True)
    finally:
        os.close(slave)
    transcript = b""
    pending = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed its side of the terminal
                    break
                if not chunk:
                    break
                transcript += chunk
                pending += chunk
                text = pending.decode("utf-8", "replace")
                if text.rstrip().endswith(":") and "PIN" in text:
                    pin = so_pin if "SO PIN" in text else user_pin
                    os.write(master, pin.encode() + b"\n")
                    pending = b""
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise TokenInitFailedError(f"{argv[0]} did not finish within {timeout:.0f} s")
        proc.wait(timeout=5)
    finally:
        os.close(master)
    # The tool echoes '*' for each PIN digit, never the PIN itself.
    output = transcript.decode("utf-8", "replace").replace("\r", "")
    if proc.returncode != 0:
        raise TokenInitFailedError(
            f"{Path(argv[0]).name} failed (exit {proc.returncode}): "
            f"{output.strip().splitlines()[-1] if output.strip() else 'no output'}",
            exit_status=proc.returncode,
        )
    return output


def create_softhsm_token(settings: HsmSettings, so_pin: str, user_pin: str) -> None:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise TokenInitFailedError(
            "softhsm2-util is not installed; install softhsm2 (scripts/setup)")
    for pin in (so_pin, user_pin):
        if not 4 <= len(pin) <= 255:
            raise TokenInitFailedError("SoftHSM2 PINs are 4 to 255 characters; fix the PIN file")
    _answer_prompts([tool, "--init-token", "--free", "--label", settings.token_label],
                    so_pin, user_pin, INIT_TIMEOUT_S)


def _reload(module: str) -> None:
    """Make an already-loaded module see a token created by another process."""
    with sess.PKCS11_LOCK:
        lib = sess._modules.get(module)
        if lib is None:
            return
        if any(count for (mod, _), count in sess._open_sessions.items() if mod == module):
            raise TokenInitFailedError(
                "the token was created but this process has sessions open on the module; "
                "restart it to see the new token"
            )
        lib.reinitialize()


def init_token(settings: HsmSettings) -> InitResult:
    """Idempotent: create PIN files, the token and version 1 of each key, if absent."""
    ensure_softhsm_conf(settings.data_dir)
    pin_files = []
    for so in (False, True):
        env = "ETIKA_HSM_SO_PIN" if so else "ETIKA_HSM_PIN"
        if not (settings.user_pin if not so else None) and not os.environ.get(env):
            path = ensure_pin_file(settings.data_dir, so=so)
            if path is not None:
                pin_files.append(str(path))
    created = False
    if not token_present(settings):
        if not _is_softhsm(settings.module):
            raise TokenMissingError(settings.token_label)
        user_pin = settings.pin()
        create_softhsm_token(settings, read_pin(settings.data_dir, so=True), user_pin)
        _reload(settings.module)
        created = True
    with KeyStore.open(settings) as store:
        keys_created = store.ensure_keys()
    return InitResult(token_created=created, keys_created=keys_created, pin_files=pin_files)

