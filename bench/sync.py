"""Benchmark: acknowledged messages per second draining 20,000 queued transactions.

Ours: the terminal's whole path — SQLite outbox (claim, settle), ECDSA signing, pydantic
envelopes, MQTT 5 QoS 1 publishes through :class:`edge_sync.mqtt.MqttTransport`, and the
receiver's signed application-level ack on ``etika/v1/t/{id}/ack``, verified — until every
row is delivered. Both over TLS with client certificates, on the broker the project ships
(its ACL).
Raw limit, same broker, same run: a bare aiomqtt QoS 1 publish loop of the same payload size
(bounded in flight the same way), waiting for each PUBACK and nothing else.

A receiver acking by message id (no validation: the bench measures the terminal; the
platform's own rate is ``bench/sync_platform.py``) runs in its own process, subscribed during
both measurements so the broker fans out the same traffic. Prints one JSON object
with both rates and their ``ratio`` (target ≥ 0.5).

    .venv/bin/python bench/sync.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from edge_sync.mqtt import MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.pki import ensure_test_pki
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from tests.fixtures.mosquitto import MosquittoBroker
from tests.integration.sync_receiver import AckingReceiver

TERMINAL_ID = "ETK00001"
MAX_INFLIGHT = 1000


#: The stand-in platform's key: the receiver signs every ack with it, the terminal verifies.
PLATFORM = SoftwareSigner.generate()


def _receiver_process(
    host: str, port: int, tls: tuple[Path, Path, Path], key_pem: bytes, ready: Any
) -> None:
    receiver = AckingReceiver(host, port, client_id="bench-receiver", validate=False, tls=tls,
                              ack_signer=SoftwareSigner.from_pem(key_pem))
    receiver.start()
    ready.set()
    threading.Event().wait()  # until the bench terminates this process


def _payload(i: int) -> dict[str, object]:
    return {
        "payment_id": f"pay-{i:08d}",
        "amount_minor": 1000 + i,
        "currency": "MAD",
        "status": "completed",
        "pan_masked": "476173******0010",
        "card_token": f"tok_{i:032x}",
    }


def fill(store: Store, count: int) -> None:
    now = time.time()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, ref_id,"
            " payload, priority, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    f"00000000-0000-4000-8000-{i:012d}",
                    "platform",
                    "transaction",
                    f"txn-{i}",
                    f"pay-{i}",
                    json.dumps(_payload(i)),
                    100,
                    now,
                    now,
                )
                for i in range(count)
            ],
        )


async def ours(broker: MosquittoBroker, db: Path, count: int, progress: Progress) -> float:
    store = Store.open(db)
    fill(store, count)
    signer = SoftwareSigner.generate()
    task = progress.add_task("etika outbox → MQTT, acked", total=count)
    settings = WorkerSettings(
        terminal_id=TERMINAL_ID,
        batch_size=500,
        max_in_flight=2000,
        ack_timeout_s=30,
        retry=RetryPolicy(base_s=0.05, cap_s=1.0),
    )
    link = broker.terminal_link(
        TERMINAL_ID, max_inflight=MAX_INFLIGHT, platform_public_key=PLATFORM.public_key_pem()
    )
    async with MqttTransport(link) as transport:
        if not await transport.wait_connected(10):
            raise RuntimeError("the bench could not connect to its broker")
        worker = OutboxWorker(
            SqliteOutbox(store),
            {"platform": transport},
            signer,
            settings,
            on_progress=lambda _d, n: progress.advance(task, n),
        )
        start = time.perf_counter()
        delivered = 0
        while delivered < count:
            delivered += (await worker.drain()).delivered
        elapsed = time.perf_counter() - start
        worker.close()
    store.close()
    return count / elapsed


async def raw(broker: MosquittoBroker, count: int, size: int, progress: Progress) -> float:
    task = progress.add_task("raw aiomqtt QoS 1 publish loop", total=count)
    payload = b"x" * size
    window = asyncio.Semaphore(MAX_INFLIGHT)
    # The terminal's own certificate and uplink topic: the broker's ACL allows nothing else.
    async with broker.client(TERMINAL_ID, max_inflight_messages=MAX_INFLIGHT) as client:
        client.pending_calls_threshold = MAX_INFLIGHT + 1

        async def one(i: int) -> None:
            try:
                await client.publish(
                    f"etika/v1/t/{TERMINAL_ID}/up/raw", payload, qos=1, timeout=math.inf
                )
            finally:
                window.release()
                progress.advance(task, 1)

        start = time.perf_counter()
        tasks = []
        for i in range(count):
            await window.acquire()
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="etika-bench-sync-") as tmp:
        root = Path(tmp)
        (root / "broker").mkdir()
        broker = MosquittoBroker(directory=root / "broker", pki=ensure_test_pki(root / "pki"))
        broker.start()
        ready = multiprocessing.Event()
        receiver = multiprocessing.Process(
            target=_receiver_process,
            args=(broker.host, broker.platform_port, broker.client_files("etika-platform"),
                  PLATFORM.private_key_pem(), ready),
            daemon=True,
        )
        receiver.start()
        try:
            if not ready.wait(15):
                raise RuntimeError("the bench's receiver did not subscribe")
            sample = SoftwareSigner.generate()
            from edge_sync.messages import build_envelope

            size = len(
                build_envelope(
                    sample,
                    terminal_id=TERMINAL_ID,
                    kind="transaction",
                    seq=1,
                    idempotency_key="txn-1",
                    payload=_payload(1),
                ).to_json()
            )
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                transient=True,
                console=None,
            ) as progress:
                # Alternate the two, best of each: the machine is shared, and a burst of
                # someone else's load should not decide the ratio.
                raw_rates, our_rates = [], []
                for round_no in range(args.rounds):
                    raw_rates.append(asyncio.run(raw(broker, args.messages, size, progress)))
                    db = root / f"etika-{round_no}.db"
                    our_rates.append(asyncio.run(ours(broker, db, args.messages, progress)))
        finally:
            receiver.terminate()
            receiver.join(5)
            broker.kill()
    raw_rate, our_rate = max(raw_rates), max(our_rates)
    print(
        json.dumps(
            {
                "bench": "sync",
                "messages": args.messages,
                "envelope_bytes": size,
                "ours_acked_msgs_per_s": round(our_rate, 1),
                "raw_qos1_publish_msgs_per_s": round(raw_rate, 1),
                "ratio": round(our_rate / raw_rate, 3),
                "target_ratio": 0.5,
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
