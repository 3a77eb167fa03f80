"""Writes of uplinks: a batch of verified messages committed in one transaction.

The first insert of a ``(terminal_id, message_id)`` returns it, a redelivery returns
nothing (``INSERT … ON CONFLICT DO NOTHING RETURNING``, on both engines): that is the whole
deduplication, and it holds across several platform workers sharing one PostgreSQL. A newly
stored message then has its typed effect (transaction mirror, end-of-day totals, key
announcement, journal checkpoint, backlog) in the same transaction.

Mixed into :class:`~edge_sync.platform.storage.sql.SqlStorage`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from edge_sync.platform.records import (
    CONTENT_FIELDS,
    EodTotal,
    IngestOutcome,
    Rejection,
    Uplink,
)
from edge_sync.platform.storage.checkpoint_rows import CheckpointRows
from edge_sync.platform.storage.transaction_reads import lookup_columns

__all__ = ["UplinkWrites"]

_INSERT_MESSAGE = """INSERT INTO platform_messages
    (message_id, terminal_id, kind, seq, idempotency_key, created_at, received_at, booked,
     envelope)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (terminal_id, message_id) DO NOTHING
    RETURNING message_id"""

# A terminal reports each state change of a transaction: the highest seq is the truth.
_UPSERT_TRANSACTION = """INSERT INTO platform_transactions
    (terminal_id, transaction_id, business_date, currency, amount_minor, state, counted,
     seq, message_id, details, psp_advice_key, pop_record_id, refers_to)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (terminal_id, transaction_id) DO UPDATE SET
        business_date = excluded.business_date, currency = excluded.currency,
        amount_minor = excluded.amount_minor, state = excluded.state,
        counted = excluded.counted, seq = excluded.seq, message_id = excluded.message_id,
        details = excluded.details, psp_advice_key = excluded.psp_advice_key,
        pop_record_id = excluded.pop_record_id, refers_to = excluded.refers_to
    WHERE excluded.seq > platform_transactions.seq"""



class UplinkWrites(CheckpointRows):
    """:meth:`ingest` and :meth:`record_rejections`; the plumbing is declared here, provided
    by :class:`~edge_sync.platform.storage.sql.SqlStorage`."""

    #: The newest refusals kept in the rejection log (older ones are deleted as new come).
    rejections_kept = 100_000

    if TYPE_CHECKING:
        def _transaction(self, *, write: bool = True) -> AbstractContextManager[Any]: ...

        def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any: ...

    def ingest(self, uplinks: Sequence[Uplink], received_at: str) -> list[IngestOutcome]:
        if not uplinks:
            return []
        new: dict[int, bool] = {}
        conflicts: dict[int, bool] = {}
        refused: dict[int, str] = {}
        added: dict[str, list[int]] = {u.terminal_id: [0, 0] for u in uplinks}
        checkpointed = {u.terminal_id for u in uplinks if u.checkpoint is not None}
        locked: set[str] = set()
        with self._transaction() as conn:
            # In key order: two workers' batches then lock rows in the same order and
            # cannot deadlock on PostgreSQL (the outcome of each row is order-free). A
            # terminal's checkpoint lock comes before any row of its messages, so it has
            # its own place in that order too.
            for position, uplink in sorted(
                enumerate(uplinks), key=lambda p: (p[1].terminal_id, p[1].message_id)
            ):
                if uplink.terminal_id in checkpointed and uplink.terminal_id not in locked:
                    self._lock_checkpoints(conn, uplink.terminal_id)
                    locked.add(uplink.terminal_id)
                if uplink.checkpoint is not None:
                    # Checked against what is committed (and this batch so far), under the
                    # lock: of two conflicting checkpoints, the second to commit is refused.
                    problem = self._checkpoint_problem(conn, uplink.terminal_id,
                                                       uplink.checkpoint)
                    if problem is not None:
                        new[position], refused[position] = False, problem
                        continue
                inserted = self._run(
                    conn,
                    _INSERT_MESSAGE,
                    (
                        uplink.message_id,
                        uplink.terminal_id,
                        uplink.kind,
                        uplink.seq,
                        uplink.idempotency_key,
                        uplink.created_at,
                        received_at,
                        int(uplink.booked),
                        uplink.envelope_json,
                    ),
                ).fetchone()
                # sorted() is stable: of one message twice in a batch, the first is the new one.
                new[position] = inserted is not None
                if inserted is None:
                    conflicts[position] = self._differs(conn, uplink)
                else:
                    self._apply(conn, uplink, received_at)
                    added[uplink.terminal_id][0] += 1
                    added[uplink.terminal_id][1] += 0 if uplink.booked else 1
            # A duplicate still proves the terminal is alive: last seen counts every message.
            for terminal_id in sorted(added):
                stored, unbooked = added[terminal_id]
                self._run(
                    conn,
                    "UPDATE platform_terminals SET messages = messages + ?, "
                    "unbooked = unbooked + ?, last_seen_at = CASE WHEN last_seen_at IS NULL "
                    "OR last_seen_at < ? THEN ? ELSE last_seen_at END WHERE terminal_id = ?",
                    (stored, unbooked, received_at, received_at, terminal_id),
                )
        return [
            IngestOutcome(u.message_id, new[i], conflicts.get(i, False), refused.get(i))
            for i, u in enumerate(uplinks)
        ]

    def _differs(self, conn: Any, uplink: Uplink) -> bool:
        """Whether the message stored under this id has other content than ``uplink``."""
        row = self._run(
            conn,
            "SELECT envelope FROM platform_messages WHERE terminal_id = ? AND message_id = ?",
            (uplink.terminal_id, uplink.message_id),
        ).fetchone()
        stored, arriving = json.loads(row[0]), json.loads(uplink.envelope_json)
        return any(stored.get(f) != arriving.get(f) for f in CONTENT_FIELDS)

    def _apply(self, conn: Any, uplink: Uplink, received_at: str) -> None:
        """The typed effect of a newly stored message, in the same transaction."""
        fact = uplink.transaction
        if fact is not None:
            self._run(
                conn,
                _UPSERT_TRANSACTION,
                (
                    uplink.terminal_id,
                    fact.transaction_id,
                    fact.business_date,
                    fact.currency,
                    fact.amount_minor,
                    fact.state,
                    int(fact.counted),
                    uplink.seq,
                    uplink.message_id,
                    None if fact.details is None else json.dumps(fact.details,
                                                                 sort_keys=True),
                    *lookup_columns(fact.transaction_id,
                                    None if fact.details is None else dict(fact.details)),
                ),
            )
        if uplink.eod_date is not None:
            self._apply_eod(conn, uplink, uplink.eod_date, uplink.eod_totals)
        if uplink.new_key is not None:
            version, pem = uplink.new_key
            # Never replaces a version: a key once trusted stays what it was.
            self._run(
                conn,
                "INSERT INTO platform_terminal_keys "
                "(terminal_id, key_version, public_key_pem, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (terminal_id, key_version) DO NOTHING",
                (uplink.terminal_id, version, pem, received_at),
            )
            if uplink.retire_older_after is not None:
                self._run(
                    conn,
                    "UPDATE platform_terminal_keys SET retire_after = ? WHERE terminal_id = ? "
                    "AND key_version < ? AND retire_after IS NULL",
                    (uplink.retire_older_after, uplink.terminal_id, version),
                )
        if uplink.checkpoint is not None:
            self._store_checkpoint(conn, uplink.terminal_id, uplink.checkpoint)
        if uplink.backlog is not None:
            self._run(
                conn,
                "UPDATE platform_terminals SET backlog = ?, backlog_seq = ?, "
                "backlog_reported_at = ? WHERE terminal_id = ? "
                "AND (backlog_seq IS NULL OR backlog_seq < ?)",
                (
                    json.dumps(uplink.backlog, sort_keys=True),
                    uplink.seq,
                    received_at,
                    uplink.terminal_id,
                    uplink.seq,
                ),
            )

    def _apply_eod(
        self, conn: Any, uplink: Uplink, business_date: str, totals: Sequence[EodTotal]
    ) -> None:
        # A later report for the same day replaces the earlier one as a whole (a currency
        # it no longer lists must go too); an older one arriving late changes nothing.
        row = self._run(
            conn,
            "SELECT MAX(seq) FROM platform_eod_totals WHERE terminal_id = ? AND business_date = ?",
            (uplink.terminal_id, business_date),
        ).fetchone()
        if row is not None and row[0] is not None and int(row[0]) > uplink.seq:
            return
        self._run(
            conn,
            "DELETE FROM platform_eod_totals WHERE terminal_id = ? AND business_date = ?",
            (uplink.terminal_id, business_date),
        )
        # An empty report ("no sales today") is kept as a marker row without a currency.
        lines = list(totals) or [EodTotal(currency="", count=0, amount_minor=0)]
        for line in lines:
            self._run(
                conn,
                "INSERT INTO platform_eod_totals (terminal_id, business_date, currency, count, "
                "amount_minor, seq, message_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    uplink.terminal_id,
                    business_date,
                    line.currency,
                    line.count,
                    line.amount_minor,
                    uplink.seq,
                    uplink.message_id,
                ),
            )

    def record_rejections(self, rejections: Sequence[Rejection], received_at: str) -> None:
        if not rejections:
            return
        with self._transaction() as conn:
            for rejection in rejections:
                self._run(
                    conn,
                    "INSERT INTO platform_rejections (terminal_id, message_id, reason, "
                    "received_at) VALUES (?, ?, ?, ?)",
                    (rejection.terminal_id, rejection.message_id, rejection.reason, received_at),
                )
            counts: dict[str, int] = {}
            for rejection in rejections:
                if not rejection.held:
                    counts[rejection.terminal_id] = counts.get(rejection.terminal_id, 0) + 1
            for terminal_id in sorted(counts):
                self._run(
                    conn,
                    "UPDATE platform_terminals SET rejected = rejected + ? WHERE terminal_id = ?",
                    (counts[terminal_id], terminal_id),
                )
            # The log is capped: refusals can be sent by anyone, the table must not grow
            # with them (the counters above keep counting).
            self._run(
                conn,
                "DELETE FROM platform_rejections WHERE received_at < (SELECT received_at "
                "FROM platform_rejections ORDER BY received_at DESC LIMIT 1 OFFSET ?)",
                (self.rejections_kept - 1,),
            )
