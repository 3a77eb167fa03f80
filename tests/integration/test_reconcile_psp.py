"""``etika platform reconcile --psp-url``: the platform's mirror of the terminal's payments
against the ledger of the ISO 8583 acquirer simulator that took them, payment by payment.

Real parts on loopback: the acquirer simulator over TCP with its control port (the ledger
as JSON over HTTP), the payments manager and its store, the outbox worker draining the
uplinks through the HTTPS transport into the platform's API and SQLite database, and the
``etika platform reconcile`` command as a process of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from edge_sync.connectors import PspOutboxTransport
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.platform.api import create_app
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport
from edge_sync.worker import OutboxWorker, WorkerSettings
from simulators.psp.control import ControlServer
from terminal.eod import report_end_of_day
from terminal.payments.advice import advice_card_source, advice_reference_recorder
from terminal.payments.refunds import refund_payment
from terminal.store.outbox import SqliteOutbox
from tests.terminal.payments.harness import Counter, counter, mad, sale

pytestmark = pytest.mark.network


async def _sync_to_platform(c: Counter, database: Path) -> None:
    """Drain the terminal's outbox (platform and PSP rows) into the platform's database."""
    terminal_id = c.profile.terminal.terminal_id
    signer = SoftwareSigner.generate()
    platform_key = SoftwareSigner.generate()
    storage = open_storage(str(database))
    try:
        storage.register_key(terminal_id, 1, signer.public_key_pem().decode(),
                             dt.datetime.now(dt.UTC).isoformat())
        platform = HttpsTransport(
            HttpsLinkSettings(terminal_id=terminal_id, base_url="http://platform",
                              platform_public_key=platform_key.public_key_pem()),
            transport=httpx.ASGITransport(
                app=create_app(storage, Ingestor(storage, signer=platform_key))))
        async with platform:
            routes: dict[str, Transport] = {
                "platform": platform,
                "psp:cih": PspOutboxTransport(
                    c.manager.router, "cih",
                    advice_card=advice_card_source(c.store, lambda: c.manager.card_keys),
                    on_accepted=advice_reference_recorder(c.store))}
            worker = OutboxWorker(SqliteOutbox(c.store), routes, signer,
                                  WorkerSettings(terminal_id=terminal_id))
            try:
                await worker.drain()
            finally:
                worker.close()
    finally:
        storage.close()


async def _reconcile(database: Path, day: str, ledger_url: str, *options: str
                     ) -> subprocess.CompletedProcess[str]:
    # In a thread: this loop serves the acquirer's control port the command reads.
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "terminal.cli.main", "platform", "reconcile", "--database",
         str(database), "--date", day, "--psp-url", ledger_url, *options],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    return run


async def test_reconcile_with_the_acquirer_ledger_reports_a_deliberate_mismatch(
        data_dir: Path, tmp_path: Path) -> None:
    """An offline sale (booked under its advice's key), two online sales and a partial
    refund reconcile one to one with the acquirer's ledger (exit 0); then the acquirer gives
    back 5.00 of a sale nobody refunded, and reconcile reports that payment (exit 1)."""
    database = tmp_path / "platform.db"
    async with counter(data_dir, host_down=True) as c:
        control = ControlServer(c.host)
        ledger_url = f"http://127.0.0.1:{await control.start()}"
        try:
            offline = await c.manager.sale(sale("25.00"), c.reader)
            assert offline.approved and offline.offline, offline.reason
            await c.host_up()
            first = await c.manager.sale(sale("600.00"), c.reader)
            second = await c.manager.sale(sale("45.00"), c.reader)
            assert first.state == second.state == "completed"
            refunded = await refund_payment(c.manager, str(first.payment_id), mad("100.00"))
            assert refunded.state == "approved"
            day = c.manager.clock().date()
            report_end_of_day(c.store, c.profile.terminal.terminal_id, day)
            await _sync_to_platform(c, database)
            run = await _reconcile(database, day.isoformat(), ledger_url, "--json")
            clean = json.loads(run.stdout)
            assert run.returncode == 0 and clean["ok"], clean
            assert clean["psp_checked"] == 4  # three sales (one an advice), one refund
            c.acquirer.refund(str(second.payment_id), str(uuid.uuid4()), 500)
            run = await _reconcile(database, day.isoformat(), ledger_url, "--json")
            code, found = run.returncode, json.loads(run.stdout)
            text = await _reconcile(database, day.isoformat(), ledger_url)
        finally:
            await control.close()
    assert code == 1 and not found["ok"] and found["mismatches"] == []  # the totals agree
    assert [(m["kind"], m["transaction_id"], m["platform_amount_minor"],
             m["psp_amount_minor"]) for m in found["psp_mismatches"]] == [
        ("refund_mismatch", str(second.payment_id), 0, 500)]
    assert text.returncode == 1
    assert "PSP ledgers: 5 entries, 1 mismatch" in text.stdout
    assert f"refund_mismatch                payment {second.payment_id}" in text.stdout
