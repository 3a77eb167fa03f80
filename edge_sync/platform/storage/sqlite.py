"""The platform database in one SQLite file (the default, under the data directory)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_sync.platform.errors import StorageError
from edge_sync.platform.storage.sql import SqlStorage

__all__ = ["SqliteStorage"]


class SqliteStorage(SqlStorage):
    """The platform database in one SQLite file (WAL, synchronous=FULL)."""

    _errors = (sqlite3.Error,)
    _data_errors = (sqlite3.DataError, OverflowError, UnicodeEncodeError)
    # IMMEDIATE takes the write lock up front, so two processes on one file queue instead
    # of failing half-way through a batch; reads stay deferred (WAL readers never block).
    _begin = "BEGIN IMMEDIATE"
    _begin_read = "BEGIN"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot open the platform database {self.path}: {exc}", database=str(self.path)
            ) from exc
        self.migrate()

    def _conn(self) -> sqlite3.Connection:
        return self._connection

    def _describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._connection.close()
