"""The SQL both engines run: one implementation of :class:`PlatformStorage`.

SQLite and PostgreSQL run the same statements: ``?`` placeholders are rewritten to ``%s``
for psycopg (:meth:`SqlStorage._sql`), and idempotency is ``INSERT … ON CONFLICT DO NOTHING
RETURNING``, which both engines have. The first insert of a ``(terminal_id, message_id)``
returns it, a redelivery returns nothing: that is the whole deduplication, and it holds
across several platform workers sharing one PostgreSQL.

A batch of uplinks is committed in one transaction; the caller acknowledges only after
:meth:`SqlStorage.ingest` has returned (the commit is durable by then). The engine modules
say how to connect, which driver errors mean what, and how to lock the schema.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from edge_sync.messages import utc_now_iso
from edge_sync.platform.errors import StorageError, UnstorableDataError
from edge_sync.platform.records import (
    CONTENT_FIELDS,
    EodTotal,
    IngestOutcome,
    KeyRecord,
    Rejection,
    StoredCheckpoint,
    TerminalSummary,
    Total,
    Uplink,
)
from edge_sync.platform.storage.base import PlatformStorage
from edge_sync.platform.storage.schema import apply_migrations, shipped_migrations
from edge_sync.platform.storage.transaction_reads import (
    TRANSACTION_COLUMNS,
    TransactionReads,
    lookup_columns,
    transaction_row,
)

__all__ = ["SqlStorage"]

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

# The counters are kept up to date by each commit: a fleet of thousands of terminals with
# millions of messages is listed without counting them again.
_TERMINALS = """SELECT t.terminal_id, t.registered_at, t.last_seen_at, t.backlog,
        t.backlog_reported_at, t.messages, t.rejected, t.unbooked
    FROM platform_terminals t"""


class SqlStorage(TransactionReads, PlatformStorage):
    """The statements; subclasses say how to connect and which errors the driver raises."""

    _errors: tuple[type[BaseException], ...] = ()
    #: Errors about the values, not the database: retrying the same rows cannot help.
    _data_errors: tuple[type[BaseException], ...] = (OverflowError, UnicodeEncodeError)
    _begin = "BEGIN"
    _begin_read = "BEGIN"
    #: The newest refusals kept in the rejection log (older ones are deleted as new come).
    rejections_kept = 100_000

    def __init__(self) -> None:
        # One connection, used from the event loop's worker threads and from FastAPI's
        # thread pool: the lock serialises them (each call is one short transaction).
        self._lock = threading.Lock()
        self._version = 0

    # -- engine specifics ---------------------------------------------------------------

    @abc.abstractmethod
    def _conn(self) -> Any:
        """The open connection (reconnecting if the engine can)."""

    def _sql(self, statement: str) -> str:
        return statement

    @abc.abstractmethod
    def _describe(self) -> str:
        """The database as error messages name it (never its password)."""

    def _lock_schema(self, conn: Any) -> None:
        """Serialise concurrent migrations (several workers starting together)."""

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Any]:
        with self._lock:
            try:
                conn = self._conn()
                conn.execute(self._begin if write else self._begin_read)
            except self._errors as exc:
                raise StorageError(
                    f"cannot start a transaction on {self._describe()}: {exc}; "
                    "check that the database is reachable",
                    database=self._describe(),
                ) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except self._errors:
                    pass  # the connection is gone; the server rolled back already
                if isinstance(exc, self._data_errors):
                    raise UnstorableDataError(
                        f"the platform database {self._describe()} cannot store a value of "
                        f"this batch: {exc}; nothing of it was committed",
                        database=self._describe(),
                    ) from exc
                if isinstance(exc, self._errors):
                    raise StorageError(
                        f"the platform database {self._describe()} failed: {exc}; "
                        "nothing of this batch was committed",
                        database=self._describe(),
                    ) from exc
                raise

    def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(statement), tuple(params))

    def migrate(self) -> int:
        """Apply the shipped migrations this database lacks; refuse a changed or newer one."""
        shipped = shipped_migrations()
        with self._transaction() as conn:
            self._lock_schema(conn)
            self._version = apply_migrations(
                lambda statement, params: self._run(conn, statement, params),
                self._describe(),
                utc_now_iso(),
                shipped,
            )
        self._fill_lookup_columns()
        return self._version

    def schema_version(self) -> int:
        return self._version

    # -- registry -----------------------------------------------------------------------

    def register_key(
        self, terminal_id: str, key_version: int, public_key_pem: str, now: str
    ) -> None:
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO platform_terminals (terminal_id, registered_at) VALUES (?, ?) "
                "ON CONFLICT (terminal_id) DO NOTHING",
                (terminal_id, now),
            )
            self._run(
                conn,
                "INSERT INTO platform_terminal_keys "
                "(terminal_id, key_version, public_key_pem, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (terminal_id, key_version) DO UPDATE SET "
                "public_key_pem = excluded.public_key_pem, registered_at = excluded.registered_at",
                (terminal_id, key_version, public_key_pem, now),
            )

    def public_key(self, terminal_id: str, key_version: int) -> str | None:
        with self._transaction(write=False) as conn:
            row = self._run(
                conn,
                "SELECT public_key_pem FROM platform_terminal_keys "
                "WHERE terminal_id = ? AND key_version = ?",
                (terminal_id, key_version),
            ).fetchone()
        return None if row is None else str(row[0])

    def key_versions(self, terminal_id: str) -> list[int]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT key_version FROM platform_terminal_keys WHERE terminal_id = ? "
                "ORDER BY key_version",
                (terminal_id,),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def key_record(self, terminal_id: str, key_version: int) -> KeyRecord | None:
        with self._transaction(write=False) as conn:
            row = self._run(
                conn,
                "SELECT public_key_pem, retire_after, revoked_at FROM platform_terminal_keys "
                "WHERE terminal_id = ? AND key_version = ?",
                (terminal_id, key_version),
            ).fetchone()
        if row is None:
            return None
        return KeyRecord(terminal_id, key_version, str(row[0]), row[1], row[2])

    def revoke_key(self, terminal_id: str, key_version: int, now: str) -> bool:
        with self._transaction() as conn:
            changed = self._run(
                conn,
                "UPDATE platform_terminal_keys SET revoked_at = ? "
                "WHERE terminal_id = ? AND key_version = ? AND revoked_at IS NULL",
                (now, terminal_id, key_version),
            ).rowcount
            exists = self._run(
                conn,
                "SELECT 1 FROM platform_terminal_keys WHERE terminal_id = ? AND key_version = ?",
                (terminal_id, key_version),
            ).fetchone()
        return bool(changed) or exists is not None

    def journal_checkpoints_around(
        self, terminal_id: str, entry_id: int
    ) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None, StoredCheckpoint | None]:
        columns = "entry_id, entry_hash, prev_entry_id, prev_entry_hash, signed_at, message_id"
        table = "platform_journal_checkpoint_chain"
        with self._transaction(write=False) as conn:
            rows = [
                self._run(conn, f"SELECT {columns} FROM {table} WHERE terminal_id = ? "  # noqa: S608
                          f"AND entry_id {where} ORDER BY entry_id {order} LIMIT 1",
                          (terminal_id, entry_id)).fetchone()
                for where, order in (("< ?", "DESC"), ("= ?", "ASC"), ("> ?", "ASC"))
            ]
        return tuple(  # type: ignore[return-value]
            None if row is None else StoredCheckpoint(
                int(row[0]), str(row[1]), None if row[2] is None else int(row[2]),
                None if row[3] is None else str(row[3]), str(row[4]), str(row[5]))
            for row in rows
        )

    def next_downlink_seq(self, terminal_id: str, kind: str) -> int:
        with self._transaction() as conn:
            row = self._run(
                conn,
                "INSERT INTO platform_downlink_sequence (terminal_id, kind, seq) "
                "VALUES (?, ?, 1) ON CONFLICT (terminal_id, kind) DO UPDATE SET "
                "seq = platform_downlink_sequence.seq + 1 RETURNING seq",
                (terminal_id, kind),
            ).fetchone()
        return int(row[0])

    # -- ingestion ----------------------------------------------------------------------

    def ingest(self, uplinks: Sequence[Uplink], received_at: str) -> list[IngestOutcome]:
        if not uplinks:
            return []
        new: dict[int, bool] = {}
        conflicts: dict[int, bool] = {}
        added: dict[str, list[int]] = {u.terminal_id: [0, 0] for u in uplinks}
        with self._transaction() as conn:
            # In key order: two workers' batches then lock rows in the same order and
            # cannot deadlock on PostgreSQL (the outcome of each row is order-free).
            for position, uplink in sorted(
                enumerate(uplinks), key=lambda p: (p[1].terminal_id, p[1].message_id)
            ):
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
            IngestOutcome(u.message_id, new[i], conflicts.get(i, False))
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
            checkpoint = uplink.checkpoint
            entry_id, entry_hash = checkpoint.entry_id, checkpoint.entry_hash
            signed_at = checkpoint.signed_at
            self._run(
                conn,
                "INSERT INTO platform_journal_checkpoint_chain (terminal_id, entry_id, "
                "entry_hash, prev_entry_id, prev_entry_hash, signed_at, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (terminal_id, entry_id) DO NOTHING",
                (uplink.terminal_id, entry_id, entry_hash, checkpoint.prev_entry_id,
                 checkpoint.prev_entry_hash, signed_at, uplink.message_id),
            )
            self._run(
                conn,
                "INSERT INTO platform_journal_checkpoints (terminal_id, entry_id, entry_hash, "
                "signed_at, message_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (terminal_id) DO "
                "UPDATE SET entry_id = excluded.entry_id, entry_hash = excluded.entry_hash, "
                "signed_at = excluded.signed_at, message_id = excluded.message_id "
                "WHERE excluded.entry_id >= platform_journal_checkpoints.entry_id",
                (uplink.terminal_id, entry_id, entry_hash, signed_at, uplink.message_id),
            )
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

    # -- reads --------------------------------------------------------------------------

    def _summaries(self, where: str = "", params: Sequence[Any] = ()) -> list[TerminalSummary]:
        with self._transaction(write=False) as conn:
            rows = self._run(conn, f"{_TERMINALS} {where} ORDER BY t.terminal_id", params)
            summaries = [
                TerminalSummary(
                    terminal_id=row[0],
                    registered_at=row[1],
                    last_seen_at=row[2],
                    backlog=json.loads(row[3]) if row[3] else None,
                    backlog_reported_at=row[4],
                    messages=int(row[5]),
                    rejected=int(row[6]),
                    unbooked=int(row[7]),
                )
                for row in rows.fetchall()
            ]
            keys = self._run(
                conn,
                "SELECT terminal_id, key_version FROM platform_terminal_keys "
                "ORDER BY terminal_id, key_version",
            ).fetchall()
        by_id = {summary.terminal_id: summary for summary in summaries}
        for terminal_id, key_version in keys:
            if terminal_id in by_id:
                by_id[terminal_id].key_versions.append(int(key_version))
        return summaries

    def terminals(self) -> list[TerminalSummary]:
        return self._summaries()

    def terminal(self, terminal_id: str) -> TerminalSummary | None:
        found = self._summaries("WHERE t.terminal_id = ?", (terminal_id,))
        return found[0] if found else None

    def message_count(self, terminal_id: str | None = None) -> int:
        with self._transaction(write=False) as conn:
            if terminal_id is None:
                row = self._run(conn, "SELECT COUNT(*) FROM platform_messages").fetchone()
            else:
                row = self._run(
                    conn,
                    "SELECT COUNT(*) FROM platform_messages WHERE terminal_id = ?",
                    (terminal_id,),
                ).fetchone()
        return int(row[0])

    def kind_counts(self, terminal_id: str) -> dict[str, int]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT kind, COUNT(*) FROM platform_messages WHERE terminal_id = ? "
                "GROUP BY kind ORDER BY kind",
                (terminal_id,),
            ).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def transactions(self, terminal_id: str | None, limit: int = 100,
                     business_date: str | None = None) -> list[dict[str, Any]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                f"SELECT {TRANSACTION_COLUMNS} FROM platform_transactions "  # noqa: S608
                "WHERE (? = 1 OR terminal_id = ?) AND (? = 1 OR business_date = ?) "
                "ORDER BY seq DESC LIMIT ?",
                (int(terminal_id is None), terminal_id or "", int(business_date is None),
                 business_date or "", limit),
            ).fetchall()
        return [transaction_row(r) for r in rows]

    def transaction_totals(
        self, business_date: str | None = None, terminal_id: str | None = None
    ) -> list[Total]:
        clauses, params = ["counted = 1"], []
        if business_date is not None:
            clauses.append("business_date = ?")
            params.append(business_date)
        if terminal_id is not None:
            clauses.append("terminal_id = ?")
            params.append(terminal_id)
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                # The clauses are constants of this method; only the values are parameters.
                "SELECT terminal_id, business_date, currency, COUNT(*), SUM(amount_minor) "  # noqa: S608
                f"FROM platform_transactions WHERE {' AND '.join(clauses)} "
                "GROUP BY terminal_id, business_date, currency "
                "ORDER BY terminal_id, business_date, currency",
                params,
            ).fetchall()
        return [Total(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def reported_totals(self, business_date: str) -> list[Total]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT terminal_id, business_date, currency, count, amount_minor "
                "FROM platform_eod_totals WHERE business_date = ? AND currency <> '' "
                "ORDER BY terminal_id, currency",
                (business_date,),
            ).fetchall()
        return [Total(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def eod_reporters(self, business_date: str) -> set[str]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT DISTINCT terminal_id FROM platform_eod_totals WHERE business_date = ?",
                (business_date,),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def rejections(self, terminal_id: str | None = None, limit: int = 100) -> list[Rejection]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        select = "SELECT terminal_id, message_id, reason, received_at FROM platform_rejections"
        # Two statements rather than "(? IS NULL OR …)", which keeps planners off the index.
        with self._transaction(write=False) as conn:
            if terminal_id is None:
                rows = self._run(
                    conn, f"{select} ORDER BY received_at DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._run(
                    conn,
                    f"{select} WHERE terminal_id = ? ORDER BY received_at DESC LIMIT ?",
                    (terminal_id, limit),
                ).fetchall()
        return [Rejection(r[0], r[1], r[2], r[3]) for r in rows]

    def messages(
        self, terminal_id: str, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT envelope, received_at FROM platform_messages WHERE terminal_id = ? "
                "AND (? = 1 OR kind = ?) ORDER BY seq DESC LIMIT ?",
                (terminal_id, int(kind is None), kind or "", limit),
            ).fetchall()
        return [{"received_at": r[1], "envelope": json.loads(r[0])} for r in rows]
