"""The terminal's outbox drained over a real Mosquitto (started by the fixture)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from tests.fixtures.mosquitto import MosquittoBroker
from tests.integration.sync_receiver import PLATFORM_KEY, receiver_on

pytestmark = pytest.mark.network

TERMINAL_ID = "ETK00001"
SIGNER = SoftwareSigner.generate()


def fill_backlog(store: Store, count: int) -> None:
    """Queue ``count`` transaction rows directly (as Store.record would, in bulk for speed)."""
    now = time.time()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, ref_id,"
            " payload, priority, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    f"00000000-0000-4000-8000-{i:012d}", "platform", "transaction", f"txn-{i}",
                    f"pay-{i}", json.dumps({"amount_minor": 1000 + i, "currency": "MAD"}),
                    100, now, now,
                )
                for i in range(count)
            ],
        )


def worker_for(store: Store, transport: MqttTransport, **kw: object) -> OutboxWorker:
    settings = WorkerSettings(
        terminal_id=TERMINAL_ID, batch_size=500, max_in_flight=2000, ack_timeout_s=30.0,
        retry=RetryPolicy(base_s=0.05, cap_s=0.5), **kw,  # type: ignore[arg-type]
    )
    return OutboxWorker(SqliteOutbox(store), {"platform": transport}, SIGNER, settings)


def link(broker: MosquittoBroker, **options: object) -> MqttLinkSettings:
    """The terminal's link with its certificate, verifying the stand-in platform's acks."""
    return broker.terminal_link(TERMINAL_ID, platform_public_key=PLATFORM_KEY.public_key_pem(),
                                **options)


def states(store: Store) -> dict[str, int]:
    return dict(store.connection.execute("SELECT state, count(*) FROM outbox GROUP BY state"))


@pytest.mark.slow
async def test_backlog_of_10000_drains_none_lost_or_duplicated(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """10,000 queued messages all arrive once, in seq order, and end delivered."""
    store = Store.open(tmp_path / "etika.db")
    fill_backlog(store, 10_000)
    settings = link(mosquitto)
    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:
        async with MqttTransport(settings) as transport:
            assert await transport.wait_connected(10)
            worker = worker_for(store, transport)
            report = await worker.drain()
            worker.close()
    assert report.delivered == 10_000
    assert states(store) == {"delivered": 10_000}
    assert len(rx.committed) == len(set(rx.committed)) == 10_000
    assert rx.seqs == sorted(rx.seqs)
    store.close()


async def drain_until_empty(worker: OutboxWorker, store: Store) -> None:
    """Drain passes until no platform row is open (retries wait their short backoff)."""

    async def loop() -> None:
        while states(store).get("pending", 0) + states(store).get("in_flight", 0):
            await worker.drain()
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), 90)  # a guard against a hang, not a timing assertion


@pytest.mark.slow
async def test_broker_killed_and_restarted_mid_drain(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """SIGKILL the broker while a backlog drains: after it restarts every message is
    delivered, and the receiver committed each exactly once."""
    store = Store.open(tmp_path / "etika.db")
    fill_backlog(store, 3000)
    settings = link(mosquitto, reconnect_max_s=0.5)
    delivered = 0
    killed = asyncio.Event()

    def progress(_destination: str, n: int) -> None:
        nonlocal delivered
        delivered += n
        if delivered >= 500 and not killed.is_set():
            killed.set()
            mosquitto.kill()

    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:
        async with MqttTransport(settings) as transport:
            assert await transport.wait_connected(10)
            worker = OutboxWorker(
                SqliteOutbox(store), {"platform": transport}, SIGNER,
                WorkerSettings(terminal_id=TERMINAL_ID, batch_size=200, max_in_flight=400,
                               ack_timeout_s=15.0, retry=RetryPolicy(base_s=0.05, cap_s=0.3)),
                on_progress=progress,
            )
            first = await worker.drain()
            assert killed.is_set() and first.retried > 0
            mosquitto.start()
            await drain_until_empty(worker, store)
            worker.close()
        assert transport.connections >= 2
    assert states(store) == {"delivered": 3000}
    assert len(rx.committed) == len(set(rx.committed)) == 3000
    store.close()


async def test_tls_with_client_certificates(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """Over the TLS listener with the terminal's certificate the backlog drains; without a
    client certificate the broker refuses the connection."""
    pki = mosquitto.pki
    store = Store.open(tmp_path / "etika.db")
    fill_backlog(store, 50)
    good = MqttLinkSettings(
        terminal_id=TERMINAL_ID, host=mosquitto.host, port=mosquitto.tls_port,
        ca_file=pki.ca_pem, cert_file=pki.terminal_pem, key_file=pki.terminal_key,
        platform_public_key=PLATFORM_KEY.public_key_pem(),
    )
    no_cert = MqttLinkSettings(
        terminal_id=TERMINAL_ID, host=mosquitto.host, port=mosquitto.tls_port,
        ca_file=pki.ca_pem, client_id="etika-terminal-nocert",
    )
    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:
        async with MqttTransport(no_cert) as refused:
            assert not await refused.wait_connected(1.5)
            assert not refused.connected
        async with MqttTransport(good) as transport:
            assert await transport.wait_connected(10)
            worker = worker_for(store, transport)
            report = await worker.drain()
            worker.close()
    assert report.delivered == 50 and len(rx.committed) == 50
    store.close()


@pytest.mark.slow
async def test_terminal_killed_mid_drain_loses_and_reorders_nothing(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """SIGKILL the terminal process mid-drain; a new process on the same database resends
    what was in flight: every message is committed once, in seq order."""
    db = tmp_path / "etika.db"
    key = tmp_path / "terminal.key"
    key.write_bytes(SIGNER.private_key_pem())
    platform_pem = tmp_path / "platform.pem"
    platform_pem.write_bytes(PLATFORM_KEY.public_key_pem())
    ca, cert, cert_key = mosquitto.client_files(TERMINAL_ID)
    store = Store.open(db)
    fill_backlog(store, 4000)
    root = Path(__file__).resolve().parents[2]
    with receiver_on(mosquitto, SIGNER.public_key_pem()) as rx:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.sync_drain_child", str(db), str(key),
             mosquitto.host, str(mosquitto.port), str(ca), str(cert), str(cert_key),
             str(platform_pem)],
            cwd=root,
        )
        try:
            async def some_delivered() -> None:
                while states(store).get("delivered", 0) < 800:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(some_delivered(), 60)  # a guard, not a timing assertion
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        left = states(store)
        assert left.get("pending", 0) + left.get("in_flight", 0) > 0
        settings = link(mosquitto)
        async with MqttTransport(settings) as transport:
            assert await transport.wait_connected(10)
            worker = worker_for(store, transport)
            await drain_until_empty(worker, store)
            worker.close()
    assert states(store) == {"delivered": 4000}
    assert len(rx.committed) == len(set(rx.committed)) == 4000
    assert rx.seqs == sorted(rx.seqs)
    store.close()
