"""Where the key store is: module path, SoftHSM2 configuration, token label and PINs.

The token lives under the data directory (``<data-dir>/softhsm/softhsm2.conf`` pointing at
``<data-dir>/softhsm/tokens/``). SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the module is
loaded, so :func:`ensure_softhsm_conf` must run before the first ``pkcs11.lib(...)``.

PINs never travel on a command line: the user PIN comes from ``ETIKA_HSM_PIN`` or the 0600
file ``<data-dir>/hsm-pin``; the security officer's from ``ETIKA_HSM_SO_PIN`` or
``<data-dir>/hsm-so-pin``. ``etika hsm init`` creates both files with random PINs if absent.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hsm.errors import PinMissingError, SoftHsmConfInvalidError

__all__ = [
    "DEFAULT_MODULE",
    "DEFAULT_TOKEN_LABEL",
    "HsmSettings",
    "ensure_pin_file",
    "ensure_softhsm_conf",
    "read_pin",
    "softhsm_conf_path",
    "softhsm_conf_text",
]

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_TOKEN_LABEL = "etika-terminal"  # noqa: S105 (a label, not a secret)

USER_PIN_FILE = "hsm-pin"
SO_PIN_FILE = "hsm-so-pin"
USER_PIN_ENV = "ETIKA_HSM_PIN"
SO_PIN_ENV = "ETIKA_HSM_SO_PIN"
MODULE_ENV = "ETIKA_PKCS11_MODULE"


def softhsm_conf_path(data_dir: Path) -> Path:
    return data_dir / "softhsm" / "softhsm2.conf"


def softhsm_conf_text(data_dir: Path) -> str:
    """The configuration ``scripts/setup`` writes, byte for byte."""
    tokens = (data_dir / "softhsm" / "tokens").resolve()
    return (
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )


def ensure_softhsm_conf(data_dir: Path, environ: dict[str, str] | None = None) -> Path:
    """Write the data directory's SoftHSM2 configuration if absent; set ``SOFTHSM2_CONF``.

    An explicit ``SOFTHSM2_CONF`` already in the environment wins (an operator pointing at
    another token directory). Returns the configuration in force.
    """
    env = os.environ if environ is None else environ
    if env.get("SOFTHSM2_CONF"):
        return Path(env["SOFTHSM2_CONF"])
    conf = softhsm_conf_path(data_dir)
    tokens = data_dir / "softhsm" / "tokens"
    try:
        tokens.mkdir(parents=True, exist_ok=True)
        os.chmod(tokens.parent, 0o700)
        os.chmod(tokens, 0o700)
        if not conf.exists():
            conf.write_text(softhsm_conf_text(data_dir))
    except OSError as exc:
        raise SoftHsmConfInvalidError(
            f"cannot prepare the token directory {tokens} and its {conf.name}: "
            f"{exc.strerror or exc}; {tokens.parent} must be a writable directory "
            "(move aside whatever file is in the way)",
            path=str(tokens),
        ) from exc
    _check_softhsm_conf(conf, tokens)
    env["SOFTHSM2_CONF"] = str(conf.resolve())
    return conf


def _check_softhsm_conf(conf: Path, tokens: Path) -> None:
    """Refuse a configuration SoftHSM2 would ignore (it falls back to the system one)."""
    remedy = (f"move it aside and run etika hsm init, which writes one pointing at "
              f"{tokens.resolve()}")
    try:
        text = conf.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SoftHsmConfInvalidError(f"cannot read {conf}: {reason}; {remedy}",
                                 path=str(conf)) from exc
    tokendir = None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "directories.tokendir":
            tokendir = value.strip()
    if not tokendir:
        raise SoftHsmConfInvalidError(
            f"{conf} is not a SoftHSM2 configuration (no directories.tokendir line); {remedy}",
            path=str(conf),
        )
    if not Path(tokendir).is_dir():
        raise SoftHsmConfInvalidError(
            f"{conf}: directories.tokendir {tokendir} is not a directory (was the data "
            f"directory moved?); {remedy}",
            path=str(conf),
        )


def read_pin(
    data_dir: Path, *, so: bool = False, environ: Mapping[str, str] | None = None
) -> str:
    """The user (or SO) PIN from the environment or the data directory's PIN file."""
    env = os.environ if environ is None else environ
    name, filename = (SO_PIN_ENV, SO_PIN_FILE) if so else (USER_PIN_ENV, USER_PIN_FILE)
    value = env.get(name)
    if value:
        return value
    path = data_dir / filename
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PinMissingError(
            f"no {'SO' if so else 'user'} PIN: {path} does not exist and {name} is not set; "
            "run etika hsm init",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PinMissingError(
            f"cannot read the PIN file {path}: {reason}; it must hold the token's "
            f"{'SO' if so else 'user'} PIN on one line (or set {name})",
            path=str(path),
        ) from exc
    if not value:
        raise PinMissingError(f"the PIN file {path} is empty; delete it and run etika hsm init",
                         path=str(path))
    return value


def ensure_pin_file(data_dir: Path, *, so: bool = False) -> Path | None:
    """Create the 0600 PIN file with a random 16-digit PIN if absent; its path if created."""
    path = data_dir / (SO_PIN_FILE if so else USER_PIN_FILE)
    if path.exists():
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    pin = "".join(secrets.choice("0123456789") for _ in range(16))
    # O_EXCL + mode 0600 at creation: the PIN is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pin + "\n")
    return path


@dataclass(frozen=True)
class HsmSettings:
    """Everything needed to open the key store; the PIN is kept out of ``repr``."""

    data_dir: Path
    module: str = DEFAULT_MODULE
    token_label: str = DEFAULT_TOKEN_LABEL
    user_pin: str | None = field(default=None, repr=False)

    @classmethod
    def from_data_dir(
        cls,
        data_dir: Path,
        *,
        module: str | None = None,
        token_label: str = DEFAULT_TOKEN_LABEL,
        environ: Mapping[str, str] | None = None,
    ) -> HsmSettings:
        """Settings for the token under ``data_dir``; ``module`` beats ``ETIKA_PKCS11_MODULE``."""
        env = os.environ if environ is None else environ
        return cls(
            data_dir=data_dir,
            module=module or env.get(MODULE_ENV) or DEFAULT_MODULE,
            token_label=token_label,
        )

    def pin(self) -> str:
        return self.user_pin if self.user_pin is not None else read_pin(self.data_dir)
