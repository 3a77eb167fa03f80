"""``etika sim psp`` as an operator runs it: a process on a free port, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sync.connectors import Iso8583Connector, Iso8583Settings, RestSettings, StripeConnector
from simulators.psp.keys import public_key_path
from simulators.psp.server import free_port
from tests.fixtures.psp import host_context

ETIKA = [sys.executable, "-m", "terminal.cli.main"]
REPO = Path(__file__).resolve().parents[3]


def _wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the simulator exited: {error}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the simulator did not start listening")


@pytest.fixture
def sim_process(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    kind = request.param
    port = free_port()
    process = subprocess.Popen([*ETIKA, "sim", "psp", "--kind", kind, "--port", str(port)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_listening(port, process)
        yield kind, port
    finally:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.network
@pytest.mark.parametrize("sim_process", ["iso8583", "stripe"], indirect=True)
async def test_sim_psp_serves_its_protocol(sim_process: tuple[str, int]) -> None:
    """The simulator started from the CLI answers an echo in its own protocol."""
    kind, port = sim_process
    connector: Iso8583Connector | StripeConnector
    if kind == "iso8583":
        connector = Iso8583Connector(Iso8583Settings(
            host_context(), "127.0.0.1", port, public_key_path(kind).read_bytes()))
    else:
        connector = StripeConnector(RestSettings(kind, f"http://127.0.0.1:{port}",
                                                 public_key_path(kind).read_bytes()))
    assert (await connector.echo()).approved
    await connector.aclose()


@pytest.mark.network
@pytest.mark.parametrize("kind", ["iso8583", "stripe"])
def test_port_zero_serves_on_the_port_it_prints(kind: str) -> None:
    """With --port 0 (and --control-port 0) the simulator binds any free port first, then
    its first line says which: that port, and the control port, are the ones served."""
    import re
    import socket

    extra = ["--control-port", "0"] if kind == "iso8583" else []
    process = subprocess.Popen([*ETIKA, "sim", "psp", "--kind", kind, "--port", "0", *extra],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        said = re.search(r"on 127\.0\.0\.1:(\d+)(?: \(control port (\d+)\))?", line)
        assert said is not None, line
        ports = [int(p) for p in said.groups() if p is not None]
        assert len(ports) == len(extra) // 2 + 1 and 0 not in ports
        for port in ports:  # bound before the line was printed: no wait needed
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                pass
    finally:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize(
    ("args",                                               "message"),
    [
        (["--kind", "iso8583", "--port", "70000"],             "between 1 and 65535"),
        (["--kind", "visa", "--port", "9"],                    "invalid choice"),
        (["--kind", "iso8583", "--port", "9", "--faults", "x"], "unknown fault"),
        (["--kind", "stripe", "--port", "9", "--key", "/no"],  "cannot read"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], message: str) -> None:
    """Wrong arguments exit non-zero with a clear message, never a traceback."""
    done = subprocess.run([*ETIKA, "sim", "psp", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
