"""The platform worker on a real Mosquitto, with SQLite and the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from edge_sync.ack_batch import SignedAckBatch, check_ack_batch, is_ack_batch
from edge_sync.messages import Ack, AckVerifier, Envelope, parse_ack, uplink_topic
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.errors import StorageError
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.records import IngestOutcome, Uplink
from edge_sync.platform.storage import PlatformStorage, open_storage
from edge_sync.platform.topics import platform_topic
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope
from tests.fixtures.mosquitto import PLATFORM_CN, free_port
from tests.fixtures.mosquitto import MosquittoBroker as Broker
from tests.integration.platform_key import platform_public_key

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
#: The key the in-process workers sign their acks with.
PLATFORM = SoftwareSigner.generate()


def consumer_counts(storage: PlatformStorage) -> list[Any]:
    """The refusals the platform logged (the fleet API's rejection list)."""
    return storage.rejections(limit=1000)
_client_ids = itertools.count(1)


@pytest.fixture
def broker(mosquitto: Broker) -> Broker:
    """The shared Mosquitto fixture (plain and TLS listeners, free loopback ports)."""
    return mosquitto


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "platform.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def storage(database: str) -> Iterator[PlatformStorage]:
    opened = open_storage(database)
    yield opened
    opened.close()


@pytest.fixture
def signer(storage: PlatformStorage) -> SoftwareSigner:
    key = SoftwareSigner.generate()
    storage.register_key(TERMINAL_ID, 1, key.public_key_pem().decode(), "2026-11-21T00:00:00Z")
    return key


def _acks_in(raw: bytes, platform_key: bytes | None = None) -> list[Ack]:
    """The acks of one message on an ack topic: a signed batch (the platform signs one per
    commit and terminal) or a single ack; with ``platform_key``, verified as the terminal
    would (SignatureError otherwise)."""
    if not is_ack_batch(raw):
        ack = parse_ack(raw)
        if platform_key is not None:
            AckVerifier(platform_key, ack.terminal_id or "?", "platform").check(ack)
        return [ack]
    batch = SignedAckBatch.model_validate_json(raw)
    if platform_key is not None:
        return check_ack_batch(AckVerifier(platform_key, batch.terminal_id, "platform"), raw)
    return [Ack(message_id=a.message_id, status=a.status, reason=a.reason,
                terminal_id=batch.terminal_id, destination=batch.destination, seq=a.seq,
                issued_at=batch.issued_at)
            for a in batch.acks]


class AckListener:
    """Everything the platform says on every terminal's ack topic, in arrival order."""

    def __init__(self) -> None:
        self.acks: list[Ack] = []
        #: Each message as it came (a batch or a single ack).
        self.bodies: list[bytes] = []
        self._changed = asyncio.Condition()

    async def run(self, broker: Broker, ready: asyncio.Event) -> None:
        async with broker.client(PLATFORM_CN, identifier=f"etika-platform-acks-{os.getpid()}") \
                as client:
            await client.subscribe(platform_topic("etika/v1/t/+/ack"), qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                async with self._changed:
                    self.bodies.append(message.payload)
                    self.acks.extend(_acks_in(message.payload))
                    self._changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[Ack]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.acks) >= count)
        return list(self.acks)

    def delivered(self) -> set[str]:
        return {a.message_id for a in self.acks if a.status in ("accepted", "duplicate")}


