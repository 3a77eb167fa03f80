"""The processes of a chaos run, each real and on loopback, each stopped by its PID.

* the PSP: ``etika sim psp --kind iso8583 --control-port`` (faults and its in-memory ledger
  through the control port, :mod:`simulators.psp.control`);
* the PoP back end: ``etika sim pop`` with its SQLite ledger (it survives a restart);
* Mosquitto (:class:`tests.fixtures.mosquitto.MosquittoBroker`, TLS with client certificates);
* the platform: ``etika platform serve`` consuming from the broker (SQLite);
* the terminal: :mod:`tests.resilience.driver` as a child process (SoftHSM2 key store).

The profile is the default one with one ISO 8583 acquirer for every card, the sync pointed
at the lab's broker, PoP back end and platform key, quick retries, and fraud scoring off (a
thousand sales from four cards would otherwise be a velocity alarm, not a payment test).
"""

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from edge_sync.pki import TestPki, ensure_test_pki
from simulators.demo.fleet import platform_subscribed
from tests.fixtures.mosquitto import MosquittoBroker, free_port

__all__ = ["ETIKA", "Lab", "Process", "free_port", "start_again"]

REPO = Path(__file__).resolve().parents[2]
ETIKA = [sys.executable, "-m", "terminal.cli.main"]
TERMINAL_ID = "ETK00001"


def env() -> dict[str, str]:
    """The child processes' environment: the data dir's own SoftHSM2 configuration."""
    out = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "ETIKA_DATA_DIR")}
    out["PYTHONPATH"] = str(REPO)
    return out


def wait_for_port(port: int, process: subprocess.Popen[Any] | None, what: str,
                  timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


#: How long a restart keeps trying to get its port back.
RESTART_PATIENCE_S = 30.0


def start_again(start: Callable[[], None], running: Callable[[], bool], what: str) -> None:
    """Start a part the run stopped, on the port it had. Meanwhile that port (from the
    ephemeral range) may have become the local port of some other program's connection on
    this shared machine: the part then exits at start with "address already in use". Such a
    connection soon ends, so the start is tried again until ``RESTART_PATIENCE_S``."""
    deadline = time.monotonic() + RESTART_PATIENCE_S
    while True:
        try:
            start()
            return
        except RuntimeError as exc:
            if running() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} could not start again: {exc}") from exc
            print(f"chaos: {what} did not start again ({str(exc)[-200:].strip()}); retrying",
                  file=sys.stderr, flush=True)
            time.sleep(0.5)


@dataclass
class Process:
    """One child process: how to start it, its log, its PID."""

    name: str
    argv: list[str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def start(self) -> None:
        if self.running:
            return
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=env(), cwd=REPO, start_new_session=True)
        if self.port is not None:
            wait_for_port(self.port, self.proc, self.name)

    def start_again(self) -> None:
        """:meth:`start` after a stop, retried while its port is briefly someone else's."""
        start_again(self.start, lambda: self.running, self.name)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals, wait: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def stop(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)


