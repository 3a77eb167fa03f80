"""Crash at every step: the terminal is SIGKILLed between each pair of steps of a sale and of
a refund; after a restart (recovery, one drain of the outbox, settlement) every record is
final and agrees with the acquirer simulator's ledger and the PoP back end's ledger.

The acquirer (ISO 8583) and the PoP stand-in run in this test process, on a loop of their
own on loopback, so their ledgers can be read directly; the terminal is a child process
(:mod:`tests.integration.pay_crash_child`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_sync.signing import SoftwareSigner
from simulators.pop.run import build_server
from simulators.pop.server import PopServer
from simulators.psp.acquirer import Acquirer
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path
from terminal.payments.model import FINAL_STATES

pytestmark = [pytest.mark.network, pytest.mark.slow]

CHILD = [sys.executable, "-m", "tests.integration.pay_crash_child"]
SALE_STEPS = ("created", "authorising", "legs_answered", "legs_done", "finalised")
REFUND_STEPS = ("refund_requested", "refund_answered")


@dataclass
class Backends:
    acquirer: Acquirer
    pop: PopServer
    psp_port: int
    pop_url: str
    signer_pem: Path


@pytest.fixture
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """A fresh acquirer and PoP back end per test: each test's terminal starts with a new
    store, so its PoP sequence starts again (a back end that saw the old one would refuse
    the new records as replayed)."""
    root = tmp_path_factory.mktemp("crash-backends")
    signer = SoftwareSigner.generate()
    signer_pem = root / "terminal.key.pem"
    signer_pem.write_bytes(signer.private_key_pem())
    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    pop = build_server(root / "pop")
    pop.keys.register_pem("ETK00001", signer.public_key_pem().decode())
    loop = asyncio.new_event_loop()
    host = Iso8583Host(acquirer)
    thread = threading.Thread(target=loop.run_forever, name="crash-backends", daemon=True)
    thread.start()
    psp_port = asyncio.run_coroutine_threadsafe(host.start(), loop).result(10)
    pop_port = asyncio.run_coroutine_threadsafe(pop.start("127.0.0.1", 0), loop).result(10)
    try:
        yield Backends(acquirer, pop, psp_port, f"http://127.0.0.1:{pop_port}", signer_pem)
    finally:
        asyncio.run_coroutine_threadsafe(host.close(), loop).result(10)
        loop.call_soon_threadsafe(pop.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _child(b: Backends, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHILD, str(data_dir), str(b.psp_port), b.pop_url,
                           str(b.signer_pem), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def _restart(b: Backends, data_dir: Path) -> dict[str, list[dict[str, object]]]:
    result = _child(b, data_dir, "recover")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _charged(b: Backends, payment_id: str) -> bool:
    entry = b.acquirer.ledger.get(payment_id)
    return entry is not None and entry.state in ("held", "captured")


def _pop_status(b: Backends, record_id: str) -> str | None:
    receipt = b.pop.ledger.status(record_id)
    return None if receipt is None else str(receipt.status)


@pytest.mark.parametrize("kill_at", SALE_STEPS)
def test_sale_survives_a_kill_at_every_step(backends: Backends, tmp_path: Path,
                                            kill_at: str) -> None:
    """Killed at any step of a sale, the restarted terminal leaves the payment final: an
    approved one charged once with its PoP record confirmed, any other not charged and its
    PoP record withdrawn (or never sent); the journal verifies."""
    sale = _child(backends, tmp_path, "sale", kill_at)
    assert sale.returncode == -9, f"the kill point {kill_at} was not reached: {sale.stderr}"
    state = _restart(backends, tmp_path)
    assert state["journal"], "the journal must verify after the crash"
    assert len(state["payments"]) == 1
    payment = state["payments"][0]
    pid = str(payment["id"])
    assert payment["status"] in FINAL_STATES, payment
    approved = payment["status"] == "completed"
    assert _charged(backends, pid) is approved, (payment, backends.acquirer.ledger.get(pid))
    for record in state["pop"]:
        expected = {"confirmed"} if approved else {"cancelled", None}
        assert _pop_status(backends, str(record["id"])) in expected, record
    assert all(row["state"] == "delivered" for row in state["outbox"]), state["outbox"]


@pytest.mark.parametrize("kill_at", REFUND_STEPS)
def test_refund_survives_a_kill_at_every_step(backends: Backends, tmp_path: Path,
                                              kill_at: str) -> None:
    """Killed at any step of a refund, the restarted terminal sends it again under the same
    UUID: the acquirer refunds once, the terminal's refund ends approved, and what the two
    say was refunded agrees."""
    sale = _child(backends, tmp_path, "sale", "-")
    assert sale.returncode == 0, sale.stderr
    pid = json.loads(sale.stdout)["payment_id"]
    # On a loaded machine the PoP leg can miss the sale's deadline (pop_deferred); a refund
    # of such a sale rightly waits for the PoP record, so the kill point would never come.
    # Let the terminal's own recovery confirm the PoP record first.
    for _ in range(5):
        if [p["status"] for p in _restart(backends, tmp_path)["payments"]] == ["completed"]:
            break
        time.sleep(1)
    refund = _child(backends, tmp_path, "refund", pid, kill_at)
    assert refund.returncode == -9, refund.stderr
    state = _restart(backends, tmp_path)
    refunds = state["refunds"]
    assert [r["status"] for r in refunds] == ["approved"], refunds
    assert backends.acquirer.ledger[pid].refunded == 10000
    assert [p["status"] for p in state["payments"]] == ["completed"]
