"""The terminal's HTTPS transport and outbox worker against the platform's app (in process)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.messages import build_envelope
from edge_sync.outbox import RetryPolicy
from edge_sync.platform.api import create_app
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from tests.edge_sync.platform.conftest import TERMINAL_ID

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


PLATFORM = SoftwareSigner.generate()


def transport_for(storage: PlatformStorage) -> HttpsTransport:
    """The terminal's HTTPS link to an in-process platform that signs its acks."""
    settings = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url="http://platform",
                                 max_batch=50, platform_public_key=PLATFORM.public_key_pem())
    app = create_app(storage, Ingestor(storage, signer=PLATFORM))
    return HttpsTransport(settings, transport=httpx.ASGITransport(app=app))


async def test_https_transport_gets_accepted_duplicate_and_rejected(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """The terminal's transport reads the platform's signed acks: accepted, then duplicate;
    a message the platform cannot verify gets none (it is retried, never dropped)."""
    good = build_envelope(registered, terminal_id=TERMINAL_ID, kind="alert", seq=1,
                          idempotency_key="a-1", payload={"alert": "test"})
    stranger = build_envelope(SoftwareSigner.generate(), terminal_id=TERMINAL_ID, kind="alert",
                              seq=2, idempotency_key="a-2", payload={"alert": "test"})
    async with transport_for(storage) as transport:
        first = await transport.deliver([good, stranger], timeout=5)
        again = await transport.deliver([good], timeout=5)
    assert first[good.message_id].status == "accepted"
    assert stranger.message_id not in first
    assert again[good.message_id].status == "duplicate"


async def test_outbox_drains_over_https_into_the_platform(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """A queued backlog drains through the HTTPS fallback: all delivered, each stored once."""
    store = Store.open(tmp_path / "etika.db")
    now = time.time()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, ref_id,"
            " payload, priority, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [(str(uuid.uuid4()), "platform", "transaction", f"txn-{i}", f"pay-{i}",
              json.dumps({"payment_id": f"pay-{i}", "amount_minor": 100, "currency": "MAD",
                          "business_date": "2026-11-21", "status": "completed"}),
              100, now, now) for i in range(300)],
        )
    settings = WorkerSettings(terminal_id=TERMINAL_ID, batch_size=100, max_in_flight=300,
                              ack_timeout_s=10, retry=RetryPolicy(base_s=0.05, cap_s=0.5))
    async with transport_for(storage) as transport:
        worker = OutboxWorker(SqliteOutbox(store), {"platform": transport}, registered,
                              settings)
        report = await worker.drain()
        worker.close()
    assert report.delivered == 300
    assert storage.message_count(TERMINAL_ID) == 300
    totals = storage.transaction_totals("2026-11-21")
    assert [(t.count, t.amount_minor) for t in totals] == [(300, 30_000)]
    store.close()
