"""Background processes of the demo, started and stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from etika_errors import EtikaError

__all__ = ["ETIKA", "DemoError", "Processes", "free_port", "wait_for_port"]

ETIKA = [sys.executable, "-m", "terminal.cli.main"]


class DemoError(EtikaError):
    """A step of the demo could not run; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], what: str,
                  timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{what} exited at start (status {process.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise DemoError(f"{what} does not listen on 127.0.0.1:{port} after {timeout_s:.0f} s")


class Processes:
    """Every process the demo started, stopped by PID in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(self, what: str, command: list[str]) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, env=env)
        self.started.append((what, process))
        return process

    def first_line(self, process: subprocess.Popen[str], what: str) -> str:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line:
            raise DemoError(f"{what} did not start (status {process.poll()})")
        return line

    def stop(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def stop_all(self) -> None:
        for _what, process in reversed(self.started):
            self.stop(process)
        self.started.clear()
