"""An in-process receiver that behaves like the platform's ingestion (tests, demos).

It validates each envelope against the wire contract, verifies its signature with the
terminal's public key and deduplicates by ``message_id``, answering as the platform does
(:mod:`edge_sync.platform.ingest`), which the transport contract test checks on every link:

* no ack at all for an envelope whose signature could not be checked (not the envelope
  schema, a bad signature): anyone could have sent it, so an answer must not make the
  terminal drop the message whose id it quotes; it is kept in :attr:`FakeReceiver.refused`
  and the terminal sends it again later;
* ``rejected`` with a reason for a verified envelope that reuses a message id with other
  content (the platform's "message_id already used by a different message");
* ``accepted`` the first time, ``duplicate`` for the same message again.

Faults are scripted by subclassing or with the knobs below (a link that is down for N calls,
acks that get lost).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_sync.errors import MessageFormatError, SignatureError, TransportError
from edge_sync.messages import (
    CONTENT_FIELDS,
    REUSED_ID_REASON,
    Ack,
    Envelope,
    parse_envelope,
    verify_envelope,
)

__all__ = ["FakeReceiver"]


def _content(envelope: Envelope) -> dict[str, object]:
    wire = envelope.model_dump(mode="json")
    return {name: wire.get(name) for name in CONTENT_FIELDS}


class FakeReceiver:
    """A :class:`~edge_sync.transport.Transport` whose far end is this object."""

    def __init__(self, public_key_pem: bytes | None = None, *, name: str = "fake") -> None:
        self._name = name
        self.public_key_pem = public_key_pem
        #: Envelopes committed, in the order they were first accepted.
        self.committed: list[Envelope] = []
        #: What was committed under each ``(terminal_id, message_id)``.
        self.seen: dict[tuple[str, str], dict[str, object]] = {}
        #: Every delivery attempt (including duplicates), in order.
        self.received: list[Envelope] = []
        #: ``(message_id, reason)`` of every envelope refused without an ack.
        self.refused: list[tuple[str, str]] = []
        #: The next N calls raise TransportError (a link that is down).
        self.fail_next_calls = 0
        #: Message ids whose ack is lost once (they are committed, the ack never arrives).
        self.lose_ack_once: set[str] = set()
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def judge(self, envelope: Envelope) -> Ack | None:
        """Validate, verify and commit one envelope the way the platform does; ``None``:
        refused without an ack (its signature could not be checked)."""
        try:
            checked = parse_envelope(envelope.wire())
            if self.public_key_pem is not None:
                verify_envelope(checked, self.public_key_pem)
        except (MessageFormatError, SignatureError) as exc:
            self.refused.append((envelope.message_id, exc.message))
            return None
        key = (checked.terminal_id, checked.message_id)
        stored = self.seen.get(key)
        if stored is not None and stored != _content(checked):
            return Ack(message_id=checked.message_id, status="rejected", reason=REUSED_ID_REASON)
        if stored is not None:
            return Ack(message_id=checked.message_id, status="duplicate")
        self.seen[key] = _content(checked)
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
            if ack is None:
                continue
            if envelope.message_id in self.lose_ack_once:
                self.lose_ack_once.discard(envelope.message_id)
                continue
            acks[envelope.message_id] = ack
        return acks
