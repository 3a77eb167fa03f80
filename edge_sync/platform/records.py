"""What the platform keeps: the typed rows ingestion writes and the fleet API reads.

The uplink ``payload`` of three kinds feeds the platform's own books (every other kind is
stored as received and only counted):

``transaction``
    ``{"transaction_id": str, "amount_minor": int, "currency": "MAD", "business_date":
    "YYYY-MM-DD", "type": "sale"|"refund", "state": str}`` — one row per transaction id, the
    highest ``seq`` wins (a terminal reports each state change). The id may be named
    ``payment_id`` or ``id`` and falls back to the envelope's ``idempotency_key``; ``state``
    may be named ``status``; ``type`` defaults to sale (a refund
    counts negative); ``business_date`` to the date of ``created_at``. A transaction counts
    in the totals when its latest ``state`` is absent or one of :data:`COUNTED_STATES` (the
    financial leg stands); a refund also when it is ``approved`` (the terminal's state). A
    transaction message with neither ``amount_minor`` nor ``currency`` is stored but not
    booked (the fleet API counts it as ``unbooked``); one whose booking fields are present
    but wrong is refused.
``eod_totals``
    ``{"business_date": "YYYY-MM-DD", "totals": [{"currency": "MAD", "count": int,
    "amount_minor": int}, ...]}`` — the terminal's end-of-day totals; a later report for the
    same day replaces an earlier one.
``status``
    ``{"backlog": {"<destination>": int, ...}}`` (or a plain int) — what the terminal's
    outbox still holds; shown by the fleet API.
``keys_rotated``
    ``{"key_version": int, "public_key": "<PEM>", ...}`` — the terminal's answer to a
    ``rotate_keys`` command. Signed with a key already registered, it registers the new
    version (higher than the signing one; an existing version is never replaced), so the
    terminal's next messages verify without an operator step. Without ``public_key`` it is
    only stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_sync.messages import CONTENT_FIELDS

__all__ = [
    "CONTENT_FIELDS",
    "COUNTED_STATES",
    "HELD_PREFIX",
    "CheckpointGap",
    "EodTotal",
    "IngestOutcome",
    "KeyRecord",
    "Rejection",
    "StoredCheckpoint",
    "TerminalSummary",
    "Total",
    "TransactionFact",
    "Uplink",
]

#: How the reason of a held (not refused) message begins in the rejection log.
HELD_PREFIX = "held: "

#: Latest states in which a transaction's money moved (DESIGN §6): they count in the totals.
COUNTED_STATES = frozenset({"completed", "pop_deferred", "needs_reconciliation"})


@dataclass(frozen=True)
class TransactionFact:
    """One transaction as the platform books it (amount signed: refunds are negative)."""

    transaction_id: str
    business_date: str
    currency: str
    amount_minor: int
    state: str | None
    counted: bool
    #: What the terminal reported beyond the booking (type, network, masked PAN, offline,
    #: fraud check, PSP attempts, the sale a refund refers to): the payment's mirror.
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EodTotal:
    """One currency line of a terminal's end-of-day report."""

    currency: str
    count: int
    amount_minor: int


@dataclass(frozen=True)
class Uplink:
    """A verified uplink, ready to be committed; the typed parts depend on ``kind``."""

    message_id: str
    terminal_id: str
    kind: str
    seq: int
    idempotency_key: str
    created_at: str
    envelope_json: str
    transaction: TransactionFact | None = None
    eod_date: str | None = None
    eod_totals: tuple[EodTotal, ...] = ()
    backlog: dict[str, int] | None = None
    #: ``False`` for a transaction message without an amount: stored, not in the totals.
    booked: bool = True
    #: ``(key_version, pem)`` a ``keys_rotated`` message announces.
    new_key: tuple[int, str] | None = None
    #: When the versions older than ``new_key`` stop being accepted (the grace period).
    retire_older_after: str | None = None
    #: The signed journal checkpoint this message carries.
    checkpoint: StoredCheckpoint | None = None


