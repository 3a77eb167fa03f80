"""The MQTT side of a platform worker: shared-subscription consumer, commit, then ack.

Each worker subscribes to ``$share/etika-platform/terminals/etika/v1/t/+/up/#`` (the terminals'
topics under their listener's mount point, :mod:`edge_sync.platform.topics`); the broker hands
each uplink to one worker of the group. The worker takes what has arrived as one batch, ingests
it (one database transaction), and only after the commit publishes the acks on
``terminals/etika/v1/t/{terminal_id}/ack`` (one signed batch per terminal,
:mod:`edge_sync.ack_batch`) and sends the broker its PUBACKs. A worker killed before its
commit acknowledged nothing: the broker redelivers to it when it returns (persistent
session) and the ``message_id`` key turns any second delivery into a ``duplicate``.

A body that is not JSON, truncated or badly signed never stops the loop: it gets a
``rejected`` ack with a reason. A message signed with a key version not registered yet is
*held*: PUBACKed to the broker but given no ack, so the terminal sends it again later. A
database failure is retried with backoff while the batch stays unacknowledged; a broker
failure ends the session and the worker reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiomqtt
import paho.mqtt.client as mqtt

from edge_sync.ack_batch import MAX_ACKS_PER_BATCH, build_ack_batch
from edge_sync.messages import Ack, ack_topic
from edge_sync.platform.errors import StorageError
from edge_sync.platform.ingest import ACK_DESTINATION, Ingestor, RawUplink
from edge_sync.platform.mqtt import MqttSettings, make_client
from edge_sync.platform.topics import SHARED_UPLINK_FILTER, platform_ack_topic, terminal_topic

__all__ = ["ConsumerStats", "UplinkConsumer"]

log = logging.getLogger("etika.platform.consumer")


@dataclass
class ConsumerStats:
    """Counters for the health endpoint and the tests."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    held: int = 0
    batches: int = 0
    sessions: int = 0
    connected: bool = False
    last_error: str | None = None
    by_status: dict[str, int] = field(default_factory=dict)


def _raw(message: aiomqtt.Message) -> tuple[RawUplink, str | None]:
    """The raw uplink and the terminal id to ack on (``None`` when the topic has none)."""
    parts = terminal_topic(message.topic.value).split("/")
    terminal_id = parts[3] if len(parts) > 3 else ""
    # Exactly etika/v1/t/{id}/up/{kind}; anything deeper gets a kind that cannot match.
    kind = parts[5] if len(parts) == 6 else "/".join(parts[5:]) or "?"
    payload = message.payload
    if isinstance(payload, str):
        body = payload.encode()
    elif isinstance(payload, bytes | bytearray):
        body = bytes(payload)
    else:  # aiomqtt types numbers/None for empty payloads
        body = b"" if payload is None else str(payload).encode()
    try:
        ack_topic(terminal_id)
    except ValueError:
        return RawUplink(terminal_id, body, kind), None
    return RawUplink(terminal_id, body, kind), terminal_id


