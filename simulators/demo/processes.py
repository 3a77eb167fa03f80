"""Background processes of the demo, started and stopped by PID.

:class:`Processes` is the one place the demo's children are started (each in a session of
its own, so a Ctrl-C at the counter reaches only the counter) and stopped: SIGTERM by PID
in reverse order, SIGKILL for one that hangs. :mod:`simulators.demo.fleet` starts the
simulators through it; ``scripts/demo.py`` (the kernel walkthrough) does too.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from etika_errors import EtikaError

__all__ = ["ETIKA", "DemoError", "Processes", "announced", "etika_env", "free_port",
           "wait_for_port"]

ETIKA = [sys.executable, "-m", "terminal.cli.main"]


class DemoError(EtikaError):
    """A step of the demo could not run; the message says which and why."""


def etika_env() -> dict[str, str]:
    """The children's environment: the CLI derives the token's configuration from the data
    dir it is given, so an inherited SOFTHSM2_CONF must not point it elsewhere."""
    return {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}


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


def announced(process: subprocess.Popen[str], log: Path, offset: int, pattern: str,
              what: str, timeout_s: float = 30.0) -> re.Match[str]:
    """The first match of ``pattern`` in what ``process`` wrote to ``log`` past ``offset``
    (the log's size before it started): a server started on port 0 binds first, then says
    there which port it got, so that port is already its own when we read it."""
    deadline = time.monotonic() + timeout_s
    compiled = re.compile(pattern)
    while time.monotonic() < deadline:
        exited = process.poll() is not None
        with log.open("rb") as written:
            written.seek(offset)
            text = written.read().decode("utf-8", errors="replace")
        found = compiled.search(text)
        if found is not None:
            return found
        if exited:
            raise DemoError(f"{what} exited at start (status {process.returncode}): "
                            f"{text.strip()[-300:] or 'nothing written'} (see {log})")
        time.sleep(0.05)
    raise DemoError(f"{what} did not say which port it listens on after {timeout_s:.0f} s "
                    f"(see {log})")


class Processes:
    """Every process the demo started, stopped by PID in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(self, what: str, command: list[str], *, log: Path | None = None
              ) -> subprocess.Popen[str]:
        """Start ``command``. Without ``log`` its stdout is a pipe for :meth:`first_line`
        (a simulator that prints its port or URL, then little); with ``log``, stdout and
        stderr go to that file (a chatty server must never block on a full pipe)."""
        if log is None:
            process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True, env=etika_env(),
                                       start_new_session=True)
        else:
            with log.open("a") as sink:
                process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                           text=True, env=etika_env(), start_new_session=True)
        self.started.append((what, process))
        return process

    def start_announcing(self, what: str, command: list[str], *, log: Path, pattern: str
                         ) -> tuple[subprocess.Popen[str], re.Match[str]]:
        """Start ``command`` with its output to ``log`` and wait for its announcement
        (:func:`announced`): ``(process, the match of pattern)``."""
        offset = log.stat().st_size if log.exists() else 0
        process = self.start(what, command, log=log)
        return process, announced(process, log, offset, pattern, what)

    def first_line(self, process: subprocess.Popen[str], what: str) -> str:
        if process.stdout is None:
            raise DemoError(f"{what}: its output goes to a log, not to the demo")
        line = process.stdout.readline().strip()
        if not line:
            raise DemoError(f"{what} did not start (status {process.poll()})")
        return line

    @property
    def pids(self) -> list[int]:
        return [process.pid for _what, process in self.started]

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
        self.started = [(w, p) for w, p in self.started if p is not process]

    def stop_all(self) -> None:
        for _what, process in reversed(list(self.started)):
            self.stop(process)
        self.started.clear()
