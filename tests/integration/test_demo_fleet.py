"""The demo's process launcher: every simulator it starts is a live child on loopback, and
:meth:`Fleet.stop` stops each one by PID, leaving none behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from simulators.demo.fleet import Fleet, mosquitto_binary
from simulators.demo.processes import etika_env
from tests.fixtures.require import component_missing, require_all

pytestmark = [pytest.mark.network]

PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_fleet_starts_every_simulator_and_stops_each_by_pid(tmp_path: Path) -> None:
    """Acquirers (ISO 8583 and REST), PIN pad, printer, PoP back end, platform (behind
    Mosquitto when installed), the outbox worker: each running and listening; after stop,
    not one PID is left and no port answers."""
    # Without Mosquitto the demo falls back to HTTPS; a CI run (ETIKA_REQUIRE_ALL=1) must
    # not pass on that fallback with the fleet's MQTT path never started.
    if require_all() and mosquitto_binary() is None:
        component_missing("mosquitto is not installed: the demo fleet's MQTT link is untested")
    data_dir = tmp_path / "terminal"
    init = subprocess.run([sys.executable, "-m", "terminal.cli.main", "--data-dir",
                           str(data_dir), "hsm", "init"], capture_output=True, text=True,
                          env=etika_env(), timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    key = subprocess.run([sys.executable, "-m", "terminal.cli.main", "--data-dir",
                          str(data_dir), "hsm", "public-key"], capture_output=True, text=True,
                         env=etika_env(), timeout=120, check=False)
    assert key.returncode == 0, key.stderr
    fleet = Fleet(tmp_path / "work", PROFILE)
    try:
        psp_ports = fleet.acquirers()
        pinpad = fleet.pinpad("1234")
        printer = fleet.printer(tmp_path / "receipts")
        pop_url = fleet.pop()
        link = fleet.platform("ETK00001", key.stdout.encode())
        sync = fleet.sync(data_dir)
        pids = list(fleet.processes.pids)
        names = [what for what, _p in fleet.processes.started]
        assert {"cih", "attijariwafa", "bmce", "stripe", "paypal"} <= set(psp_ports)
        assert all(_listening(port) for port in psp_ports.values())
        assert os.path.exists(pinpad) and os.path.exists(printer)
        assert httpx.get(f"{pop_url}/ledger/summary", timeout=5).status_code == 200
        assert link == ("MQTT" if mosquitto_binary() else "HTTPS")
        assert ("Mosquitto" in names) == (link == "MQTT")
        assert fleet.platform_port is not None and _listening(fleet.platform_port)
        routing = (fleet.profile_dir / "routing.toml").read_text()
        assert all(f"{port}" in routing for port in psp_ports.values())
        assert sync.poll() is None, (fleet.work / "logs" / "sync.log").read_text()[-2000:]
        assert all(_alive(pid) for pid in pids), names
    finally:
        fleet.stop()
    assert fleet.processes.started == []
    assert [pid for pid in pids if _alive(pid)] == []
    assert [port for port in psp_ports.values() if _listening(port)] == []
    assert not _listening(fleet.platform_port)


def test_fleet_platform_serves_https_on_the_port_it_announced(tmp_path: Path) -> None:
    """Without the broker the platform starts with --http-port 0: the port it printed is
    the one serving HTTPS, and the profile copy's sync points there."""
    import ssl

    from edge_sync.signing import SoftwareSigner

    fleet = Fleet(tmp_path / "work", PROFILE)
    try:
        link = fleet.platform("ETK00001", SoftwareSigner.generate().public_key_pem(),
                              broker=False)
        port = fleet.platform_port
        assert link == "HTTPS" and port is not None and port != 0
        sync = (fleet.profile_dir / "sync.toml").read_text()
        assert f'https_url = "https://127.0.0.1:{port}"' in sync
        assert fleet.pki is not None
        context = ssl.create_default_context(cafile=str(fleet.pki.ca_pem))
        health = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context, timeout=10)
        assert health.json()["mqtt"] == "disabled"
    finally:
        fleet.stop()
    assert not _listening(port)
