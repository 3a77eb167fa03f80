"""Attacks through the broker with a valid certificate, against the shipped Mosquitto
configuration and ACL (#12 item 2, #15 item 4). Each is refused and nothing changes.

Terminals name their topics ``etika/v1/t/...``; the platform, on its own listener, names
them under the terminal listener's mount point (``edge_sync.platform.topics``).

Absence is shown without waiting: after the attack, the platform publishes a sentinel on
the attacker's own ack topic; Mosquitto routes messages in order, so an attacker that
receives its sentinel first received nothing it was denied before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import pytest

from edge_sync.ack_batch import build_ack_batch
from edge_sync.messages import Ack, ack_topic, build_ack, build_envelope, uplink_topic
from edge_sync.mqtt import MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.storage import open_storage
from edge_sync.platform.topics import SHARED_UPLINK_FILTER, platform_ack_topic, platform_topic
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from tests.fixtures.mosquitto import PLATFORM_CN, MosquittoBroker

pytestmark = pytest.mark.network

VICTIM, ATTACKER = "ETK00001", "ETK00666"
SENTINEL = b"sentinel"


async def sentinel_then_nothing_else(broker: MosquittoBroker, attacker: aiomqtt.Client) -> list:
    """What ``attacker`` received up to the sentinel the platform sends it now."""
    await attacker.subscribe(ack_topic(ATTACKER), qos=1)
    async with broker.client(PLATFORM_CN, identifier="etika-platform-sentinel") as platform:
        await platform.publish(platform_ack_topic(ATTACKER), SENTINEL, qos=1)
    received = []
    async with asyncio.timeout(30):  # a hang guard; the assertion is on what arrived
        async for message in attacker.messages:
            if message.payload == SENTINEL:
                return received
            received.append((message.topic.value, message.payload))
    return received


@pytest.mark.parametrize(
    "topic_filter",
    [
        f"etika/v1/t/{VICTIM}/up/#",
        "etika/v1/t/+/up/#",
        "$share/etika-platform/etika/v1/t/+/up/#",
        SHARED_UPLINK_FILTER,
        "terminals/etika/v1/t/+/up/#",
        "#",
        f"etika/v1/t/{VICTIM}/ack",
        f"etika/v1/t/{VICTIM}/down/+",
    ],
)
async def test_a_terminal_reads_nothing_of_another(
    mosquitto: MosquittoBroker, topic_filter: str
) -> None:
    """Another terminal's uplink, acks and downlinks never reach a certificate that is not
    theirs, whatever it subscribes to (the platform's shared group included)."""
    async with mosquitto.client(ATTACKER) as attacker, mosquitto.client(VICTIM) as victim:
        await attacker.subscribe(topic_filter, qos=1)
        await victim.publish(uplink_topic(VICTIM, "transaction"), b"victim's sale", qos=1)
        async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-x") as platform:
            await platform.publish(platform_ack_topic(VICTIM), b"victim's ack", qos=1)
            await platform.publish(platform_topic(f"etika/v1/t/{VICTIM}/down/cmd"),
                                   b"victim's cmd", qos=1)
        assert await sentinel_then_nothing_else(mosquitto, attacker) == []


@pytest.mark.parametrize(
    "topic",
    [
        ack_topic(VICTIM),
        f"etika/v1/t/{VICTIM}/down/config",
        uplink_topic(VICTIM, "transaction"),
        platform_ack_topic(VICTIM),  # the platform's name for it, from a terminal
    ],
)
async def test_a_terminal_cannot_publish_as_the_platform_or_another_terminal(
    mosquitto: MosquittoBroker, topic: str
) -> None:
    """Acks, downlinks and uplinks on another terminal's topics are dropped by the broker."""
    async with mosquitto.client(VICTIM) as victim, \
            mosquitto.client(PLATFORM_CN, identifier="etika-platform-watch") as platform:
        await victim.subscribe(ack_topic(VICTIM), qos=1)
        await victim.subscribe(f"etika/v1/t/{VICTIM}/down/+", qos=1)
        await platform.subscribe(platform_topic(f"etika/v1/t/{VICTIM}/up/+"), qos=1)
        async with mosquitto.client(ATTACKER) as attacker:
            await attacker.publish(topic, b"forged", qos=1)
        # Sentinels on the same topics, from their rightful owners, after the attack.
        async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-s") as owner:
            await owner.publish(platform_ack_topic(VICTIM), SENTINEL, qos=1)
        got = []
        async with asyncio.timeout(30):
            async for message in victim.messages:
                if message.payload == SENTINEL:
                    break
                got.append(message.payload)
        assert got == []
        await victim.publish(uplink_topic(VICTIM, "transaction"), SENTINEL, qos=1)
        async with asyncio.timeout(30):
            first = await anext(aiter(platform.messages))
        assert first.payload == SENTINEL


async def test_another_certificate_cannot_take_over_a_terminal_session(
    mosquitto: MosquittoBroker,
) -> None:
    """Connecting with the victim's client id under another certificate leaves the victim
    connected: the broker forces each terminal's client id to its certificate's CN."""
    async with mosquitto.client(VICTIM, identifier=VICTIM) as victim:
        await victim.subscribe(ack_topic(VICTIM), qos=1)
        async with mosquitto.client(ATTACKER, identifier=VICTIM) as attacker:
            await attacker.subscribe(ack_topic(ATTACKER), qos=1)
            # Still connected and still subscribed: the platform's message reaches it.
            async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-s") as owner:
                await owner.publish(platform_ack_topic(VICTIM), SENTINEL, qos=1)
            async with asyncio.timeout(30):
                first = await anext(aiter(victim.messages))
    assert first.payload == SENTINEL


async def test_forged_and_misdirected_acks_settle_nothing(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Acks from anyone with broker access but not the platform key — unsigned, signed by
    another key, or the platform's for another terminal or destination, single or batched —
    and the platform's own acks replayed (issued before the message was first sent: an ack
    or a batch captured from an earlier drain) or reordered (naming another seq under this
    message id) leave the row in flight; the platform's own fresh ack then settles it."""
    platform_key, rogue = SoftwareSigner.generate(), SoftwareSigner.generate()
    store = Store.open(tmp_path / "etika.db")
    outbox = SqliteOutbox(store)
    message_id = outbox.enqueue("platform", "transaction", {"amount_minor": 1}, "t-1", 1.0)
    seq = int(store.connection.execute(
        "SELECT id FROM outbox WHERE message_id = ?", (message_id,)).fetchone()[0])
    earlier = "2026-01-01T00:00:00.000Z"  # long before this run first sent the message
    link = mosquitto.terminal_link(VICTIM, platform_public_key=platform_key.public_key_pem())
    workers: list[OutboxWorker] = []

    def state() -> str:
        return str(store.connection.execute(
            "SELECT state FROM outbox WHERE message_id = ?", (message_id,)).fetchone()[0])

    async with MqttTransport(link, on_late_ack=lambda ack: workers[0].late_ack(ack)) \
            as transport:
        assert await transport.wait_connected(10)
        workers.append(OutboxWorker(
            outbox, {"platform": transport}, SoftwareSigner.generate(),
            WorkerSettings(terminal_id=VICTIM, ack_timeout_s=0.5,
                           retry=RetryPolicy(base_s=30, cap_s=30))))
        report = await workers[0].drain()  # nobody answers: the row waits for its retry
        assert report.delivered == 0 and state() == "pending"
        item = Ack(message_id=message_id, seq=seq, status="accepted")
        moved = Ack(message_id=message_id, seq=seq + 1, status="accepted")
        forged = [
            b'{"v":1,"message_id":"%s","status":"accepted","reason":null}'
            % message_id.encode(),
            build_ack(rogue, terminal_id=VICTIM, destination="platform",
                      message_id=message_id, seq=seq, status="accepted").to_json(),
            build_ack(platform_key, terminal_id=ATTACKER, destination="platform",
                      message_id=message_id, seq=seq, status="accepted").to_json(),
            build_ack(platform_key, terminal_id=VICTIM, destination="pop",
                      message_id=message_id, seq=seq, status="accepted").to_json(),
            # The platform's own, replayed (issued before the first send) or reordered.
            build_ack(platform_key, terminal_id=VICTIM, destination="platform",
                      message_id=message_id, seq=seq, status="accepted",
                      issued_at=earlier).to_json(),
            build_ack(platform_key, terminal_id=VICTIM, destination="platform",
                      message_id=message_id, seq=seq + 1, status="accepted").to_json(),
            # The same as signed batches (the platform's form, one per commit).
            build_ack_batch(rogue, terminal_id=VICTIM, destination="platform",
                            acks=[item]).to_json(),
            build_ack_batch(platform_key, terminal_id=ATTACKER, destination="platform",
                            acks=[item]).to_json(),
            build_ack_batch(platform_key, terminal_id=VICTIM, destination="pop",
                            acks=[item]).to_json(),
            build_ack_batch(platform_key, terminal_id=VICTIM, destination="platform",
                            acks=[item], issued_at=earlier).to_json(),
            build_ack_batch(platform_key, terminal_id=VICTIM, destination="platform",
                            acks=[moved]).to_json(),
        ]
        genuine = build_ack(platform_key, terminal_id=VICTIM, destination="platform",
                            message_id=message_id, seq=seq, status="accepted").to_json()
        async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-forger") as forger:
            for raw in [*forged, genuine]:  # in order: the genuine one is handled last
                await forger.publish(platform_ack_topic(VICTIM), raw, qos=1)
        async with asyncio.timeout(30):  # a hang guard
            while state() != "delivered":
                await asyncio.sleep(0.01)
        assert transport.refused_acks == len(forged)
        workers[0].close()
    store.close()


async def test_uplink_claiming_another_terminal_is_refused_without_an_ack(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A valid certificate publishing, on its own topic, an envelope in another terminal's
    name: the platform stores nothing, acks nothing, logs and counts the refusal."""
    storage = open_storage(str(tmp_path / "platform.db"))
    victim_key, attacker_key = SoftwareSigner.generate(), SoftwareSigner.generate()
    storage.register_key(VICTIM, 1, victim_key.public_key_pem().decode(), "now")
    storage.register_key(ATTACKER, 1, attacker_key.public_key_pem().decode(), "now")
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    consumer = UplinkConsumer(ingestor, mosquitto.platform_settings(client_id="etika-platform-t"))
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 10)
        claim = build_envelope(attacker_key, terminal_id=VICTIM, kind="transaction", seq=1,
                               idempotency_key="x", payload={"amount_minor": 1,
                                                             "currency": "MAD"})
        honest = build_envelope(attacker_key, terminal_id=ATTACKER, kind="note", seq=2,
                                idempotency_key="y", payload={})
        async with mosquitto.client(ATTACKER) as attacker:
            await attacker.subscribe(ack_topic(ATTACKER), qos=1)
            await attacker.publish(uplink_topic(ATTACKER, "transaction"), claim.to_json(), qos=1)
            await attacker.publish(uplink_topic(ATTACKER, "note"), honest.to_json(), qos=1)
            async with asyncio.timeout(30):
                first = await anext(aiter(attacker.messages))
        assert isinstance(first.payload, bytes) and honest.message_id.encode() in first.payload
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert storage.message_count(VICTIM) == 0
    assert ingestor.counts["refused"] == 1
    assert "does not match the channel" in storage.rejections(ATTACKER)[0].reason
    storage.close()


async def test_oversized_message_is_dropped_by_the_broker(mosquitto: MosquittoBroker) -> None:
    """A publish above the shipped message_size_limit never reaches the platform."""
    async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-big") as platform:
        await platform.subscribe(platform_topic(f"etika/v1/t/{VICTIM}/up/+"), qos=1)
        # The broker may also drop the connection of a client sending that much.
        with contextlib.suppress(aiomqtt.MqttError):
            async with mosquitto.client(VICTIM) as sender:
                await sender.publish(uplink_topic(VICTIM, "transaction"), b"x" * 9_500_000,
                                     qos=1)
        async with mosquitto.client(VICTIM) as sender:
            await sender.publish(uplink_topic(VICTIM, "transaction"), SENTINEL, qos=1)
        async with asyncio.timeout(30):
            first = await anext(aiter(platform.messages))
        assert first.payload == SENTINEL


@pytest.mark.parametrize(
    "share_filter", [SHARED_UPLINK_FILTER, "$share/etika-platform/etika/v1/t/+/up/#"]
)
async def test_a_terminal_cannot_join_the_platform_share_group(
    mosquitto: MosquittoBroker, tmp_path: Path, share_filter: str
) -> None:
    """A terminal certificate subscribing to the platform's shared group (its exact filter,
    or as a terminal names the uplink) is no member of it: the terminal listener's mount
    point makes that a plain filter no topic matches. It receives nothing, and the platform
    receives every uplink once, on the first send: one drain delivers all, nothing resent.

    (Mosquitto 2.0's ACL file checks deliveries, not SUBSCRIBE: without the mount point the
    broker routed part of the uplink to such a member and dropped it there, so the terminal
    had to resend — 12 uplinks took 23 sends.)"""
    count = 12
    storage = open_storage(str(tmp_path / "platform.db"))
    victim_key, platform_key = SoftwareSigner.generate(), SoftwareSigner.generate()
    storage.register_key(VICTIM, 1, victim_key.public_key_pem().decode(), "now")
    consumer = UplinkConsumer(Ingestor(storage, signer=platform_key),
                              mosquitto.platform_settings(client_id="etika-platform-share"))
    task = asyncio.create_task(consumer.run())
    store = Store.open(tmp_path / "etika.db")
    outbox = SqliteOutbox(store)
    for i in range(count):
        outbox.enqueue("platform", "transaction", {"amount_minor": i, "currency": "MAD"},
                       f"t-{i}", 1.0)
    link = mosquitto.terminal_link(VICTIM, platform_public_key=platform_key.public_key_pem())
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 10)
        async with mosquitto.client(ATTACKER) as attacker:
            await attacker.subscribe(share_filter, qos=1)
            workers: list[OutboxWorker] = []
            async with MqttTransport(
                    link, on_late_ack=lambda ack: workers[0].late_ack(ack)) as transport:
                assert await transport.wait_connected(10)
                # A generous ack timeout and no retry within the test: a lost uplink would
                # stay pending, not be resent.
                workers.append(OutboxWorker(
                    outbox, {"platform": transport}, victim_key,
                    WorkerSettings(terminal_id=VICTIM, ack_timeout_s=30,
                                   retry=RetryPolicy(base_s=3600, cap_s=3600))))
                report = await workers[0].drain()
                workers[0].close()
            assert await sentinel_then_nothing_else(mosquitto, attacker) == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    attempts = [row[0] for row in store.connection.execute("SELECT attempts FROM outbox")]
    store.close()
    assert (report.delivered, report.retried) == (count, 0)
    assert attempts == [1] * count
    assert consumer.stats.received == count  # each uplink reached the platform once
    assert storage.message_count(VICTIM) == count
    storage.close()