class UplinkConsumer:
    """Consumes uplinks on the shared subscription until cancelled (reconnects by itself)."""

    def __init__(
        self,
        ingestor: Ingestor,
        settings: MqttSettings,
        *,
        max_batch: int = 500,
        reconnect_max_s: float = 10.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.ingestor = ingestor
        self.settings = settings
        self.max_batch = max_batch
        self.reconnect_max_s = reconnect_max_s
        self.stats = ConsumerStats()
        #: Set while subscribed; tests and the health endpoint wait on it.
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.stats.last_error = f"broker: {exc}"
                log.warning("platform consumer lost the broker: %s", exc)
            except Exception as exc:
                # A bug must not stop the worker for good: nothing unacked is lost, the
                # broker redelivers after the reconnect.
                self.stats.last_error = f"internal: {exc!r}"
                log.exception("platform consumer failed; reconnecting")
            finally:
                if self.subscribed.is_set():
                    delay = 0.2  # that session worked: start the backoff afresh
                self.subscribed.clear()
                self.stats.connected = False
            # Jittered backoff so a fleet of workers does not reconnect in lockstep.
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.reconnect_max_s)

    async def _session(self) -> None:
        client = make_client(self.settings, manual_ack=True, persistent=True)
        async with client:
            self.stats.sessions += 1
            self.stats.connected = True
            queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
            reader = asyncio.create_task(self._read(client, queue), name="platform-mqtt-read")
            processor: asyncio.Task[None] | None = None
            try:
                await client.subscribe(SHARED_UPLINK_FILTER, qos=1)
                self.subscribed.set()
                processor = asyncio.create_task(
                    self._process(client, queue), name="platform-mqtt-ingest"
                )
                done, _ = await asyncio.wait(
                    {reader, processor}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # re-raises what ended the session
            finally:
                tasks = [t for t in (reader, processor) if t is not None]
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        async for message in client.messages:
            queue.put_nowait(message)
        raise aiomqtt.MqttError("the broker closed the connection")

    async def _process(
        self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message]
    ) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            decoded = [_raw(message) for message in batch]
            self.stats.received += len(batch)
            acks = await self._ingest([raw for raw, _ in decoded])
            self._finish(client, batch, decoded, acks)

    def _finish(
        self,
        client: aiomqtt.Client,
        batch: Sequence[aiomqtt.Message],
        decoded: Sequence[tuple[RawUplink, str | None]],
        acks: Sequence[Ack | None],
    ) -> None:
        """After the commit: the acks to the terminals, then the PUBACKs to the broker.

        The acks are handed to paho without awaiting their own PUBACKs: paho writes them
        before the PUBACKs that follow, and an ack lost anyway only makes the terminal send
        again (the answer is then ``duplicate``). What matters — no ack before the commit —
        holds because this runs after it.
        """
        paho = client._client
        for terminal_id, body in self._ack_bodies(decoded, acks):
            info = paho.publish(platform_ack_topic(terminal_id), body, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "could not publish an ack")
        for message in batch:
            # PUBACKs in arrival order, as MQTT 5 §4.6 asks.
            paho.ack(message.mid, message.qos)
        self.stats.batches += 1
        for ack in acks:
            if ack is None:
                self.stats.held += 1
                continue
            self.stats.by_status[ack.status] = self.stats.by_status.get(ack.status, 0) + 1
            if ack.status == "accepted":
                self.stats.accepted += 1
            elif ack.status == "duplicate":
                self.stats.duplicate += 1
            else:
                self.stats.rejected += 1
                log.info("refused uplink %s: %s", ack.message_id, ack.reason)

    def _ack_bodies(self, decoded: Sequence[tuple[RawUplink, str | None]],
                    acks: Sequence[Ack | None]) -> list[tuple[str, bytes]]:
        """What to publish: per terminal, one signed batch of the commit's acks (its own
        order kept); single unsigned acks when the ingestor has no key (tests only)."""
        per_terminal: dict[str, list[Ack]] = {}
        for (_, terminal_id), ack in zip(decoded, acks, strict=True):
            if terminal_id is not None and ack is not None:  # None: held, sent again
                per_terminal.setdefault(terminal_id, []).append(ack)
        signer = self.ingestor.signer
        if signer is None:
            return [(t, a.to_json()) for t, acks_of in per_terminal.items() for a in acks_of]
        return [
            (terminal_id, build_ack_batch(
                signer, terminal_id=terminal_id, destination=ACK_DESTINATION,
                acks=acks_of[start:start + MAX_ACKS_PER_BATCH]).to_json())
            for terminal_id, acks_of in per_terminal.items()
            for start in range(0, len(acks_of), MAX_ACKS_PER_BATCH)
        ]

    async def _ingest(self, raws: list[RawUplink]) -> list[Ack | None]:
        delay = 0.2
        while True:
            try:
                # Unsigned here: _finish signs one batch per terminal instead of each ack.
                return await asyncio.to_thread(
                    functools.partial(self.ingestor.ingest, raws, sign_acks=False))
            except StorageError as exc:
                # Nothing of the batch is acknowledged; keep it and try again.
                self.stats.last_error = f"database: {exc}"
                log.warning("platform database failed, batch kept for retry: %s", exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.reconnect_max_s)
