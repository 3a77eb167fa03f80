"""The platform's database: an abstract base, one SQL implementation for two engines.

::

    base.PlatformStorage (abc)      what the platform needs from its database
    └── sql.SqlStorage              the statements both engines run
        ├── sqlite.SqliteStorage    one file, WAL (the default)
        └── postgres.PostgresStorage  postgresql://…[?schema=NAME], several workers

The schema is versioned by the checksummed migrations of :mod:`.schema`
(``migrations/NNNN_*.sql``), the same files on both engines.
"""

from __future__ import annotations

from pathlib import Path

from edge_sync.platform.errors import StorageError
from edge_sync.platform.storage.base import PlatformStorage
from edge_sync.platform.storage.postgres import PostgresStorage
from edge_sync.platform.storage.sqlite import SqliteStorage

__all__ = [
    "PlatformStorage",
    "PostgresStorage",
    "SqliteStorage",
    "open_storage",
]


def open_storage(database: str | Path) -> PlatformStorage:
    """SQLite for a path (or ``sqlite:///path``), PostgreSQL for ``postgresql://…``."""
    text = str(database)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            return PostgresStorage(text)
        except StorageError:
            raise
        except Exception as exc:
            # psycopg raises OperationalError when nothing answers; name the fix.
            raise StorageError(
                f"cannot connect to the platform database: {exc}; check --database "
                "and that PostgreSQL is running",
            ) from exc
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ValueError(f"unsupported database URL {text!r}: use a path or postgresql://…")
    return SqliteStorage(Path(text))
