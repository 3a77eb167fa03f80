"""The platform's schema: numbered, checksummed migrations shared by SQLite and PostgreSQL.

The migrations are the files ``migrations/NNNN_name.sql``, written in the SQL both engines
accept (``BIGINT``, ``ON CONFLICT``, ``RETURNING``); statements end with ``;`` at the end of
a line. Each one applied is recorded in ``platform_schema_migrations`` with the SHA-256 of
its file, in the same transaction as its statements. On every open the recorded checksums
are compared with the shipped files: a database migrated by a file that has since changed,
or by a newer release (a version this code does not ship), is refused rather than used —
running on a schema nobody can name is how rows get lost silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edge_sync.platform.errors import StorageError

__all__ = ["MIGRATIONS_TABLE", "Migration", "apply_migrations", "shipped_migrations"]

MIGRATIONS_TABLE = "platform_schema_migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL)"""


@dataclass(frozen=True)
class Migration:
    """One shipped migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def statements(self) -> list[str]:
        """The statements of the file (comments dropped), in order."""
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


def shipped_migrations() -> list[Migration]:
    """Every migration file of this package, by version; two files of one number are a bug."""
    found = []
    for entry in resources.files("edge_sync.platform.storage.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StorageError(f"two platform migrations share a number: {versions}")
    return found


Run = Callable[[str, Sequence[Any]], Any]


def apply_migrations(run: Run, database: str, now: str, shipped: Sequence[Migration]) -> int:
    """Check what is recorded, apply what is missing (inside the caller's transaction).

    Returns the schema version. :class:`StorageError` when a recorded migration's file
    changed since, or the database holds a version this code does not ship.
    """
    run(_CREATE_TABLE, ())
    recorded = {
        int(row[0]): (str(row[1]), str(row[2]))
        for row in run(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE}", ()).fetchall()  # noqa: S608
    }
    by_version = {m.version: m for m in shipped}
    unknown = sorted(set(recorded) - set(by_version))
    if unknown:
        raise StorageError(
            f"the platform database {database} has migration(s) {unknown} that this software "
            "does not ship: it was upgraded by a newer release; upgrade this one",
            database=database,
        )
    for version, (name, checksum) in sorted(recorded.items()):
        if by_version[version].checksum != checksum:
            raise StorageError(
                f"migration {name} applied to the platform database {database} has changed "
                "since it was applied (checksum differs): an applied migration is never "
                "edited; restore the shipped file or add a new migration",
                database=database,
                migration=name,
            )
    for migration in shipped:
        if migration.version in recorded:
            continue
        for statement in migration.statements():
            run(statement, ())
        run(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum, applied_at) "  # noqa: S608
            "VALUES (?, ?, ?, ?)",
            (migration.version, migration.name, migration.checksum, now),
        )
    return max((m.version for m in shipped), default=0)
