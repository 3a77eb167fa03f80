"""An in-process receiver that behaves like the platform's ingestion (tests, demos).

It validates each envelope against the wire contract, verifies its signature with the
terminal's public key, deduplicates by ``message_id`` and answers ``accepted``, ``duplicate``
or ``rejected`` with a reason. One answer differs from the platform's, on purpose and pinned
by the transport contract test: an envelope that fails its signature or schema is
``rejected`` here, while the platform refuses it without any ack (anyone could have sent it)
and the terminal retries it until its attempts run out; on both it settles nothing. Faults
are scripted by subclassing or with the knobs below (a link that is down for N calls, acks
that get lost).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_sync.errors import MessageFormatError, SignatureError, TransportError
from edge_sync.messages import Ack, Envelope, parse_envelope, verify_envelope

__all__ = ["FakeReceiver"]


class FakeReceiver:
    """A :class:`~edge_sync.transport.Transport` whose far end is this object."""

    def __init__(self, public_key_pem: bytes | None = None, *, name: str = "fake") -> None:
        self._name = name
        self.public_key_pem = public_key_pem
        #: Envelopes committed, in the order they were first accepted.
        self.committed: list[Envelope] = []
        self.seen: set[str] = set()
        #: Every delivery attempt (including duplicates), in order.
        self.received: list[Envelope] = []
        #: The next N calls raise TransportError (a link that is down).
        self.fail_next_calls = 0
        #: Message ids whose ack is lost once (they are committed, the ack never arrives).
        self.lose_ack_once: set[str] = set()
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def judge(self, envelope: Envelope) -> Ack:
        """Validate, verify and commit one envelope the way the platform does."""
        try:
            checked = parse_envelope(envelope.wire())
            if self.public_key_pem is not None:
                verify_envelope(checked, self.public_key_pem)
        except (MessageFormatError, SignatureError) as exc:
            return Ack(message_id=envelope.message_id, status="rejected", reason=exc.message)
        if checked.message_id in self.seen:
            return Ack(message_id=checked.message_id, status="duplicate")
        self.seen.add(checked.message_id)
        self.committed.append(checked)
        return Ack(message_id=checked.message_id, status="accepted")

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        self.calls += 1
        if self.fail_next_calls > 0:
            self.fail_next_calls -= 1
            raise TransportError(f"{self._name}: link down (scripted)", transport=self._name)
        acks: dict[str, Ack] = {}
        for envelope in envelopes:
            self.received.append(envelope)
            ack = self.judge(envelope)
            if envelope.message_id in self.lose_ack_once:
                self.lose_ack_once.discard(envelope.message_id)
                continue
            acks[envelope.message_id] = ack
        return acks
