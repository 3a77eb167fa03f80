"""An in-memory PoP back end behind :class:`~edge_sync.pop.PopClient`, for unit tests.

It keeps the back end's rules (the same contract tests run against it and against the
``simulators/pop`` process): dedup on ``record_id`` (same content → same answer, other content
→ refused), one record per ``(terminal, sequence)``, ``created_at`` rising with ``sequence``,
refunds and cancel records must refer to a known sale, a cancel that arrives before its record
leaves a tombstone so the late record is answered ``cancelled``. Signatures are not checked
here (no keys); the simulator checks them.

Fault knobs (counters decrement as they fire): ``unavailable`` (refuse to connect, nothing
applied), ``lose_answers`` (apply, then fail as if the answer was lost: the timeout case),
``reject`` (refuse the next records with ``reject_reason``); ``confirm_immediately`` False
keeps new records ``pending`` until :meth:`InMemoryPopBackend.confirm_pending`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from edge_sync.errors import PopRejectedError, PopUnavailableError, PopUnknownRecordError
from edge_sync.pop import PopReceipt, PopRecord, PopStatus

__all__ = ["InMemoryPopBackend"]


@dataclass
class _Entry:
    record: PopRecord | None  # None: a tombstone (cancelled before it arrived)
    content_hash: str | None
    status: PopStatus
    reference: str | None = None
    reason: str | None = None

    def receipt(self, record_id: uuid.UUID) -> PopReceipt:
        return PopReceipt(record_id, self.status, self.reference, self.reason)


@dataclass
class InMemoryPopBackend:
    """A :class:`~edge_sync.pop.PopClient` that is its own back end."""

    confirm_immediately: bool = True
    unavailable: int = 0
    lose_answers: int = 0
    reject: int = 0
    reject_reason: str = "refused by the consensus"
    calls: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    _entries: dict[uuid.UUID, _Entry] = field(default_factory=dict)
    _counter: int = 0

    # --- PopClient ---------------------------------------------------------------------

    async def submit(self, record: PopRecord) -> PopReceipt:
        self.calls.append(("submit", record.record_id))
        self._maybe_unavailable()
        receipt = self._submit(record)
        if receipt.status == "rejected":  # a resubmission gets the same refusal
            self._refuse(record, receipt.reason or self.reject_reason)
        return self._maybe_lose(receipt)

    async def cancel(self, record_id: uuid.UUID, reason: str) -> PopReceipt:
        self.calls.append(("cancel", record_id))
        self._maybe_unavailable()
        entry = self._entries.get(record_id)
        if entry is None:
            entry = self._entries[record_id] = _Entry(None, None, "cancelled", None, reason)
        elif entry.status in ("pending", "confirmed"):
            entry.status, entry.reason = "cancelled", reason
        return self._maybe_lose(entry.receipt(record_id))

    async def status(self, record_id: uuid.UUID) -> PopReceipt:
        self.calls.append(("status", record_id))
        self._maybe_unavailable()
        entry = self._entries.get(record_id)
        if entry is None:
            raise PopUnknownRecordError(f"the PoP back end has no record {record_id}",
                                        record_id=str(record_id))
        return entry.receipt(record_id)

    # --- test helpers --------------------------------------------------------------------

    def confirm_pending(self) -> list[uuid.UUID]:
        """Confirm every pending record (what the consensus does after its delay)."""
        done = []
        for record_id, entry in self._entries.items():
            if entry.status == "pending":
                self._confirm(entry)
                done.append(record_id)
        return done

    def records(self) -> dict[uuid.UUID, PopStatus]:
        """Status of every record (tombstones included) by record id."""
        return {record_id: entry.status for record_id, entry in self._entries.items()}

    # --- the rules -------------------------------------------------------------------------

    def _submit(self, record: PopRecord) -> PopReceipt:
        digest = record.content_hash()
        existing = self._entries.get(record.record_id)
        if existing is not None:
            if existing.record is None:  # cancelled before it arrived: it stays cancelled
                existing.record, existing.content_hash = record, digest
                return existing.receipt(record.record_id)
            if existing.content_hash != digest:
                self._refuse(record, "record id already used with other content")
            return existing.receipt(record.record_id)
        for other in self._entries.values():
            known = other.record
            if known is None or known.terminal_id != record.terminal_id:
                continue
            if known.sequence == record.sequence:
                self._refuse(record, f"sequence {record.sequence} already used by record "
                             f"{known.record_id} (replay)")
            if (known.sequence < record.sequence) != (
                    _when(known.created_at) <= _when(record.created_at)):
                self._refuse(record, f"sequence {record.sequence} and created_at "
                             f"{record.created_at} are out of order with record "
                             f"{known.record_id}")
        if record.refers_to is not None:
            sale = self._entries.get(record.refers_to)
            if sale is None or sale.record is None or sale.record.kind != "sale":
                self._refuse(record, f"refers to unknown sale {record.refers_to}")
        if self.reject > 0:
            self.reject -= 1
            self._entries[record.record_id] = _Entry(record, digest, "rejected", None,
                                                     self.reject_reason)
            self._refuse(record, self.reject_reason)
        entry = self._entries[record.record_id] = _Entry(record, digest, "pending")
        if self.confirm_immediately:
            self._confirm(entry)
        return entry.receipt(record.record_id)

    def _confirm(self, entry: _Entry) -> None:
        self._counter += 1
        entry.status, entry.reference = "confirmed", f"pop-fake-{self._counter:06d}"

    @staticmethod
    def _refuse(record: PopRecord, reason: str) -> None:
        raise PopRejectedError(f"the PoP back end refused record {record.record_id}: "
                               f"{reason}", reason=reason, record_id=str(record.record_id))

    def _maybe_unavailable(self) -> None:
        if self.unavailable > 0:
            self.unavailable -= 1
            raise PopUnavailableError("PoP back end unavailable (fake: unavailable fault)")

    def _maybe_lose(self, receipt: PopReceipt) -> PopReceipt:
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise PopUnavailableError("PoP answer lost (fake: lose_answers fault)")
        return receipt


def _when(created_at: str) -> datetime:
    # Compared as instants: "…Z" and "…+00:00" spell the same time.
    return datetime.fromisoformat(created_at)
