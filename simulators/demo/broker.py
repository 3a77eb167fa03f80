"""Mosquitto from the configuration and ACLs the project ships (``edge_sync/broker/``).

:func:`write_mosquitto_conf` is the one writer of that configuration for a broker on
loopback: the demo fleet (:func:`start_mosquitto`) and the tests' fixture
(``tests/fixtures/mosquitto.py``) both start theirs from it, so the broker the tests check
is the one the demo runs.

Mosquitto takes its ports from its configuration and cannot be handed a bound socket, so a
free port can be taken by another process between the moment it is chosen and Mosquitto's
bind. :func:`start_mosquitto` therefore retries with fresh ports when Mosquitto reports
"Address already in use", a bounded number of times.
"""

from __future__ import annotations

import getpass
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_sync.pki import TestPki
from simulators.demo.processes import DemoError, Processes, free_port, wait_for_port

__all__ = ["ADDRESS_IN_USE", "BROKER_DIR", "start_mosquitto", "write_mosquitto_conf"]

#: The shipped broker configuration (``mosquitto.conf`` with ``@NAME@`` markers) and ACLs.
BROKER_DIR = Path(__file__).resolve().parents[2] / "edge_sync" / "broker"
#: What Mosquitto logs when a listener's port is taken (strerror of EADDRINUSE).
ADDRESS_IN_USE = "Address already in use"
#: What Mosquitto 2 logs (log type ``notice``) once every listener is open.
_RUNNING = " running"


def write_mosquitto_conf(path: Path, *, pki: TestPki, persistence: Path, terminal_port: int,
                         platform_port: int, log_file: Path, host: str = "127.0.0.1",
                         extra: Sequence[str] = ()) -> Path:
    """Write the shipped ``mosquitto.conf`` to ``path`` with its markers filled in: both
    listeners on ``host``, the broker certificate of ``pki``, the shipped ACLs, persistence
    in ``persistence`` (created), the log in ``log_file``; ``extra`` lines are appended."""
    persistence.mkdir(parents=True, exist_ok=True)
    values = {
        "PERSISTENCE": str(persistence),
        "TERMINAL_PORT": str(terminal_port),
        "TERMINAL_HOST": host,
        "PLATFORM_PORT": str(platform_port),
        "PLATFORM_HOST": host,
        "CA_FILE": str(pki.ca_pem),
        "CERT_FILE": str(pki.broker_pem),
        "KEY_FILE": str(pki.broker_key),
        "ACL_DIR": str(BROKER_DIR),
    }
    conf = (BROKER_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    for name, value in values.items():
        conf = conf.replace(f"@{name}@", value)
    # Our own user: run as root, Mosquitto would switch to "mosquitto", who cannot read our
    # files (certificates, ACLs in the checkout, a temporary directory).
    lines = [f"user {getpass.getuser()}", f"log_dest file {log_file}", *extra]
    path.write_text(conf.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _log_since(log_file: Path, offset: int) -> str:
    try:
        with log_file.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _wait_running(process: subprocess.Popen[str], log_file: Path, offset: int,
                  timeout_s: float) -> bool:
    """True once Mosquitto logs that it runs; False when it exited first. A port that
    accepts connections proves nothing here: it may be whoever took it from us."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _RUNNING in _log_since(log_file, offset):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise DemoError(f"Mosquitto did not start within {timeout_s:.0f} s (see {log_file})")


def start_mosquitto(processes: Processes, binary: str, directory: Path, pki: TestPki, *,
                    log: Path, ports: Callable[[], int] = free_port, attempts: int = 5,
                    timeout_s: float = 30.0) -> tuple[subprocess.Popen[str], int, int]:
    """Start Mosquitto from the shipped configuration in ``directory`` (its configuration,
    log and persistence) on two ports drawn from ``ports``; ``(process, terminal port,
    platform port)``. A port taken before Mosquitto binds it means fresh ports and another
    try, ``attempts`` times at most; any other failure ends at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    conf, log_file = directory / "mosquitto.conf", directory / "mosquitto.log"
    taken: list[str] = []
    for _attempt in range(attempts):
        terminal_port, platform_port = ports(), ports()
        write_mosquitto_conf(conf, pki=pki, persistence=directory / "data",
                             terminal_port=terminal_port, platform_port=platform_port,
                             log_file=log_file)
        offset, out_offset = _size(log_file), _size(log)
        process = processes.start("Mosquitto", [binary, "-c", str(conf)], log=log)
        if _wait_running(process, log_file, offset, timeout_s):
            wait_for_port(terminal_port, process, "Mosquitto (terminal listener)")
            wait_for_port(platform_port, process, "Mosquitto (platform listener)")
            return process, terminal_port, platform_port
        processes.stop(process)
        # Errors before the log file is open (a certificate it cannot read) go to stderr.
        said = _log_since(log_file, offset) + _log_since(log, out_offset)
        if ADDRESS_IN_USE not in said:
            raise DemoError(f"Mosquitto exited at start (status {process.returncode}): "
                            f"{said.strip()[-300:] or 'nothing logged'} (see {log_file})")
        taken.append(f"{terminal_port}/{platform_port}")
    raise DemoError(f"Mosquitto could not start: its ports were taken before it could bind "
                    f"them, {attempts} times (terminal/platform ports tried: "
                    f"{', '.join(taken)}); something on this machine is using loopback "
                    f"ports as fast as they are handed out (see {log_file})")
