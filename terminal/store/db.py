"""Opening the SQLite store: durability pragmas, versioned migrations, transactions.

The store is one SQLite file in WAL mode with ``synchronous=FULL`` (a committed state
change survives power loss) and foreign keys on. Migrations are the numbered files in
``migrations/`` (``0001_initial.sql``, ``0002_….sql`` …), applied in order, each in its own
transaction together with ``PRAGMA user_version``, so a crash mid-migration leaves the
previous version intact.

Each applied migration is recorded in ``schema_migrations`` with the SHA-256 of its file.
An applied file is never edited (a change goes in a new migration): a store whose recorded
checksum no longer matches the shipped file is refused, naming the file, because the
database no longer says what the code believes it holds. Stores from before checksums get
them recorded on their next open. Numbers may have gaps: the empty "reserved" migrations
0003 and 0004 were retired (:data:`RETIRED_MIGRATIONS`), and stores that applied them open
as before.

Blocking boundary: every method here is synchronous; asyncio callers cross into a thread
with ``await asyncio.to_thread(store.record, change)``. One ``Store`` may be shared by
threads — a lock serialises its transactions.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from terminal.errors import StoreError
from terminal.store.changes import StateChange, record_change
from terminal.store.checkpoints import verify_checkpoints
from terminal.store.journal import JournalEntry, verify_journal

__all__ = [
    "PRAGMAS",
    "RETIRED_MIGRATIONS",
    "Store",
    "describe_sqlite_error",
    "migration_checksum",
    "migrations",
]

#: Applied on every connection; ``bench/store.py`` uses the same for its raw baseline.
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 10000",
)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: Migrations that were shipped empty ("reserved" numbers) and then removed: a store that
#: recorded them is not from newer software, and there is no file to check them against.
RETIRED_MIGRATIONS = {3: "0003_reserved_emv.sql", 4: "0004_reserved_pinpad.sql"}

# SQLite primary result codes (sqlite3.h) that each call for a different remedy.
_SQLITE_BUSY, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 5, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
#: Failures of the file or its disk, which the operator fixes; any other sqlite3 error
#: inside a ``with store:`` block is a bug and stays what it is.
_OPERATOR_CODES = frozenset({_SQLITE_BUSY, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT,
                             _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB})


def describe_sqlite_error(exc: sqlite3.Error, path: Path) -> str:
    """What went wrong with the store at ``path`` and what the operator can do about it.

    The remedy depends on SQLite's primary result code: a damaged file must be restored,
    not retried; a locked one retried; a read-only or missing directory fixed. The file
    itself is never touched here, so nothing is lost by refusing it.
    """
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return (
            f"the store at {path} is damaged or not an Étika database ({exc}); it was left "
            "as it is: move it aside and restore it from a backup, or point --data-dir / "
            "ETIKA_DATA_DIR at the right directory"
        )
    if code == _SQLITE_BUSY:
        return (
            f"the store at {path} is locked by another process ({exc}); wait for it to "
            "finish and try again"
        )
    if code == _SQLITE_FULL:
        return f"the disk holding the store at {path} is full ({exc}); free space and retry"
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_IOERR):
        return (
            f"cannot use the store at {path} ({exc}); check that it is a file (or absent) "
            "in a writable data directory (--data-dir / ETIKA_DATA_DIR)"
        )
    return f"the store at {path} failed: {exc}"


def migrations() -> list[tuple[int, str, str]]:
    """``(version, filename, sql)`` of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("terminal.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {versions}")
    return found


