"""The link the outbox worker sends through: the :class:`Transport` Protocol and failover.

A transport takes a batch of signed envelopes *in order* and returns the acknowledgements it
received within the timeout, keyed by ``message_id``. A missing ack means "unknown, send again
later" (the receiver deduplicates); :class:`~edge_sync.errors.TransportError` means the link is
down. Real implementations: :class:`edge_sync.mqtt.MqttTransport` (aiomqtt) and
:class:`edge_sync.https.HttpsTransport` (httpx); :class:`edge_sync.fake_transport.FakeReceiver`
is the in-process fake. :class:`FailoverTransport` tries them in order of preference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from edge_sync.errors import TransportError
from edge_sync.messages import Ack, Envelope

__all__ = ["FailoverTransport", "Transport"]

log = logging.getLogger(__name__)


@runtime_checkable
class Transport(Protocol):
    """Sends ordered batches of envelopes and collects their acks."""

    @property
    def name(self) -> str: ...

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        """Send ``envelopes`` in order; the acks received within ``timeout`` by message id.

        Raises :class:`TransportError` when the link is unavailable before anything was
        acknowledged.
        """
        ...


class FailoverTransport:
    """Prefer the first transport (MQTT); use the next (HTTPS) while it is unavailable.

    Unavailable means it raised :class:`TransportError`, or it took a batch and no ack at
    all came back in time. After a failure the preferred transport is skipped for
    ``retry_preferred_s`` seconds, so a dead broker costs one attempt per period rather than
    one per batch.
    """

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        retry_preferred_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not transports:
            raise ValueError("FailoverTransport needs at least one transport")
        self._transports = list(transports)
        self._retry_after = dict.fromkeys(range(len(transports)), 0.0)
        self._retry_preferred_s = retry_preferred_s
        self._clock = clock
        self.last_used: str | None = None

    @property
    def name(self) -> str:
        return "+".join(t.name for t in self._transports)

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        errors: list[str] = []
        now = self._clock()
        last = len(self._transports) - 1
        for index, transport in enumerate(self._transports):
            if index < last and self._retry_after[index] > now:
                continue
            try:
                acks = await transport.deliver(envelopes, timeout)
            except TransportError as exc:
                self._retry_after[index] = now + self._retry_preferred_s
                errors.append(f"{transport.name}: {exc}")
                log.warning("sync transport %s unavailable: %s", transport.name, exc)
                continue
            if envelopes and not acks and index < last:
                # Connected but nobody answered (the platform's MQTT consumers are down,
                # say): try the next link with the same batch; the receiver dedups.
                self._retry_after[index] = self._clock() + self._retry_preferred_s
                errors.append(f"{transport.name}: no acknowledgement within {timeout:g} s")
                log.warning("sync transport %s: no acks, trying the next", transport.name)
                continue
            if acks:
                self._retry_after[index] = 0.0
            self.last_used = transport.name
            return acks
        raise TransportError(
            "no sync transport is available (" + "; ".join(errors) + ")",
            transports=[t.name for t in self._transports],
        )