@dataclass(frozen=True)
class StoredCheckpoint:
    """One signed journal checkpoint as the platform keeps it: the entry it signs and the
    previous checkpoint's entry and hash as the terminal's journal held them when signing
    (``prev_entry_hash`` ``None``: unknown, or the journal no longer had that entry)."""

    entry_id: int
    entry_hash: str
    prev_entry_id: int | None
    prev_entry_hash: str | None
    signed_at: str = ""
    #: The uplink message that carried it (a resend of that same message is a duplicate).
    message_id: str = ""


@dataclass(frozen=True)
class CheckpointGap:
    """A stretch of a terminal's audit journal that no received, linked checkpoint covers:
    the checkpoint of ``checkpoint_entry`` names entry ``last_entry`` as its predecessor,
    and no checkpoint of that entry has arrived (delivered out of order, still in the
    terminal's outbox, or never sent). Entries ``first_entry``–``last_entry`` (from just
    after the nearest stored checkpoint below) are unverified until it does, and a journal
    cut or rewritten in there would go unseen. ``since``: when that checkpoint arrived."""

    terminal_id: str
    first_entry: int
    last_entry: int
    checkpoint_entry: int
    since: str

    def describe(self) -> str:
        """The gap as an operator reads it."""
        return (f"{self.terminal_id}: journal entries {self.first_entry}-{self.last_entry} "
                f"not covered by a verified checkpoint since {self.since} (the checkpoint of "
                f"entry {self.checkpoint_entry} names entry {self.last_entry}, not received)")

    def as_json(self) -> dict[str, Any]:
        return {"first_entry": self.first_entry, "last_entry": self.last_entry,
                "checkpoint_entry": self.checkpoint_entry, "since": self.since}


@dataclass(frozen=True)
class KeyRecord:
    """One registered key version of a terminal and where it stands in its life."""

    terminal_id: str
    key_version: int
    public_key_pem: str
    #: After this instant messages signed with it are refused (a newer one took over).
    retire_after: str | None = None
    #: Set by ``etika platform revoke-key``: refused from then on.
    revoked_at: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A refused uplink, kept for the fleet API (never its payload: it may be anything)."""

    terminal_id: str
    message_id: str
    reason: str
    #: Set when read back from the database.
    received_at: str | None = None

    @property
    def held(self) -> bool:
        """Kept without an ack (unregistered key version), not refused."""
        return self.reason.startswith(HELD_PREFIX)


@dataclass(frozen=True)
class IngestOutcome:
    """Per message: ``new`` when this commit stored it; else it was there already, and
    ``conflict`` says the stored one has other content under the same ``message_id``."""

    message_id: str
    new: bool
    conflict: bool = False
    #: Why the storage refused it (a journal checkpoint that does not link to the ones
    #: committed before it): not stored, to be rejected.
    refused: str | None = None


# CONTENT_FIELDS (what makes a message what it is) is the wire contract's, shared with the
# terminal's receiver doubles; re-exported here for the storage.


@dataclass(frozen=True)
class Total:
    """Count and signed sum of one terminal's transactions in one currency on one day."""

    terminal_id: str
    business_date: str
    currency: str
    count: int
    amount_minor: int


@dataclass
class TerminalSummary:
    """One terminal as the fleet API shows it."""

    terminal_id: str
    registered_at: str
    key_versions: list[int] = field(default_factory=list)
    last_seen_at: str | None = None
    backlog: dict[str, int] | None = None
    backlog_reported_at: str | None = None
    messages: int = 0
    rejected: int = 0
    unbooked: int = 0
    #: Stretches of its audit journal no received checkpoint covers yet.
    checkpoint_gaps: list[CheckpointGap] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id,
            "registered_at": self.registered_at,
            "key_versions": self.key_versions,
            "last_seen_at": self.last_seen_at,
            "backlog": self.backlog,
            "backlog_total": sum(self.backlog.values()) if self.backlog else 0,
            "backlog_reported_at": self.backlog_reported_at,
            "messages": self.messages,
            "rejected": self.rejected,
            "unbooked": self.unbooked,
            "checkpoint_gaps": [gap.as_json() for gap in self.checkpoint_gaps],
        }
