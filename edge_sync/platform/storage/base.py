"""What the platform needs from its database, as an abstract base class.

Both engines (:mod:`.sqlite`, :mod:`.postgres`) inherit the shared statements of
:class:`~edge_sync.platform.storage.sql.SqlStorage`; a test double subclasses this class
(or wraps a real storage) and must say every method, which ``abc`` checks at construction.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from edge_sync.platform.records import (
    CheckpointGap,
    IngestOutcome,
    KeyRecord,
    Rejection,
    StoredCheckpoint,
    TerminalSummary,
    Total,
    Uplink,
)

__all__ = ["PlatformStorage"]


class PlatformStorage(abc.ABC):
    """What the platform needs from its database (SQLite or PostgreSQL)."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The newest migration applied to this database."""

    @abc.abstractmethod
    def register_key(
        self, terminal_id: str, key_version: int, public_key_pem: str, now: str
    ) -> None:
        """Register (or replace) one public key of a terminal; the terminal row is created."""

    @abc.abstractmethod
    def public_key(self, terminal_id: str, key_version: int) -> str | None:
        """The PEM registered for that terminal and key version, or ``None``."""

    @abc.abstractmethod
    def key_versions(self, terminal_id: str) -> list[int]:
        """The key versions registered for a terminal (empty: the terminal is unknown)."""

    @abc.abstractmethod
    def key_record(self, terminal_id: str, key_version: int) -> KeyRecord | None:
        """That key version with its retirement and revocation, or ``None``."""

    @abc.abstractmethod
    def revoke_key(self, terminal_id: str, key_version: int, now: str) -> bool:
        """Revoke one key version now; ``False`` when no such version is registered."""

    @abc.abstractmethod
    def journal_checkpoints_around(
        self, terminal_id: str, entry_id: int
    ) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None, StoredCheckpoint | None]:
        """The terminal's stored checkpoints just below ``entry_id``, at it, and just above
        it (``None`` where there is none): the neighbours a new checkpoint must link to."""

    @abc.abstractmethod
    def checkpoint_gaps(self, terminal_id: str | None = None) -> list[CheckpointGap]:
        """Every stored checkpoint whose predecessor has not arrived, of one terminal or of
        the fleet, by terminal and entry: the journal stretches no checkpoint covers yet."""

    @abc.abstractmethod
    def next_downlink_seq(self, terminal_id: str, kind: str) -> int:
        """The next downlink sequence for that terminal and kind (committed before use)."""

    @abc.abstractmethod
    def ingest(self, uplinks: Sequence[Uplink], received_at: str) -> list[IngestOutcome]:
        """Commit a batch in one transaction; each outcome says new, already there, or
        refused (a journal checkpoint that does not link to those committed before it,
        checked inside this transaction so that concurrent workers cannot both store one of
        two conflicting checkpoints)."""

    @abc.abstractmethod
    def record_rejections(self, rejections: Sequence[Rejection], received_at: str) -> None:
        """Keep refused uplinks for the fleet API."""

    @abc.abstractmethod
    def terminals(self) -> list[TerminalSummary]:
        """Every registered terminal with its counters."""

    @abc.abstractmethod
    def terminal(self, terminal_id: str) -> TerminalSummary | None:
        """One terminal, or ``None`` when it is not registered."""

    @abc.abstractmethod
    def message_count(self, terminal_id: str | None = None) -> int:
        """Stored messages, of one terminal or of the fleet."""

    @abc.abstractmethod
    def kind_counts(self, terminal_id: str) -> dict[str, int]:
        """A terminal's stored messages per kind."""

    @abc.abstractmethod
    def transaction_totals(
        self, business_date: str | None = None, terminal_id: str | None = None
    ) -> list[Total]:
        """The platform's own sums of counted transactions, per terminal, day and currency."""

    @abc.abstractmethod
    def reported_totals(self, business_date: str) -> list[Total]:
        """The terminals' end-of-day reports for that day."""

    @abc.abstractmethod
    def eod_reporters(self, business_date: str) -> set[str]:
        """Terminals that sent an end-of-day report for that day (even an empty one)."""

    @abc.abstractmethod
    def rejections(self, terminal_id: str | None = None, limit: int = 100) -> list[Rejection]:
        """The latest refused uplinks, newest first."""

    @abc.abstractmethod
    def transactions(self, terminal_id: str | None, limit: int = 100,
                     business_date: str | None = None) -> list[dict[str, Any]]:
        """Mirrored payments and refunds (latest state, details), newest first: one
        terminal's or (``None``) the fleet's, of one business date or any."""

    @abc.abstractmethod
    def day_transactions(self, business_date: str, terminal_id: str | None = None, *,
                         page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every mirrored payment and refund of ``business_date`` (of one terminal, or the
        fleet's), in ``(terminal_id, transaction_id)`` order, fetched ``page_size`` rows at
        a time: no cap, however many the day holds (reconciliation must see them all)."""

    @abc.abstractmethod
    def transactions_by_psp_key(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Mirrored transactions a PSP may book under one of ``keys`` (their own id or
        their advice's key, :func:`edge_sync.transaction_keys.psp_keys`), any date."""

    @abc.abstractmethod
    def transactions_by_pop_record(self, record_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Mirrored transactions that name one of these PoP record ids, any date."""

    @abc.abstractmethod
    def refunds_of(self, sale_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Mirrored refunds referring to one of these sales, any date and state."""

    @abc.abstractmethod
    def messages(
        self, terminal_id: str, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """A terminal's latest stored envelopes (highest seq first), with ``received_at``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""
