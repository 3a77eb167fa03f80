"""The demo's Mosquitto starter: a port taken before Mosquitto binds it means fresh ports
and another try, a bounded number of times, then one clear error. Real Mosquitto, with the
first port occupied on purpose by a socket the test holds."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_sync import pki
from simulators.demo.broker import ADDRESS_IN_USE, start_mosquitto
from simulators.demo.fleet import mosquitto_binary
from simulators.demo.processes import DemoError, Processes
from tests.fixtures.mosquitto import free_port
from tests.fixtures.require import component_missing

pytestmark = [pytest.mark.network]


@pytest.fixture
def binary() -> str:
    found = mosquitto_binary()
    if found is None:
        component_missing("mosquitto is not installed (scripts/setup installs it)")
    return found


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port a socket of this test listens on for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield int(sock.getsockname()[1])


def _ports(first: list[int]) -> Callable[[], int]:
    """The ports in ``first``, then free ones."""
    queue = list(first)
    return lambda: queue.pop(0) if queue else free_port()


def test_a_taken_port_means_fresh_ports_and_another_try(
        tmp_path: Path, test_pki: pki.TestPki, binary: str, occupied: int) -> None:
    """The first terminal port is taken: Mosquitto says so, and the second try, on fresh
    ports, runs and is the process listening on the ports returned."""
    processes = Processes()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    try:
        process, terminal_port, platform_port = start_mosquitto(
            processes, binary, directory, test_pki, log=tmp_path / "out.log",
            ports=_ports([occupied]))
        assert process.poll() is None
        assert occupied not in (terminal_port, platform_port)
        log = (directory / "mosquitto.log").read_text()
        assert log.count(ADDRESS_IN_USE) == 1
        assert log.index(ADDRESS_IN_USE) < log.index(" running")  # the second try runs
        assert [p for _what, p in processes.started] == [process]  # the failed one is gone
        conf = (directory / "mosquitto.conf").read_text()
        assert f"listener {terminal_port} 127.0.0.1" in conf
        assert f"listener {platform_port} 127.0.0.1" in conf
    finally:
        processes.stop_all()


def test_ports_taken_every_time_end_in_one_clear_error(
        tmp_path: Path, test_pki: pki.TestPki, binary: str, occupied: int) -> None:
    """Every try finds its terminal port taken: after the bounded number of tries, one
    error names the ports tried, and no Mosquitto is left running."""
    processes = Processes()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    try:
        with pytest.raises(DemoError, match=r"taken before it could bind them, 3 times") as err:
            start_mosquitto(processes, binary, directory, test_pki,
                            log=tmp_path / "out.log", ports=lambda: occupied, attempts=3)
        assert str(err.value).count(f"{occupied}/{occupied}") == 3
        assert processes.started == []
    finally:
        processes.stop_all()


def test_a_start_that_fails_for_another_reason_is_not_retried(
        tmp_path: Path, binary: str) -> None:
    """A failure other than a taken port (here, missing certificates) ends the
    start at the first try, with what Mosquitto said."""
    broken = pki.TestPki(tmp_path / "no-pki")  # no CA, no broker certificate
    processes = Processes()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    tried: list[int] = []

    def ports() -> int:
        tried.append(free_port())
        return tried[-1]

    try:
        with pytest.raises(DemoError, match="Mosquitto exited at start"):
            start_mosquitto(processes, binary, directory, broken,
                            log=tmp_path / "out.log", ports=ports, attempts=3)
        assert len(tried) == 2  # one try: a terminal and a platform port
    finally:
        processes.stop_all()