@dataclass
class Lab:
    """Everything a chaos run starts, under ``root``."""

    root: Path
    #: Keep what the PSP and the PoP back end received (``--capture``), for the leak scan.
    capture: bool = False
    pki: TestPki = field(init=False)
    broker: MosquittoBroker = field(init=False)
    psp: Process = field(init=False)
    pop: Process = field(init=False)
    platform: Process = field(init=False)
    psp_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    pop_port: int = field(default_factory=free_port)
    platform_port: int = field(default_factory=free_port)

    @property
    def profile(self) -> Path:
        return self.root / "profile"

    @property
    def terminal_data(self) -> Path:
        return self.root / "terminal"

    @property
    def platform_data(self) -> Path:
        return self.root / "platform"

    @property
    def psp_capture(self) -> Path:
        return self.root / "psp-wire.bin"

    @property
    def pop_capture(self) -> Path:
        return self.root / "pop-wire.bin"

    @property
    def platform_db(self) -> Path:
        return self.platform_data / "platform" / "platform.db"

    def etika(self, *args: str, data_dir: Path | None = None) -> str:
        result = subprocess.run(
            [*ETIKA, "--data-dir", str(data_dir or self.terminal_data), *args],
            capture_output=True, text=True, env=env(), cwd=REPO, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"etika {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout

    # --- set up ----------------------------------------------------------------------------

    def set_up(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_test_pki(self.root / "pki", terminal_id=TERMINAL_ID)
        (self.root / "mosquitto").mkdir(exist_ok=True)
        self.broker = MosquittoBroker(directory=self.root / "mosquitto", pki=self.pki)
        self.broker.start()
        platform_key = self.etika("platform", "key", data_dir=self.platform_data)
        self._write_profile()
        (self.profile / "platform.pem").write_text(platform_key)
        self.etika("--profile", str(self.profile), "hsm", "init")
        terminal_key = self.root / "terminal.pub.pem"
        terminal_key.write_text(self.etika("--profile", str(self.profile), "hsm",
                                           "public-key"))
        self.etika("platform", "register-terminal", "--terminal-id", TERMINAL_ID,
                   "--public-key", str(terminal_key), data_dir=self.platform_data)
        psp_capture = ["--capture", str(self.psp_capture)] if self.capture else []
        pop_capture = ["--capture", str(self.pop_capture)] if self.capture else []
        self.psp = Process("psp", [*ETIKA, "sim", "psp", "--kind", "iso8583", "--port",
                                   str(self.psp_port), "--control-port", str(self.control_port),
                                   *psp_capture],
                           self.root / "psp.log", self.psp_port)
        self.pop = Process("pop", [*ETIKA, "--data-dir", str(self.root / "pop"), "sim", "pop",
                                   "--port", str(self.pop_port), "--key-file",
                                   f"{TERMINAL_ID}={terminal_key}", *pop_capture],
                           self.root / "pop.log", self.pop_port)
        self.platform = Process(
            "platform",
            [*ETIKA, "--data-dir", str(self.platform_data), "platform", "serve",
             *self.broker.platform_cli_args(), "--http-port", str(self.platform_port),
             "--worker-id", "chaos"],
            self.root / "platform.log", self.platform_port)
        for process in (self.psp, self.pop, self.platform):
            process.start()
        self.wait_platform_subscribed()

    def _write_profile(self) -> Path:
        from tests.conftest import DEFAULT_PROFILE_DIR

        shutil.copytree(DEFAULT_PROFILE_DIR, self.profile)
        (self.profile / "routing.toml").write_text(
            '[[psp]]\nname = "cih"\nkind = "iso8583"\nhost = "127.0.0.1"\n'
            f"port = {self.psp_port}\nacquirer_id = \"504001\"\n"
            'networks = ["domestic", "visa", "mastercard", "cb", "bancontact"]\n'
            'currencies = ["MAD", "EUR", "USD"]\np2pe_public_key = "p2pe/iso8583-test.pem"\n\n'
            '[[route]]\nname = "every card"\nconnectors = ["cih"]\n')
        (self.profile / "sync.toml").write_text(
            f'[sync]\nmqtt_host = "{self.broker.host}"\nmqtt_port = {self.broker.tls_port}\n'
            f'mqtt_tls = true\nca_file = "{self.pki.ca_pem}"\n'
            f'cert_file = "{self.pki.terminal_pem}"\nkey_file = "{self.pki.terminal_key}"\n'
            'platform_public_key = "platform.pem"\n'
            f'pop_url = "http://127.0.0.1:{self.pop_port}"\npop_timeout_s = 1.5\n'
            "ack_timeout_s = 2.0\nretry_base_s = 0.2\nretry_cap_s = 2.0\n")
        limits = (self.profile / "limits.toml").read_text()
        (self.profile / "limits.toml").write_text(
            re.sub(r"^enabled = true", "enabled = false", limits, flags=re.MULTILINE))
        return self.profile

    def start_broker(self) -> None:
        """Start Mosquitto again after a kill, on the ports the profiles name."""
        broker = self.broker
        start_again(broker.start,
                    lambda: broker.proc is not None and broker.proc.poll() is None, "broker")

    def wait_platform_subscribed(self, timeout: float = 30.0) -> None:
        if not platform_subscribed(self.platform_port, timeout):
            raise RuntimeError("the platform never subscribed to the broker")

    # --- faults ----------------------------------------------------------------------------

    def psp_faults(self, spec: str) -> None:
        httpx.post(f"http://127.0.0.1:{self.control_port}/v1/admin/faults",
                   json={"spec": spec}, timeout=5).raise_for_status()

    def pop_faults(self, spec: str) -> None:
        httpx.post(f"http://127.0.0.1:{self.pop_port}/v1/admin/faults",
                   json={"spec": spec}, timeout=5).raise_for_status()

    # --- what each side holds ----------------------------------------------------------------

    def psp_ledger(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            f"http://127.0.0.1:{self.control_port}/ledger/summary", timeout=30).json()
        return answer

    def pop_records(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"http://127.0.0.1:{self.pop_port}/ledger/records", timeout=30)
        records: list[dict[str, Any]] = answer.json()["records"]
        return records

    def stop_processes(self) -> None:
        """Stop the PSP, the PoP back end and the platform (their files are then complete)."""
        for process in (self.platform, self.pop, self.psp):
            process.stop()

    def tear_down(self) -> None:
        for name in ("platform", "pop", "psp"):
            process = getattr(self, name, None)
            if process is not None:
                process.stop()
        broker = getattr(self, "broker", None)
        if broker is not None:
            broker.kill()


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
