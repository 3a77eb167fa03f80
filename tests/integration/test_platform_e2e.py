"""End to end over TLS: the terminal's outbox worker drains into ``etika platform serve``.

The terminal side (store, outbox worker, MQTT transport with the terminal's client
certificate) and the platform side (a real ``etika platform serve`` process with the
platform's client certificate) meet only at a real Mosquitto; the platform is SIGKILLed
mid-drain and restarted. Every row ends delivered, the platform holds each exactly once,
and the terminal's end-of-day report reconciles with the platform's sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from tests.fixtures.mosquitto import MosquittoBroker, free_port
from tests.integration.platform_key import platform_public_key

pytestmark = [pytest.mark.network, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TERMINAL_ID = "ETK00001"  # the CN of the fixture PKI's terminal certificate
DAY = "2026-11-21"


def queue_sales(store: Store, count: int) -> int:
    """Queue ``count`` completed sales and the day's end-of-day report; returns the sum."""
    now = time.time()
    rows = []
    total = 0
    for i in range(count):
        amount = 1000 + i
        total += amount
        payload = {"transaction_id": f"pay-{i}", "amount_minor": amount, "currency": "MAD",
                   "business_date": DAY, "state": "completed"}
        rows.append((str(uuid.uuid4()), "platform", "transaction", f"txn-{i}", f"pay-{i}",
                     json.dumps(payload), 100, now, now))
    eod = {"business_date": DAY,
           "totals": [{"currency": "MAD", "count": count, "amount_minor": total}]}
    # Lowest priority: the report leaves after the sales it sums up.
    rows.append((str(uuid.uuid4()), "platform", "eod_totals", f"eod-{DAY}", None,
                 json.dumps(eod), 200, now, now))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, ref_id,"
            " payload, priority, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
    return total


def serve(database: str, broker: MosquittoBroker, http_port: int, log: Path
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "platform", "serve",
         "--database", database, *broker.platform_cli_args(),
         "--http-port", str(http_port), "--worker-id", "e2e", "--batch", "100"],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


async def until_subscribed(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
                if health.get("mqtt") == "subscribed":
                    return
            await asyncio.sleep(0.05)


def outbox_states(store: Store) -> dict[str, int]:
    return dict(store.connection.execute("SELECT state, count(*) FROM outbox GROUP BY state"))


async def test_outbox_drains_over_tls_through_a_platform_crash(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """SIGKILL the platform mid-drain: all rows delivered, stored once, and reconciled."""
    count = 1500
    signer = SoftwareSigner.generate()
    database = str(tmp_path / "platform.db")
    platform = open_storage(database)
    platform.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "2026-11-21T00:00Z")
    store = Store.open(tmp_path / "etika.db")
    expected_total = queue_sales(store, count)

    pki = mosquitto.pki
    # The key the serving process signs its acks with (its data dir is ETIKA_DATA_DIR).
    platform_key = platform_public_key(tmp_path / "var")
    link = MqttLinkSettings(terminal_id=TERMINAL_ID, host=mosquitto.host, port=mosquitto.tls_port,
                            ca_file=pki.ca_pem, cert_file=pki.terminal_pem,
                            key_file=pki.terminal_key,
                            platform_public_key=platform_key.encode())
    settings = WorkerSettings(terminal_id=TERMINAL_ID, batch_size=200, max_in_flight=1000,
                              ack_timeout_s=2.0, idle_poll_s=0.1,
                              retry=RetryPolicy(base_s=0.05, cap_s=0.5))
    port, log = free_port(), tmp_path / "platform.log"
    process = serve(database, mosquitto, port, log)
    stop = asyncio.Event()
    try:
        await until_subscribed(process, port, log)
        async with MqttTransport(link) as transport:
            assert await transport.wait_connected(10)
            worker = OutboxWorker(SqliteOutbox(store), {"platform": transport}, signer, settings)
            drain = asyncio.create_task(worker.run(stop))
            async with asyncio.timeout(60):
                while platform.message_count() < 200:
                    await asyncio.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            process = serve(database, mosquitto, port, log)
            await until_subscribed(process, port, log)
            async with asyncio.timeout(90):
                while outbox_states(store) != {"delivered": count + 1}:
                    await asyncio.sleep(0.1)
            stop.set()
            await drain
            worker.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            reconciliation = (await http.get("/v1/reconciliation", params={"date": DAY})).json()
            fleet = (await http.get("/v1/fleet", params={"date": DAY})).json()
    finally:
        stop.set()
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
    assert platform.message_count(TERMINAL_ID) == count + 1
    assert fleet["totals_by_currency"] == {"MAD": {"count": count, "amount_minor": expected_total}}
    assert reconciliation["ok"] is True, reconciliation
    assert reconciliation["matched"] == [{"terminal_id": TERMINAL_ID, "currency": "MAD"}]
    platform.close()
    store.close()
