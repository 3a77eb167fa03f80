"""The terminal's MQTT link (aiomqtt): uplink, acks and downlinks over one persistent session.

MQTT 5, QoS 1, a fixed client id per terminal with ``clean_start=False`` and a session expiry,
so acks and downlinks published while the terminal is offline wait for it at the broker. TLS
with the terminal's client certificate when a CA file is given.

Topics (:mod:`edge_sync.messages`): publishes ``etika/v1/t/{id}/up/{kind}``, subscribes
``etika/v1/t/{id}/ack`` and ``etika/v1/t/{id}/down/+``.

Acks come one by one or, from the platform, as one signed batch per commit
(:mod:`edge_sync.ack_batch`). An ack settles a message only when it verifies with the
platform key and is bound to this
terminal and this link's destination (:class:`~edge_sync.messages.AckVerifier`), and names
a message sent here and not yet answered, under the seq it was sent with, and was issued
after it was first sent (:mod:`edge_sync.ack_binding`); anything else is dropped, logged and counted
(``refused_acks``): a client that can publish on the ack topic cannot make the terminal
forget its transactions.

aiomqtt has no back-pressure: :meth:`MqttTransport.deliver` bounds the messages sent and not
yet acknowledged with a semaphore (``max_inflight``) and hands them to paho in claim order
under a lock, so batches never interleave on the wire. A connection loop (a named task)
reconnects with jittered backoff; while it is down ``deliver`` raises :class:`TransportError`
at once, which lets :class:`~edge_sync.transport.FailoverTransport` switch to HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS, error_string
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.ack_batch import check_ack_batch, is_ack_batch
from edge_sync.ack_binding import SentLog
from edge_sync.bounded_json import validate_json
from edge_sync.errors import MessageFormatError, SignatureError, TransportError
from edge_sync.http_client import client_tls_context
from edge_sync.messages import (
    TERMINALS_MOUNT_POINT,
    Ack,
    AckVerifier,
    Envelope,
    ack_topic,
    downlink_wildcard,
    parse_topic,
    uplink_topic,
)

__all__ = ["DownlinkCallback", "MqttLinkSettings", "MqttTransport"]

log = logging.getLogger(__name__)

#: ``(kind, raw_payload)`` of a message received on ``down/{kind}``.
DownlinkCallback = Callable[[str, bytes], Awaitable[object]]


@dataclass(frozen=True)
class MqttLinkSettings:
    """Where the broker is and who the terminal is (from the profile's ``[sync]``)."""

    terminal_id: str
    host: str = "127.0.0.1"
    port: int = 8883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = None
    keepalive: int = 30
    #: How long the broker keeps the session (acks, downlinks) while the terminal is away.
    session_expiry_s: int = 7 * 24 * 3600
    #: Publishes awaiting a PUBACK at once (our back-pressure; aiomqtt has none).
    max_inflight: int = 1000
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 30.0
    #: The platform's public key (PEM): acks that do not verify with it settle nothing.
    platform_public_key: bytes | str | None = None
    #: The outbox destination this link carries; every ack must name it.
    destination: str = "platform"

    @property
    def identifier(self) -> str:
        return self.client_id or f"etika-terminal-{self.terminal_id}"

    def tls_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        try:
            return client_tls_context(self.ca_file, self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"cannot load the MQTT TLS files ({self.ca_file}, {self.cert_file}): {exc}; "
                "run scripts/setup to create the test PKI or fix the [sync] paths",
                host=self.host,
                port=self.port,
            ) from exc


def _fast_ack(raw: bytes) -> Ack:
    # The hot path (one ack per uplink message): pydantic's JSON parser straight away,
    # bounded (size; depth by the model's shape) and mapped to MessageFormatError.
    return validate_json(Ack, raw, "ack")


class MqttTransport:
    """A :class:`~edge_sync.transport.Transport` over MQTT; use as ``async with``."""

    def __init__(
        self,
        settings: MqttLinkSettings,
        *,
        on_downlink: DownlinkCallback | None = None,
        on_late_ack: Callable[[Ack], None] | None = None,
        sent_log: SentLog | None = None,
    ) -> None:
        self._settings = settings
        #: What was sent and not yet settled: acks are held to its seq and first send time.
        self._sent = sent_log if sent_log is not None else SentLog()
        self._on_downlink = on_downlink
        self._on_late_ack = on_late_ack
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[Ack]] = {}
        self._window = asyncio.Semaphore(settings.max_inflight)
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._tls = settings.tls_context()
        self.last_error: str | None = None
        self.connections = 0
        self._verifier = AckVerifier.for_link(
            settings.platform_public_key, settings.terminal_id, settings.destination
        )
        #: Acks dropped: unsigned, forged, misdirected, or for nothing sent here.
        self.refused_acks = 0

    @property
    def name(self) -> str:
        return "mqtt"

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> MqttTransport:
        self._task = asyncio.create_task(self._connection_loop(), name="sync-mqtt-connection")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected (subscriptions in place), False after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _make_client(self) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._settings.session_expiry_s
        client = aiomqtt.Client(
            self._settings.host,
            self._settings.port,
            identifier=self._settings.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            keepalive=self._settings.keepalive,
            properties=properties,
            tls_context=self._tls,
            max_inflight_messages=self._settings.max_inflight,
            timeout=10,
        )
        # aiomqtt logs a warning per publish beyond 10 pending ones; ours are bounded on purpose.
        client.pending_calls_threshold = self._settings.max_inflight + 1
        return client

    async def _connection_loop(self) -> None:
        delay = self._settings.reconnect_min_s
        terminal_id = self._settings.terminal_id
        while True:
            try:
                async with self._make_client() as client:
                    # Acks are the hot path (one per uplink message): paho's per-topic
                    # callback settles them in place, on this event loop's thread, skipping
                    # aiomqtt's message queue and its task per message. Downlinks (rare)
                    # still come through ``client.messages``.
                    for topic in (ack_topic(terminal_id),
                                  TERMINALS_MOUNT_POINT + ack_topic(terminal_id)):
                        # Mosquitto 2.0.11 delivers it with the listener's mount point
                        # still on (messages.TERMINALS_MOUNT_POINT), later ones without.
                        client._client.message_callback_add(topic, self._on_paho_ack)
                    await client.subscribe(
                        [(ack_topic(terminal_id), 1), (downlink_wildcard(terminal_id), 1)]
                    )
                    self._client = client
                    self._connected.set()
                    self.connections += 1
                    self.last_error = None
                    delay = self._settings.reconnect_min_s
                    log.info(
                        "sync: MQTT connected to %s:%s", self._settings.host, self._settings.port
                    )
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                log.warning("sync: MQTT link down (%s); reconnecting in %.1f s", exc, delay)
            except Exception as exc:  # the loop must outlive a surprise; it is logged
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("sync: MQTT connection loop failed; reconnecting")
            finally:
                self._client = None
                self._connected.clear()
                self._fail_waiters("MQTT link lost before the ack arrived")
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(self._settings.reconnect_max_s, delay * 2)

    def _release_window(self, _future: asyncio.Future[Ack]) -> None:
        self._window.release()

    def _fail_waiters(self, why: str) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(TransportError(why))

    def _on_paho_ack(self, _client: object, _userdata: object, message: Any) -> None:
        self._settle_ack(message.payload)

    def _settle_ack(self, raw: bytes) -> None:
        """One signed ack, or a signed batch of them (the platform's, one per commit)."""
        try:
            if self._verifier is None:
                raise SignatureError(
                    "no platform public key is configured (sync.toml platform_public_key): "
                    "acks cannot be verified", reason="no key"
                )
            if is_ack_batch(raw):
                acks = check_ack_batch(self._verifier, raw)
            else:
                acks = [self._verifier.check(_fast_ack(raw))]
            # Only answers to what was sent here, with its seq and not issued before it.
            settling = self._sent.settleable(acks)
        except (MessageFormatError, SignatureError) as exc:
            self.refused_acks += 1
            log.warning("sync: ack refused: %s", exc)
            return
        self.refused_acks += len(acks) - len(settling)
        for ack in settling:
            self._sent.forget(ack.message_id)
            waiter = self._waiters.pop(ack.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ack)
            elif self._on_late_ack is not None:
                self._on_late_ack(ack)

    async def _dispatch(self, topic: str, payload: object) -> None:
        # aiomqtt hands bytes; anything else is made bytes without raising (surrogatepass:
        # the bounded decoder refuses what is not UTF-8).
        raw = (bytes(payload) if isinstance(payload, bytes | bytearray)
               else str(payload).encode("utf-8", "surrogatepass"))
        try:
            _, direction, kind = parse_topic(topic.removeprefix(TERMINALS_MOUNT_POINT))
        except MessageFormatError:
            log.warning("sync: message on unexpected topic %r ignored", topic)
            return
        if direction == "ack":
            self._settle_ack(raw)
        elif direction == "down" and kind is not None and self._on_downlink is not None:
            try:
                await self._on_downlink(kind, raw)
            except Exception:  # a bad downlink must not take the link down; it is reported
                log.exception("sync: downlink handler failed on %s", topic)

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        client = self._client
        if client is None:
            raise TransportError(
                f"MQTT broker {self._settings.host}:{self._settings.port} is not connected"
                + (f" ({self.last_error})" if self.last_error else ""),
                host=self._settings.host,
                port=self._settings.port,
            )
        loop = asyncio.get_running_loop()
        paho = client._client
        futures: dict[str, asyncio.Future[Ack]] = {}
        try:
            async with self._send_lock:
                for envelope in envelopes:
                    # The window counts messages sent and not yet answered (ack, failure or
                    # timeout); paho queues what exceeds the broker's receive maximum.
                    await self._window.acquire()
                    waiter: asyncio.Future[Ack] = loop.create_future()
                    waiter.add_done_callback(self._release_window)
                    futures[envelope.message_id] = waiter
                    self._waiters[envelope.message_id] = waiter
                    self._sent.sent(envelope.message_id, envelope.seq)
                    # paho's publish, as aiomqtt's own publish calls it, minus the wait for
                    # the PUBACK: the application ack (after the receiver's commit) is what
                    # counts, and it implies the PUBACK. A dropped link fails the waiters.
                    info = paho.publish(
                        uplink_topic(envelope.terminal_id, envelope.kind),
                        envelope.to_json(),
                        qos=1,
                    )
                    if info.rc != MQTT_ERR_SUCCESS:
                        waiter.set_exception(
                            TransportError(f"MQTT publish refused: {error_string(info.rc)}")
                        )
            if futures:
                await asyncio.wait(futures.values(), timeout=timeout)
        finally:
            # Whatever happened (timeout, cancellation), every waiter ends here, so each
            # gives its window slot back exactly once.
            for message_id, waiter in futures.items():
                self._waiters.pop(message_id, None)
                if not waiter.done():
                    waiter.cancel()
        acks: dict[str, Ack] = {}
        failures: list[BaseException] = []
        for waiter_id, done in futures.items():
            if done.cancelled():
                continue
            if (error := done.exception()) is not None:
                failures.append(error)
            else:
                acks[waiter_id] = done.result()
        if failures and not acks:
            raise TransportError(str(failures[0]), host=self._settings.host) from failures[0]
        return acks
