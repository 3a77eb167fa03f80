"""The terminal's MQTT drain against the platform's own consumer (their code, our wire)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from edge_sync.mqtt import MqttTransport
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.storage import SqliteStorage
from edge_sync.signing import SoftwareSigner
from terminal.store import Store
from tests.fixtures.mosquitto import MosquittoBroker
from tests.integration.test_sync_mqtt import (
    SIGNER,
    TERMINAL_ID,
    drain_until_empty,
    fill_backlog,
    states,
    worker_for,
)

pytestmark = pytest.mark.network

PLATFORM = SoftwareSigner.generate()


async def test_backlog_drains_into_the_platform_consumer(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """1,000 queued transactions reach the platform's shared-subscription consumer over
    MQTT, are committed once each and acknowledged: the terminal marks all delivered."""
    storage = SqliteStorage(tmp_path / "platform.db")
    storage.register_key(TERMINAL_ID, 1, SIGNER.public_key_pem().decode(), "2026-01-01T00:00:00Z")
    consumer = UplinkConsumer(
        Ingestor(storage, signer=PLATFORM), mosquitto.platform_settings()
    )
    consumer_task = asyncio.create_task(consumer.run())
    store = Store.open(tmp_path / "etika.db")
    fill_backlog(store, 1000)
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 10)
        link = mosquitto.terminal_link(TERMINAL_ID,
                                       platform_public_key=PLATFORM.public_key_pem())
        async with MqttTransport(link) as transport:
            assert await transport.wait_connected(10)
            worker = worker_for(store, transport)
            await drain_until_empty(worker, store)
            worker.close()
    finally:
        consumer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer_task
    assert states(store) == {"delivered": 1000}
    assert storage.message_count(TERMINAL_ID) == 1000
    assert consumer.stats.rejected == 0
    storage.close()
    store.close()


async def test_malformed_uplink_over_mqtt_is_refused_and_the_terminal_told_why(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The platform's consumer rejects a transaction it cannot book; the ack's reason ends up
    in the terminal's dead letter and in the alert the terminal sends back."""
    import json
    import time

    storage = SqliteStorage(tmp_path / "platform.db")
    storage.register_key(TERMINAL_ID, 1, SIGNER.public_key_pem().decode(), "2026-01-01T00:00:00Z")
    consumer = UplinkConsumer(
        Ingestor(storage, signer=PLATFORM), mosquitto.platform_settings()
    )
    consumer_task = asyncio.create_task(consumer.run())
    store = Store.open(tmp_path / "etika.db")
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, payload,"
            " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?)",
            ("00000000-0000-4000-8000-00000000bad1", "platform", "transaction", "txn-bad",
             json.dumps({"amount_minor": 100, "currency": "MAD", "type": "bogus"}), now, now),
        )
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 10)
        link = mosquitto.terminal_link(TERMINAL_ID,
                                       platform_public_key=PLATFORM.public_key_pem())
        async with MqttTransport(link) as transport:
            assert await transport.wait_connected(10)
            worker = worker_for(store, transport)
            await drain_until_empty(worker, store)
            worker.close()
    finally:
        consumer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer_task
    rows = store.connection.execute(
        "SELECT kind, state, last_error, payload FROM outbox ORDER BY id").fetchall()
    (bad_kind, bad_state, bad_error, _), (alert_kind, alert_state, _, alert) = rows
    assert (bad_kind, bad_state) == ("transaction", "dead") and "payload.type" in bad_error
    assert (alert_kind, alert_state) == ("alert", "delivered")
    assert "payload.type" in json.loads(alert)["reason"]
    assert consumer.stats.rejected == 1
    storage.close()
    store.close()
