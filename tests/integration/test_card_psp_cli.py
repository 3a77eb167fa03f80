"""etika card transact --issuer psp: card, kernel, PIN pad and acquirer, each a real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import free_port

# One pytest-xdist worker runs the whole module: its tests share the acquirers (a module
# fixture), which each worker would otherwise start again.
pytestmark = [pytest.mark.network, pytest.mark.hardware, pytest.mark.xdist_group("card_psp_cli")]

ETIKA = [sys.executable, "-m", "terminal.cli.main"]


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"simulator exited early: {process.stdout.read() if process.stdout else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def acquirers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default profile with its ISO 8583 acquirers moved to free ports, and those started."""
    from tests.conftest import DEFAULT_PROFILE_DIR

    profile = tmp_path_factory.mktemp("acquirers") / "profile"
    shutil.copytree(DEFAULT_PROFILE_DIR, profile)
    routing = profile / "routing.toml"
    text = routing.read_text()
    processes = []
    try:
        for old in ("8583", "8584", "8585"):
            port = free_port()
            text = re.sub(rf"^port = {old}$", f"port = {port}", text, flags=re.MULTILINE)
            process = subprocess.Popen(
                [*ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            processes.append(process)
            _wait_for_port(port, process)
        routing.write_text(text)
        yield profile
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()


@pytest.fixture
def pinpad_process_factory() -> Iterator[object]:
    """Start `etika sim pinpad --pin PIN` processes; yields a function giving the pty path."""
    processes: list[subprocess.Popen[str]] = []

    def start(pin: str) -> str:
        process = subprocess.Popen([*ETIKA, "sim", "pinpad", "--pin", pin],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"/dev/pts/\d+", first_line)
        assert match, f"no pty path in {first_line!r}"
        return match.group(0)

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def _transact(profile: Path, data_dir: Path, amount: str, *extra: str,
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    return subprocess.run(
        [*ETIKA, "--profile", str(profile), "--data-dir", str(data_dir), "card", "transact",
         "--amount", amount, "--issuer", "psp", "--json", *extra],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )


@pytest.mark.parametrize(
    ("card",           "pin",  "interface",   "cryptogram", "decision",         "arc"),
    [
        ("visa-credit",    "1234", "contact",     "TC",         "approved_online",  "00"),
        ("visa-credit",    "9999", "contact",     "AAC",        "declined_online",  "55"),
        ("domestic-visa",  None,   "contact",     "TC",         "approved_online",  "00"),
        ("visa-credit",    None,   "contactless", "ARQC",       "approved_online",  "00"),
    ],
)
def test_online_authorisation_through_the_acquirer(
    acquirers: Path, data_dir: Path, pinpad_process_factory: object, card: str,
    pin: str | None, interface: str, cryptogram: str, decision: str, arc: str,
) -> None:
    """An ARQC goes through the profile's route to the ISO 8583 acquirer and back to the card."""
    extra = ["--simulated", card]
    if pin is not None:
        extra += ["--pinpad", pinpad_process_factory(pin)]  # type: ignore[operator]
    if interface == "contactless":
        extra.append("--contactless")
    # Above the floor limit (contact) and the card's contactless offline limit: online.
    result = _transact(acquirers, data_dir, "750.00" if interface == "contact" else "120.00",
                       *extra)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["first_cryptogram"], answer["cryptogram"], answer["decision"], answer["arc"]) \
        == ("ARQC", cryptogram, decision, arc)
    if interface == "contact":
        assert answer["cvm"] == ("online_pin" if pin else "signature")
