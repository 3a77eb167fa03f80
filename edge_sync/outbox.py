"""What the outbox worker drains: the :class:`Outbox` Protocol and the rows it hands out.

``terminal`` owns the SQLite store and implements this Protocol over its ``outbox`` table
(``terminal/store/outbox.py``); :class:`edge_sync.memory_outbox.MemoryOutbox` is the in-process
fake with the same semantics. Both follow these rules, which the worker relies on:

* **Claim order** — within a destination, open rows (``pending`` or ``in_flight``) are taken in
  ``(priority, id)`` order, lower first (reversals have priority 10, most rows 100). Claiming
  marks a row ``in_flight`` and counts an attempt.
* **Per-destination ordering** — a claim stops at the first pending row that is not due yet
  (backing off after a failure) or that waits on a dependency: nothing behind it in its
  destination is sent before it is delivered or dead (head-of-line blocking, on purpose).
* **Dependencies** — a ``pop_record`` row waits until every earlier row with the same
  ``ref_id`` bound for a PSP (``psp:*``: its financial leg — advice, completion, reversal)
  is ``delivered`` or ``dead``.
* **Pipelining** — the worker keeps several batches of a destination in flight, handed to
  the transport in claim order (MQTT keeps that order on the wire). When a batch fails, the
  ones already sent behind it may be acknowledged first; the receiver deduplicates, and
  ``seq`` lets it see the order the terminal wrote.
* **Crash safety** — rows only leave ``in_flight`` when an ack marks them ``delivered`` (or
  ``dead``) or when a retry is scheduled; :meth:`Outbox.recover` puts every ``in_flight`` row
  back to ``pending`` at start, so a restart re-sends (the receiver deduplicates by
  ``message_id``) and loses nothing.
* **Dead letters** — a row whose ``expires_at`` passed, or that the receiver rejected, becomes
  ``dead`` and an ``alert`` row for the platform is written in the same transaction (except
  for :data:`SILENT_KINDS`: dead alerts would loop, expired status reports are superseded).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypedDict, runtime_checkable

from edge_sync.bounded_json import storable_text
from edge_sync.json_types import JsonObject, JsonValue

__all__ = [
    "ALERT_DESTINATION",
    "ALERT_KIND",
    "ALERT_PRIORITY",
    "FINANCIAL_PREFIX",
    "OPEN_STATES",
    "SILENT_KINDS",
    "DestinationStatus",
    "DestinationStatusRow",
    "Outbox",
    "OutboxRow",
    "RetryPolicy",
    "alert_payload",
]

OPEN_STATES = ("pending", "in_flight")
ALERT_KIND = "alert"
#: Kinds whose dead letters raise no alert: an alert about an alert would loop, and a
#: periodic status report that expired is simply superseded by the next one.
SILENT_KINDS = frozenset({ALERT_KIND, "status"})
#: Destination of alerts (dead letters, refused downlinks): the central platform.
ALERT_DESTINATION = "platform"
ALERT_PRIORITY = 50
#: Destinations whose rows are a payment's financial leg (a PoP record waits for them).
FINANCIAL_PREFIX = "psp:"


@dataclass(frozen=True)
class OutboxRow:
    """One claimed outbox row (its payload is JSON without clear card data)."""

    id: int
    message_id: str
    destination: str
    kind: str
    idempotency_key: str
    payload: JsonObject
    priority: int = 100
    attempts: int = 0
    created_at: float = 0.0
    expires_at: float | None = None
    ref_id: str | None = None


class DestinationStatusRow(TypedDict):
    """One destination's line of ``etika sync status --json`` (and the diagnostics)."""

    destination: str
    depth: int
    pending: int
    in_flight: int
    dead: int
    delivered: int
    oldest_pending_age_s: float | None
    last_success_at: float | None
    last_error_at: float | None
    last_error: str | None


