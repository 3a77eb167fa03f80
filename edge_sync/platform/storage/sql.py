"""The SQL both engines run: one implementation of :class:`PlatformStorage`.

SQLite and PostgreSQL run the same statements: ``?`` placeholders are rewritten to ``%s``
for psycopg (:meth:`SqlStorage._sql`), and idempotency is ``INSERT … ON CONFLICT DO NOTHING
RETURNING``, which both engines have. This module holds the connection plumbing, the
migrations and the key registry; the statements are split by job into mixins:

::

    SqlStorage
    ├── uplink_writes.UplinkWrites          ingest a batch (one transaction), refusals
    │   └── checkpoint_rows.CheckpointRows  journal checkpoints: linked in the commit, gaps
    ├── fleet_reads.FleetReads              terminals, messages, totals, refusal log
    └── transaction_reads.TransactionReads  mirrored payments, uncapped and by key

A batch of uplinks is committed in one transaction; the caller acknowledges only after
:meth:`SqlStorage.ingest` has returned (the commit is durable by then). The engine modules
say how to connect, which driver errors mean what, and how to lock the schema and a
terminal's checkpoints.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from edge_sync.messages import utc_now_iso
from edge_sync.platform.errors import StorageError, UnstorableDataError
from edge_sync.platform.records import KeyRecord
from edge_sync.platform.storage.base import PlatformStorage
from edge_sync.platform.storage.fleet_reads import FleetReads
from edge_sync.platform.storage.schema import apply_migrations, shipped_migrations
from edge_sync.platform.storage.transaction_reads import TransactionReads
from edge_sync.platform.storage.uplink_writes import UplinkWrites

__all__ = ["SqlStorage"]


class SqlStorage(UplinkWrites, FleetReads, TransactionReads, PlatformStorage):
    """The statements; subclasses say how to connect and which errors the driver raises."""

    _errors: tuple[type[BaseException], ...] = ()
    #: Errors about the values, not the database: retrying the same rows cannot help.
    _data_errors: tuple[type[BaseException], ...] = (OverflowError, UnicodeEncodeError)
    _begin = "BEGIN"
    _begin_read = "BEGIN"

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