@pytest.fixture
async def acks(broker: Broker) -> AsyncIterator[AckListener]:
    listener = AckListener()
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(broker, ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield listener
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task


async def publish(broker: Broker, bodies: Sequence[tuple[str, bytes]]) -> None:
    """Publish (topic, body) pairs at QoS 1, a bounded number in flight, each terminal's
    with its own certificate (the broker's ACL allows nothing else)."""
    by_terminal: dict[str, list[tuple[str, bytes]]] = {}
    for topic, body in bodies:
        by_terminal.setdefault(topic.split("/")[3], []).append((topic, body))
    for terminal_id, mine in by_terminal.items():
        async with broker.client(terminal_id) as client:
            client.pending_calls_threshold = 1000  # 200 in flight is the point, not a leak
            for start in range(0, len(mine), 200):
                await asyncio.gather(*(client.publish(topic, body, qos=1)
                                       for topic, body in mine[start:start + 200]))


def up(message: Envelope) -> tuple[str, bytes]:
    return uplink_topic(message.terminal_id, message.kind), message.to_json()


@contextlib.asynccontextmanager
async def worker(
    storage: Any, broker: Broker, client_id: str = "etika-platform-w1"
) -> AsyncIterator[UplinkConsumer]:
    settings = broker.platform_settings(client_id=client_id)
    consumer = UplinkConsumer(Ingestor(storage, signer=PLATFORM), settings, max_batch=100)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 10)
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_consumer_acks_dedups_and_refuses_with_reasons(
    broker: Broker, acks: AckListener, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """Accepted and duplicate are acked; truncated, tampered and unknown bodies, whose
    signature was never checked, get no ack at all (anyone could have sent them, quoting a
    real message id) but are refused, logged and counted — and it keeps going."""
    good = envelope(signer)
    tampered = good.wire()
    tampered["payload"]["amount_minor"] = 1
    stranger = envelope(SoftwareSigner.generate(), terminal_id="T-9999")
    async with worker(storage, broker):
        await publish(broker, [
            up(good),
            up(good),
            (uplink_topic(TERMINAL_ID, "transaction"), good.to_json()[:-30]),
            (uplink_topic(TERMINAL_ID, "transaction"), b"\x00\xffnot json at all"),
            (uplink_topic(TERMINAL_ID, "transaction"), json.dumps(tampered).encode()),
            up(stranger),
        ])
        seen = await acks.wait_for(2)
        later = envelope(signer)
        await publish(broker, [up(later)])
        seen = await acks.wait_for(3)
        refused = consumer_counts(storage)
    assert [(a.message_id, a.status) for a in seen] == [
        (good.message_id, "accepted"), (good.message_id, "duplicate"),
        (later.message_id, "accepted"),
    ]
    # Every ack verifies with the platform key, bound to us and our platform destination.
    verified = [a for body in acks.bodies for a in _acks_in(body, PLATFORM.public_key_pem())]
    assert [a.message_id for a in verified] == [a.message_id for a in seen]
    assert all(a.terminal_id == TERMINAL_ID and a.destination == "platform" for a in seen)
    reasons = sorted(r.reason for r in refused)
    assert len(reasons) == 4
    assert sum("not json" in r for r in reasons) == 2
    assert any("bad signature" in r for r in reasons)
    assert any("unknown terminal T-9999" in r for r in reasons)
    assert storage.message_count() == 2


class DiesBeforeCommit:
    """A storage whose ``ingest`` blocks and then fails: a worker dying before its commit."""

    def __init__(self, inner: PlatformStorage) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ingest(self, uplinks: Sequence[Uplink], received_at: str) -> list[IngestOutcome]:
        self.entered.set()
        self.release.wait(30)
        raise RuntimeError("worker died before its commit")


async def test_no_ack_before_commit_and_redelivery_after_a_crash(
    broker: Broker, acks: AckListener, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """A worker lost between receive and commit acks nothing; its successor stores it once."""
    message = envelope(signer)
    dying = DiesBeforeCommit(storage)
    async with worker(dying, broker, "etika-platform-crash"):
        await publish(broker, [up(message)])
        await asyncio.to_thread(dying.entered.wait, 10)
    dying.release.set()
    assert storage.message_count() == 0
    async with worker(storage, broker, "etika-platform-crash"):
        seen = await acks.wait_for(1)
    # The only ack ever sent is the successor's, after its commit.
    assert [(a.message_id, a.status) for a in seen] == [(message.message_id, "accepted")]
    assert storage.message_count() == 1


async def test_two_workers_share_the_load(
    broker: Broker, acks: AckListener, database: str, signer: SoftwareSigner
) -> None:
    """Two workers on the shared subscription both ingest; each message is stored once.

    Every message is published twice in a row, so the broker's round robin usually hands
    the two copies to different workers committing at the same time: one copy is accepted,
    the other is a duplicate, whichever worker wins.
    """
    messages = [envelope(signer) for _ in range(300)]
    first, second = open_storage(database), open_storage(database)
    try:
        async with worker(first, broker, "etika-platform-a") as a, \
                worker(second, broker, "etika-platform-b") as b:
            await publish(broker, [up(m) for m in messages for _copy in (1, 2)])
            seen = await acks.wait_for(2 * len(messages))
        assert a.stats.received > 0 and b.stats.received > 0
        assert a.stats.received + b.stats.received == 2 * len(messages)
        by_message: dict[str, list[str]] = {}
        for ack in seen:
            by_message.setdefault(ack.message_id, []).append(ack.status)
        assert set(by_message) == {m.message_id for m in messages}
        assert all(sorted(s) == ["accepted", "duplicate"] for s in by_message.values())
        assert first.message_count() == len(messages)
    finally:
        first.close()
        second.close()


def _serve(database: str, broker: Broker, http_port: int, log: Path) -> subprocess.Popen[bytes]:
    platform_data = log.parent / "platform-data"
    platform_public_key(platform_data)  # `platform key` first: serve only opens the key
    return subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(platform_data),
         "platform", "serve",
         "--database", database, "--mqtt-host", broker.host,
         "--mqtt-port", str(broker.platform_port), "--mqtt-ca", str(broker.pki.ca_pem),
         "--mqtt-cert", str(broker.pki.platform_pem), "--mqtt-key", str(broker.pki.platform_key),
         "--http-port", str(http_port), "--worker-id", "killme", "--batch", "50"],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


async def _until_subscribed(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
                if health.get("mqtt") == "subscribed":
                    return
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_platform_killed_and_restarted_mid_drain(
    broker: Broker, acks: AckListener, database: str, storage: PlatformStorage,
    signer: SoftwareSigner, tmp_path: Path,
) -> None:
    """SIGKILL the serving process mid-drain, restart it: every message is stored exactly once."""
    messages = [envelope(signer) for _ in range(2000)]
    port, log = free_port(), tmp_path / "platform.log"
    process = _serve(database, broker, port, log)
    try:
        await _until_subscribed(process, port, log)
        await publish(broker, [up(m) for m in messages[:1200]])
        await acks.wait_for(200)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        # The rest is published while no platform runs: the broker keeps it for the session.
        await publish(broker, [up(m) for m in messages[1200:]])
        process = _serve(database, broker, port, log)
        await _until_subscribed(process, port, log)
        async with asyncio.timeout(60):
            while acks.delivered() != {m.message_id for m in messages}:
                await acks.wait_for(len(acks.acks) + 1)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text.splitlines()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
    assert storage.message_count(TERMINAL_ID) == len(messages)
    assert not [a for a in acks.acks if a.status == "rejected"]
    # The restarted worker's own view: connected, and it ingested the rest.
    assert "etika_platform_mqtt_connected 1.0" in metrics
    assert any(line.startswith('etika_platform_uplinks_total{outcome="accepted"}')
               for line in metrics)


class FailsTwice:
    """A storage whose first two commits fail (database restarting), then works."""

    def __init__(self, inner: PlatformStorage) -> None:
        self.inner = inner
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ingest(self, uplinks: Sequence[Uplink], received_at: str) -> list[IngestOutcome]:
        if self.failures < 2:
            self.failures += 1
            raise StorageError("database restarting")
        return self.inner.ingest(uplinks, received_at)


async def test_database_failure_keeps_the_batch_until_it_commits(
    broker: Broker, acks: AckListener, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """A StorageError acks nothing; the batch is retried and acked once it commits."""
    message = envelope(signer)
    flaky = FailsTwice(storage)
    async with worker(flaky, broker) as consumer:
        await publish(broker, [up(message)])
        seen = await acks.wait_for(1)
    assert flaky.failures == 2
    assert consumer.stats.last_error is not None and "database" in consumer.stats.last_error
    assert [(a.message_id, a.status) for a in seen] == [(message.message_id, "accepted")]
    assert storage.message_count() == 1


async def test_broker_restart_is_survived(
    broker: Broker, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """The consumer reconnects by itself after the broker went away and came back."""
    async with worker(storage, broker) as consumer:
        broker.stop()
        broker.start()
        await asyncio.wait_for(_resubscribed(consumer), 30)
        # The ack listener lost its session with the broker too: ask over a fresh one.
        listener = AckListener()
        ready = asyncio.Event()
        task = asyncio.create_task(listener.run(broker, ready))
        await asyncio.wait_for(ready.wait(), 10)
        message = envelope(signer)
        await publish(broker, [up(message)])
        seen = await listener.wait_for(1)
        task.cancel()
    assert consumer.stats.sessions >= 2
    assert [(a.message_id, a.status) for a in seen] == [(message.message_id, "accepted")]


async def _resubscribed(consumer: UplinkConsumer) -> None:
    while consumer.stats.sessions < 2 or not consumer.subscribed.is_set():
        await asyncio.sleep(0.05)


async def test_held_message_gets_no_ack_until_its_key_is_registered(
    broker: Broker, acks: AckListener, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """After a key rotation nothing is acked (so nothing dead-letters) until registration."""
    rotated = SoftwareSigner.generate(key_version=2)
    held = envelope(rotated)
    marker = envelope(signer)
    async with worker(storage, broker) as consumer:
        await publish(broker, [up(held), up(marker)])
        seen = await acks.wait_for(1)
        assert [a.message_id for a in seen] == [marker.message_id]
        assert consumer.stats.held == 1
        storage.register_key(TERMINAL_ID, 2, rotated.public_key_pem().decode(), "later")
        await publish(broker, [up(held)])  # the terminal's retry
        seen = await acks.wait_for(2)
    assert (seen[1].message_id, seen[1].status) == (held.message_id, "accepted")
