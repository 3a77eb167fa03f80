"""Benchmark: uplinks per second one platform worker verifies, commits and acknowledges.

Ours: :class:`edge_sync.platform.consumer.UplinkConsumer` draining a backlog of signed
transaction envelopes queued at the broker for its persistent session — pydantic parsing,
ECDSA P-256 verification, one database transaction per batch, an application ack published
per message, then the broker's PUBACKs — until every message is accepted.
Raw limit, same broker, same run: a bare aiomqtt QoS 1 subscriber draining the same number
of same-size messages queued for its session, doing nothing but receive (paho PUBACKs).

Several workers share the uplink (shared subscription): the fleet's rate is this times the
number of workers, up to the database's limit. Prints one JSON object with both rates and
their ``ratio``.

    .venv/bin/python bench/sync_platform.py [--messages 5000] [--database postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from edge_sync.messages import Envelope, build_envelope, uplink_topic
from edge_sync.pki import ensure_test_pki
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.storage import open_storage
from edge_sync.platform.topics import platform_topic
from edge_sync.signing import SoftwareSigner
from tests.fixtures.mosquitto import MosquittoBroker

TERMINAL_ID = "ETK00001"
WINDOW = 200


def envelopes(signer: SoftwareSigner, count: int, start: int) -> list[Envelope]:
    return [
        build_envelope(
            signer,
            terminal_id=TERMINAL_ID,
            kind="transaction",
            seq=start + i,
            idempotency_key=f"txn-{start + i}",
            payload={
                "payment_id": f"pay-{start + i:08d}",
                "amount_minor": 1000 + i,
                "currency": "MAD",
                "status": "completed",
            },
        )
        for i in range(count)
    ]


async def publish(broker: MosquittoBroker, items: list[tuple[str, bytes]]) -> None:
    # As the terminal, with its certificate: the broker's ACL allows nothing else.
    async with broker.client(TERMINAL_ID) as client:
        client.pending_calls_threshold = WINDOW + 1
        for first in range(0, len(items), WINDOW):
            await asyncio.gather(
                *(client.publish(t, b, qos=1) for t, b in items[first : first + WINDOW])
            )


def _session(expiry: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = expiry
    properties.ReceiveMaximum = 1000
    return properties


async def raw(broker: MosquittoBroker, bodies: list[bytes], progress: Progress) -> float:
    """A bare QoS 1 consumer draining ``len(bodies)`` messages queued for its session."""
    topic_filter = f"$share/bench-raw/{platform_topic(f'etika/v1/t/{TERMINAL_ID}/up/raw')}"

    def client(clean: bool, expiry: int) -> aiomqtt.Client:
        return broker.client(
            "etika-platform", identifier="etika-platform-bench-raw", clean_start=clean,
            properties=_session(expiry),
        )

    async with client(True, 3600) as consumer:
        await consumer.subscribe(topic_filter, qos=1)
    await publish(broker, [(f"etika/v1/t/{TERMINAL_ID}/up/raw", body) for body in bodies])
    task = progress.add_task("raw aiomqtt QoS 1 consumer", total=len(bodies))
    received = 0
    async with client(False, 0) as consumer:  # expiry 0: the session goes when we leave
        start = time.perf_counter()
        async for _message in consumer.messages:
            received += 1
            progress.advance(task)
            if received == len(bodies):
                break
        elapsed = time.perf_counter() - start
    return len(bodies) / elapsed


async def ours(
    broker: MosquittoBroker, database: str, items: list[Envelope], progress: Progress
) -> float:
    storage = open_storage(database)
    settings = broker.platform_settings(client_id="etika-platform-bench")
    signer = SoftwareSigner.generate()  # the platform key: every ack is signed
    consumer = UplinkConsumer(Ingestor(storage, signer=signer), settings, max_batch=500)
    # Create the worker's session, then queue the backlog for it while it is away.
    first = asyncio.create_task(consumer.run())
    await asyncio.wait_for(consumer.subscribed.wait(), 10)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await publish(broker, [(uplink_topic(e.terminal_id, e.kind), e.to_json()) for e in items])
    task = progress.add_task("etika platform worker, committed + acked", total=len(items))
    consumer = UplinkConsumer(Ingestor(storage, signer=signer), settings, max_batch=500)
    start = time.perf_counter()
    running = asyncio.create_task(consumer.run())
    done = 0
    while consumer.stats.accepted < len(items):
        await asyncio.sleep(0.01)
        progress.advance(task, consumer.stats.accepted - done)
        done = consumer.stats.accepted
    elapsed = time.perf_counter() - start
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    if consumer.stats.rejected or consumer.stats.duplicate:
        raise RuntimeError(f"unexpected acks: {consumer.stats}")
    storage.close()
    return len(items) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", help="postgresql://… (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    signer = SoftwareSigner.generate()
    with tempfile.TemporaryDirectory(prefix="etika-bench-platform-") as tmp:
        root = Path(tmp)
        (root / "broker").mkdir()
        broker = MosquittoBroker(directory=root / "broker", pki=ensure_test_pki(root / "pki"))
        broker.start()
        database = args.database or str(root / "platform.db")
        storage = open_storage(database)
        storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "bench")
        storage.close()
        raw_rates, our_rates = [], []
        size = 0
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                transient=True,
            ) as progress:
                # Alternate, best of each: the machine is shared.
                for round_no in range(args.rounds):
                    items = envelopes(signer, args.messages, round_no * args.messages)
                    bodies = [e.to_json() for e in items]
                    size = len(bodies[0])
                    raw_rates.append(asyncio.run(raw(broker, bodies, progress)))
                    our_rates.append(asyncio.run(ours(broker, database, items, progress)))
        finally:
            broker.kill()
    raw_rate, our_rate = max(raw_rates), max(our_rates)
    print(
        json.dumps(
            {
                "bench": "platform",
                "messages": args.messages,
                "envelope_bytes": size,
                "database": "postgresql" if args.database else "sqlite",
                "ours_committed_acked_msgs_per_s": round(our_rate, 1),
                "raw_qos1_consume_msgs_per_s": round(raw_rate, 1),
                "ratio": round(our_rate / raw_rate, 3),
                "rounds": {
                    "ours": [round(r, 1) for r in our_rates],
                    "raw": [round(r, 1) for r in raw_rates],
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
