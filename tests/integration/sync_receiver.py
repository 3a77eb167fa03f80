"""A small MQTT receiver for the terminal-side sync tests and the bench: validates, verifies,
deduplicates and acks by message id, exactly as the wire contract says (by default, as the
platform does, in one signed batch per terminal for the messages that arrive together).

It answers as the platform's ingestion does (checked on every link by
``tests/edge_sync/test_transport_contract.py``): no ack at all for a message whose signature
could not be checked (kept in ``refused``: anyone could have sent it), ``rejected`` for a
verified message that reuses another's id with other content, else ``accepted`` or
``duplicate``.

It stands in for the platform's consumer (``edge_sync.platform``, whose own end-to-end tests
are the platform's), and keeps what it committed so tests can check that nothing was lost or
duplicated. It is a plain paho client on its own network thread (``loop_start``), which
reconnects by itself when the broker is restarted under it, and keeps its broker-side session
(``clean_start=False``) so uplinks published while it was away reach it afterwards.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.ack_batch import MAX_ACKS_PER_BATCH, build_ack_batch
from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.messages import (
    CONTENT_FIELDS,
    REUSED_ID_REASON,
    Ack,
    AckStatus,
    build_ack,
    parse_envelope,
    parse_topic,
    verify_envelope,
)
from edge_sync.platform.topics import platform_ack_topic, platform_topic, terminal_topic
from edge_sync.signing import Signer, SoftwareSigner

__all__ = ["PLATFORM_KEY", "AckingReceiver", "receiver_on"]

#: The stand-in platform's signing key: the terminal links of these tests verify acks with
#: its public half (``PLATFORM_KEY.public_key_pem()``).
PLATFORM_KEY = SoftwareSigner.generate()


@dataclass
class AckingReceiver:
    host: str
    port: int
    public_key_pem: bytes | None = None
    client_id: str = "test-receiver"
    committed: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    duplicates: int = 0
    #: ``(message_id, reason)`` of verified messages answered ``rejected``.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: ``(message_id, reason)`` of messages refused without an ack (signature unchecked).
    refused: list[tuple[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    #: What was committed under each message id (a reused id with other content is rejected).
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    #: False: only read the message id and ack it (the bench, which measures the terminal).
    validate: bool = True
    #: ``(ca, cert, key)`` of the platform certificate (the broker's ACL requires it).
    tls: tuple[Path, Path, Path] | None = None
    #: Signs every ack, as the platform does (terminals settle nothing with an unsigned one).
    ack_signer: Signer = PLATFORM_KEY
    #: True: as the platform, one signed batch per terminal for what arrived together (the
    #: acks wait for a flusher thread, at most ``batch_wait_s``); False: one signed ack each.
    batch_acks: bool = True
    batch_wait_s: float = 0.002
    _client: Any = None
    _pending: list[tuple[str, Ack]] = field(default_factory=list)
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _flusher: threading.Thread | None = None
    _stopping: bool = False

    def _ack(self, terminal_id: str, message_id: str, seq: int, status: AckStatus,
             reason: str | None = None) -> Ack:
        if self.batch_acks:  # signed later, with its batch
            return Ack(message_id=message_id, seq=seq, status=status, reason=reason)
        return build_ack(self.ack_signer, terminal_id=terminal_id, destination="platform",
                         message_id=message_id, seq=seq, status=status, reason=reason)

    def _send(self, client: mqtt.Client, terminal_id: str, ack: Ack) -> None:
        if not self.batch_acks:
            client.publish(platform_ack_topic(terminal_id), ack.to_json(), qos=1)
            return
        with self._wake:
            self._pending.append((terminal_id, ack))
            self._wake.notify()

    def _flush_forever(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            time.sleep(self.batch_wait_s)  # let what arrives together go together
            with self._wake:
                pending, self._pending = self._pending, []
            per_terminal: dict[str, list[Ack]] = {}
            for terminal_id, ack in pending:
                per_terminal.setdefault(terminal_id, []).append(ack)
            client = self._client
            for terminal_id, acks in per_terminal.items():
                for start in range(0, len(acks), MAX_ACKS_PER_BATCH):
                    batch = build_ack_batch(self.ack_signer, terminal_id=terminal_id,
                                            destination="platform",
                                            acks=acks[start:start + MAX_ACKS_PER_BATCH])
                    if client is not None:
                        client.publish(platform_ack_topic(terminal_id), batch.to_json(), qos=1)

    def _ack_only(self, terminal_id: str, raw: bytes) -> Ack | None:
        try:
            body = json.loads(raw)
            message_id, seq = body["message_id"], int(body["seq"])
        except (ValueError, KeyError, TypeError):
            return None
        status = "duplicate" if message_id in self.seen else "accepted"
        if status == "accepted":
            self.seen.add(message_id)
            self.committed.append(message_id)
        else:
            self.duplicates += 1
        return self._ack(terminal_id, message_id, seq, status)

    def judge(self, terminal_id: str, raw: bytes) -> Ack | None:
        """The platform's answer to one uplink on ``terminal_id``'s topic (``None``: none)."""
        try:
            env = parse_envelope(raw)
            if env.terminal_id != terminal_id:
                raise MessageFormatError(f"terminal_id {env.terminal_id} is not the topic's")
            if self.public_key_pem is not None:
                verify_envelope(env, self.public_key_pem)
        except (MessageFormatError, SignatureError) as exc:
            message_id = exc.fields.get("message_id")
            self.refused.append((message_id if isinstance(message_id, str) else "", exc.message))
            return None
        content = {name: env.model_dump(mode="json").get(name) for name in CONTENT_FIELDS}
        if env.message_id in self.seen and self.contents.get(env.message_id) != content:
            self.rejected.append((env.message_id, REUSED_ID_REASON))
            return self._ack(terminal_id, env.message_id, env.seq, "rejected",
                             REUSED_ID_REASON)
        if env.message_id in self.seen:
            self.duplicates += 1
            return self._ack(terminal_id, env.message_id, env.seq, "duplicate")
        self.seen.add(env.message_id)
        self.contents[env.message_id] = content
        self.committed.append(env.message_id)
        self.seqs.append(env.seq)
        return self._ack(terminal_id, env.message_id, env.seq, "accepted")

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe(platform_topic("etika/v1/t/+/up/#"), qos=1)

    def _on_subscribe(self, *_: object) -> None:
        self.ready.set()

    def _on_disconnect(self, *_: object) -> None:
        self.ready.clear()

    def _on_message(self, client: mqtt.Client, _userdata: object, message: Any) -> None:
        try:
            terminal_id, _, _ = parse_topic(terminal_topic(message.topic))
        except MessageFormatError:
            return
        ack = (self._ack_only(terminal_id, message.payload) if not self.validate
               else self.judge(terminal_id, message.payload))
        if ack is not None:
            self._send(client, terminal_id, ack)

    def start(self, timeout: float = 10) -> None:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if self.tls is not None:
            ca, cert, key = self.tls
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
            context.load_cert_chain(str(cert), str(key))
            client.tls_set_context(context)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect(self.host, self.port, clean_start=False, properties=properties)
        self._client = client
        if self.batch_acks:
            self._stopping = False
            self._flusher = threading.Thread(target=self._flush_forever, daemon=True,
                                             name="receiver-ack-flusher")
            self._flusher.start()
        client.loop_start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError("the test receiver did not subscribe in time")

    def stop(self) -> None:
        if self._flusher is not None:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            self._flusher.join(5)
            self._flusher = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def __enter__(self) -> AckingReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def receiver_on(broker: Any, public_key_pem: bytes | None = None, **options: Any) -> AckingReceiver:
    """A receiver connected to ``broker`` (a ``MosquittoBroker``) as the platform."""
    return AckingReceiver(broker.host, broker.platform_port, public_key_pem,
                          tls=broker.client_files("etika-platform"), **options)