def migration_checksum(sql: str) -> str:
    """The SHA-256 (hex) of a migration file's text, as recorded when it is applied."""
    import hashlib

    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _owner_only(path: Path) -> None:
    """Create the data directory (0700) and the database file (0600) for the owner only.

    SQLite creates the WAL and shared-memory files with the database file's permissions, so
    they follow. An existing database is tightened too: it holds tokens and the journal.
    """
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if created:
        os.chmod(path.parent, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    elif path.is_file() and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


class Store:
    """The terminal's durable store. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn = connection
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | str, *, migrate: bool = True) -> Store:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date."""
        path = Path(path)
        try:
            _owner_only(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in PRAGMAS:
                conn.execute(pragma)
            conn.row_factory = sqlite3.Row
        except OSError as exc:
            raise StoreError(
                f"cannot open the store at {path}: {exc.strerror or exc}; check the data "
                "directory (--data-dir / ETIKA_DATA_DIR) exists and is writable",
                path=str(path),
            ) from exc
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(exc, path), path=str(path)) from exc
        store = cls(conn, path)
        try:
            if migrate:
                store.migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(describe_sqlite_error(exc, path), path=str(path)) from exc
        except BaseException:
            conn.close()
            raise
        return store

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for reads. Writes go through :meth:`transaction`."""
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close()
        # A damaged page is often found only when a query reaches it, long after open():
        # whoever used the store in this block gets the store's error, naming the file.
        if (isinstance(exc, sqlite3.Error)
                and getattr(exc, "sqlite_errorcode", 0) & 0xFF in _OPERATOR_CODES):
            raise StoreError(describe_sqlite_error(exc, self.path), path=str(self.path)) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception rolls back and propagates.

        A failed ``COMMIT`` (deferred constraint, disk full, I/O error) is a ``StoreError``
        and is rolled back too: SQLite can leave the transaction open after a refused
        ``COMMIT``, and an open one would make every later ``BEGIN`` on this store fail.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a transaction on {self.path}: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(
                    f"cannot commit on {self.path}: {exc}; nothing of this change was written",
                    path=str(self.path),
                ) from exc

    def record(self, change: StateChange) -> JournalEntry:
        """Write a state change, its outbox rows and its journal entry in one transaction."""
        with self.transaction() as conn:
            return record_change(conn, change)

    def verify_journal(self) -> int:
        """Number of journal entries if the chain is intact and every signed checkpoint
        still matches it (truncation or rewrite); ``JournalError`` otherwise."""
        with self._lock:
            count = verify_journal(self._conn)
            verify_checkpoints(self._conn)
            return count

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply every shipped migration the database has not recorded; return the version.

        Refuses a store written by newer software, and one whose applied migration file
        has changed since (its recorded checksum differs from the shipped file's).
        """
        shipped = migrations()
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL,"
            " checksum TEXT)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(schema_migrations)")}
        if "checksum" not in columns:  # a store from before checksums: add the column
            self._conn.execute("ALTER TABLE schema_migrations ADD COLUMN checksum TEXT")
        recorded = {row[0]: row[1] for row in self._conn.execute(
            "SELECT version, checksum FROM schema_migrations")}
        applied = set(recorded)
        known = {version for version, _, _ in shipped} | set(RETIRED_MIGRATIONS)
        unknown = applied - known
        newest = max((version for version, _, _ in shipped), default=0)
        if not unknown and self.schema_version() > newest:
            # Written by newer software that does not record its migrations here: running
            # older code over it could lose what the newer schema holds.
            raise StoreError(
                f"the store at {self.path} has schema version {self.schema_version()}, newer "
                f"than this software knows ({newest}); upgrade the terminal software",
                path=str(self.path),
            )
        if unknown:
            raise StoreError(
                f"the store at {self.path} has migration(s) {sorted(unknown)} that this "
                "software does not know; upgrade the terminal software",
                path=str(self.path),
            )
        self._check_applied(shipped, recorded)
        for version, name, sql in shipped:
            if version in applied:
                continue
            top = max(applied | {version})
            try:
                # executescript would commit first; wrapping the script keeps the migration,
                # its record and the user_version bump one atomic transaction.
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n"
                    f"INSERT INTO schema_migrations VALUES ({version}, '{name}',"
                    " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
                    f" '{migration_checksum(sql)}');\n"
                    f"PRAGMA user_version = {top};\nCOMMIT;"
                )
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"migration {name} failed on {self.path}: {exc}") from exc
            applied.add(version)
        return self.schema_version()

    def _check_applied(self, shipped: list[tuple[int, str, str]],
                       recorded: dict[int, str | None]) -> None:
        """Each applied migration's file is unchanged; a missing checksum is recorded now."""
        missing: list[tuple[str, int]] = []
        for version, name, sql in shipped:
            if version not in recorded:
                continue
            checksum = migration_checksum(sql)
            if recorded[version] is None:
                missing.append((checksum, version))
            elif recorded[version] != checksum:
                raise StoreError(
                    f"the migration {name} applied to the store at {self.path} has changed "
                    f"since (checksum {recorded[version]}, the file now {checksum}): the "
                    "database may not hold what this software expects. Reinstall the "
                    "software whose migration files match, or restore the store from a "
                    "backup; an applied migration is never edited, a change goes in a new one",
                    path=str(self.path), migration=name,
                )
        if missing:
            with self._conn:
                self._conn.executemany(
                    "UPDATE schema_migrations SET checksum = ? WHERE version = ?", missing)

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` or SQLite's description of the damage."""
        rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)