@dataclass(frozen=True)
class DestinationStatus:
    """What ``etika sync status`` shows for one destination."""

    destination: str
    pending: int = 0
    in_flight: int = 0
    dead: int = 0
    delivered: int = 0
    oldest_pending_age_s: float | None = None
    last_success_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None

    def as_dict(self) -> DestinationStatusRow:
        return {
            "destination": self.destination,
            "depth": self.pending + self.in_flight,
            "pending": self.pending,
            "in_flight": self.in_flight,
            "dead": self.dead,
            "delivered": self.delivered,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "last_success_at": self.last_success_at,
            "last_error_at": self.last_error_at,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``base·2^(attempts-1)`` capped, scaled by [½, 1).

    "Equal jitter" keeps a floor (half the delay) so a flapping link is not hammered, while
    the random half spreads a fleet that lost the same broker at the same moment.
    """

    base_s: float = 1.0
    cap_s: float = 300.0
    max_attempts: int | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("retry policy needs 0 < base_s <= cap_s")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no limit)")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed send (1 for the first)."""
        exp = min(self.cap_s, self.base_s * 2 ** max(0, min(attempts - 1, 30)))
        return exp / 2 + self.rng.random() * exp / 2

    def exhausted(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts


def alert_payload(alert: str, **details: JsonValue) -> dict[str, JsonValue]:
    """Payload of an ``alert`` row: what happened and the facts to act on.

    A text detail may quote what came from outside (a refused downlink's reason): it is made
    storable and signable here (lone surrogates replaced, NUL replaced, at most 2000
    characters), so that the alert about a hostile message is never itself unstorable.
    """
    return {"alert": alert, **{name: storable_text(value, 2000) if isinstance(value, str)
                               else value for name, value in details.items()}}


@runtime_checkable
class Outbox(Protocol):
    """The durable queue the worker drains (see the module docstring for the rules)."""

    def recover(self, now: float) -> int:
        """Put rows left ``in_flight`` by a previous run back to ``pending``; how many."""
        ...

    def destinations(self) -> list[str]:
        """Destinations that have open rows."""
        ...

    def claim(self, destination: str, limit: int, now: float) -> list[OutboxRow]:
        """Up to ``limit`` due rows of ``destination``, in order; they become ``in_flight``."""
        ...

    def mark_delivered(
        self, message_ids: Sequence[str], now: float, destination: str | None = None
    ) -> int:
        """The receiver acknowledged these (accepted or duplicate); how many changed.

        With ``destination``, only rows of that destination change (a late ack from one
        receiver never settles another's rows)."""
        ...

    def retry_later(self, retries: Sequence[tuple[str, float]], error: str) -> int:
        """Back to ``pending`` with ``next_attempt_at``: ``(message_id, next_attempt_at)``."""
        ...

    def dead_letter(self, message_ids: Sequence[str], reason: str, now: float) -> int:
        """Mark rows ``dead`` with ``reason`` and write one alert row for each."""
        ...

    def expire(self, now: float) -> list[str]:
        """Dead-letter open rows whose ``expires_at`` has passed; their message ids."""
        ...

    def requeue_dead(self, destination: str | None, now: float) -> int:
        """Put dead rows (of one destination, or all) back to pending, due now, with a fresh
        attempt count and no expiry: the operator fixed what killed them. How many.
        Expired status reports stay dead (stale; a fresh one follows)."""
        ...

    def enqueue(
        self,
        destination: str,
        kind: str,
        payload: JsonObject,
        idempotency_key: str,
        now: float,
        *,
        priority: int = 100,
        ttl_s: float | None = None,
        ref_id: str | None = None,
    ) -> str:
        """Queue one row written by the sync layer itself (a downlink report); its message id."""
        ...

    def note_result(
        self, destination: str, *, ok: bool, now: float, error: str | None = None
    ) -> None:
        """Remember the last success / last error of a destination for ``sync status``."""
        ...

    def status(self, now: float) -> list[DestinationStatus]:
        """One entry per destination ever seen, sorted by name."""
        ...
