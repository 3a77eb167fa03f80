"""What the terminal sent, so that an ack is held to it: its place in sequence and its time.

A signed ack (or ack batch) binds the platform's key, the terminal and the destination
(:class:`~edge_sync.messages.AckVerifier`). That alone lets a signed ack be *replayed*: one
captured earlier for a message id, or a whole batch from a previous drain, re-published on
the terminal's ack topic later. So each ack also carries

- ``seq``: the acked envelope's sequence number as the terminal sent it under that message
  id; the terminal refuses an ack whose seq is not what it sent (an ack for another message
  under a reused or guessed id, or from a reordered stream, settles nothing);
- ``issued_at``: the platform's clock when it answered; the terminal refuses an ack issued
  before it first sent the message, less :data:`ACK_CLOCK_SKEW_S`.

Why this rule and not an expiry: the platform has several workers on a shared subscription
with their own clocks, and a terminal's clock may drift while offline. An expiry would make
every delayed ack (a late commit, a broker queue) a refusal and resend storms follow; the
lower bound only needs the clocks to agree within the skew, and the platform answers only
after the terminal sent, so an honest ack always passes. A refused ack costs a resend, which
the platform dedups (``duplicate``) — never a lost message.

Only messages in :class:`SentLog` can be settled: an ack for anything else (settled already,
or sent by an earlier process) is ignored. In a batch one mismatch refuses the whole batch
(it is not the platform's answer to what we sent), so it settles nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from edge_sync.errors import SignatureError
from edge_sync.messages import Ack

__all__ = ["ACK_CLOCK_SKEW_S", "SentLog", "SentMessage"]

#: How far the platform's clock may run behind the terminal's before its acks look stale
#: (seconds). Documented in edge_sync/PROTOCOL.md.
ACK_CLOCK_SKEW_S = 300.0

#: How many sent, unanswered messages are remembered (the oldest are forgotten first; an ack
#: for a forgotten one is ignored and the message is sent again, then deduplicated).
MAX_REMEMBERED = 200_000


@dataclass(frozen=True)
class SentMessage:
    """One message as the terminal sent it: its seq and when it was first sent (epoch s)."""

    seq: int
    first_sent_at: float


class SentLog:
    """The messages one link sent and has not seen settled, by message id."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 skew_s: float = ACK_CLOCK_SKEW_S) -> None:
        self._clock = clock
        self._skew_s = skew_s
        self._sent: OrderedDict[str, SentMessage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def sent(self, message_id: str, seq: int) -> None:
        """Note a send; a resend keeps the first time (a seq change starts afresh)."""
        known = self._sent.get(message_id)
        if known is not None and known.seq == seq:
            return
        self._sent[message_id] = SentMessage(seq, self._clock())
        while len(self._sent) > MAX_REMEMBERED:
            self._sent.popitem(last=False)

    def forget(self, message_id: str) -> None:
        self._sent.pop(message_id, None)

    def settleable(self, acks: Sequence[Ack]) -> list[Ack]:
        """The acks (already verified) that answer messages sent here, in order; acks for
        unknown messages are left out. :class:`SignatureError` if any ack names a message
        sent here with another seq, binds no seq or time, or was issued before that message
        was first sent (less the skew): a replayed or reordered answer settles nothing."""
        good: list[Ack] = []
        for ack in acks:
            sent = self._sent.get(ack.message_id)
            if sent is None:
                continue
            if ack.seq is None or ack.issued_at is None:
                raise SignatureError(f"ack for {ack.message_id} binds no seq or issue time",
                                     reason="unbound ack")
            if ack.seq != sent.seq:
                raise SignatureError(
                    f"ack for {ack.message_id} names seq {ack.seq}, but it was sent as seq "
                    f"{sent.seq}: a replayed or reordered ack", reason="wrong seq")
            issued = datetime.fromisoformat(ack.issued_at).timestamp()
            if issued < sent.first_sent_at - self._skew_s:
                raise SignatureError(
                    f"ack for {ack.message_id} was issued at {ack.issued_at}, before the "
                    f"message was first sent (allowing {self._skew_s:g} s of clock skew): "
                    "a replayed ack", reason="stale ack")
            good.append(ack)
        return good
