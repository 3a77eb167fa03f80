"""A small MQTT receiver for the terminal-side sync tests: validates, verifies, dedups, acks.

It stands in for the platform's consumer (``edge_sync.platform``), answering on the ack topic
exactly as the wire contract says, and keeps what it committed so tests can check that
nothing was lost or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt

from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.messages import Ack, ack_topic, parse_envelope, parse_topic, verify_envelope


@dataclass
class AckingReceiver:
    host: str
    port: int
    public_key_pem: bytes | None = None
    committed: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def judge(self, raw: bytes, topic: str) -> Ack | None:
        try:
            parse_topic(topic)
        except MessageFormatError:
            return None
        try:
            env = parse_envelope(raw)
            if self.public_key_pem is not None:
                verify_envelope(env, self.public_key_pem)
        except (MessageFormatError, SignatureError) as exc:
            message_id = exc.fields.get("message_id")
            if not isinstance(message_id, str):
                return None
            self.rejected.append((message_id, exc.message))
            return Ack(message_id=message_id, status="rejected", reason=exc.message)
        if env.message_id in self.seen:
            self.duplicates += 1
            return Ack(message_id=env.message_id, status="duplicate")
        self.seen.add(env.message_id)
        self.committed.append(env.message_id)
        self.seqs.append(env.seq)
        return Ack(message_id=env.message_id, status="accepted")

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier="test-receiver",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    max_inflight_messages=1000,
                ) as client:
                    client.pending_calls_threshold = 1_000_000
                    await client.subscribe("etika/v1/t/+/up/#", qos=1)
                    self.ready.set()
                    pending: set[asyncio.Task[None]] = set()
                    async for message in client.messages:
                        topic = str(message.topic)
                        raw = message.payload if isinstance(message.payload, bytes) else b""
                        ack = self.judge(raw, topic)
                        if ack is None:
                            continue
                        terminal_id = topic.split("/")[3]
                        task = asyncio.create_task(
                            client.publish(ack_topic(terminal_id), ack.to_json(), qos=1)
                        )
                        pending.add(task)
                        task.add_done_callback(pending.discard)
            except aiomqtt.MqttError:
                self.ready.clear()
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def acking_receiver(
    host: str, port: int, public_key_pem: bytes | None = None
) -> AsyncIterator[AckingReceiver]:
    receiver = AckingReceiver(host, port, public_key_pem)
    task = asyncio.create_task(receiver.run(), name="test-acking-receiver")
    try:
        await asyncio.wait_for(receiver.ready.wait(), 10)
        yield receiver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
