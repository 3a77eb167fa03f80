"""The platform schema is versioned: recorded, checksummed migrations on both engines."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from edge_sync.platform.errors import StorageError
from edge_sync.platform.records import StoredCheckpoint, Uplink
from edge_sync.platform.storage import PlatformStorage, open_storage
from edge_sync.platform.storage.schema import (
    MIGRATIONS_TABLE,
    apply_migrations,
    shipped_migrations,
)
from tests.fixtures.postgres import POSTGRES_URL


@contextmanager
def raw(database: str) -> Iterator[Any]:
    """A plain driver connection to the test database (outside the storage under test)."""
    if database.startswith("postgresql://"):
        import psycopg

        schema = dict(parse_qsl(urlsplit(database).query))["schema"]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            yield conn
    else:
        conn = sqlite3.connect(database, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


def test_every_shipped_migration_is_recorded_with_its_checksum(database: str) -> None:
    """A new database records each migration file's version, name and SHA-256."""
    storage = open_storage(database)
    storage.close()
    with raw(database) as conn:
        rows = conn.execute(
            f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
        ).fetchall()
    shipped = shipped_migrations()
    assert [tuple(r) for r in rows] == [(m.version, m.name, m.checksum) for m in shipped]
    assert storage.schema_version() == shipped[-1].version


def test_reopening_applies_nothing_twice(database: str) -> None:
    """Opening a migrated database again keeps one record per migration and its data."""
    first = open_storage(database)
    first.register_key("T-1", 1, "pem", "2026-11-21T00:00:00Z")
    first.close()
    second = open_storage(database)
    try:
        assert second.key_versions("T-1") == [1]
    finally:
        second.close()
    with raw(database) as conn:
        count = conn.execute(f"SELECT COUNT(*) FROM {MIGRATIONS_TABLE}").fetchone()[0]
    assert count == len(shipped_migrations())


def test_a_changed_applied_migration_is_refused(database: str) -> None:
    """A database whose applied migration no longer matches the shipped file is not used."""
    open_storage(database).close()
    with raw(database) as conn:
        conn.execute(
            f"UPDATE {MIGRATIONS_TABLE} SET checksum = 'edited' WHERE version = 1"
        )
    with pytest.raises(StorageError, match=r"0001_initial\.sql .*changed since it was applied"):
        open_storage(database)


def test_a_database_from_a_newer_release_is_refused(database: str) -> None:
    """A migration version this code does not ship means newer software wrote the schema."""
    open_storage(database).close()
    with raw(database) as conn:
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} VALUES (9999, '9999_future.sql', 'x', 'now')"
        )
    with pytest.raises(StorageError, match=r"\[9999\].*upgrade this one"):
        open_storage(database)


def test_a_database_from_before_versioning_is_adopted(tmp_path: Any) -> None:
    """Tables created by the unversioned code are kept and recorded as migration 0001."""
    path = tmp_path / "old.db"
    first = shipped_migrations()[0]
    with raw(str(path)) as conn:
        for statement in first.statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO platform_terminals (terminal_id, registered_at) VALUES ('T-OLD', 'x')"
        )
    storage = open_storage(str(path))
    try:
        assert [t.terminal_id for t in storage.terminals()] == ["T-OLD"]
        assert storage.schema_version() == shipped_migrations()[-1].version
    finally:
        storage.close()


def _tables(conn: Any, database: str) -> set[str]:
    if database.startswith("postgresql://"):
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = current_schema()").fetchall()
    else:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def test_a_database_with_the_newest_checkpoint_table_upgrades(database: str) -> None:
    """A database at schema 8 still has the newest-checkpoint table of 0005: migration 0009
    carries over a row the chain lacks, keeps the chain's, and drops the table; 0010 finds
    the gap already open (entry 7 names 3, never received); the terminal's next checkpoint
    links to what was carried over."""
    with raw(database) as conn:
        if database.startswith("postgresql://"):
            schema = dict(parse_qsl(urlsplit(database).query))["schema"]
            conn.execute(f'CREATE SCHEMA "{schema}"')

            def run(statement: str, params: Any) -> Any:
                return conn.execute(statement.replace("?", "%s"), params)
        else:
            run = conn.execute
        apply_migrations(run, database, "then", shipped_migrations()[:8])
        for terminal in ("T-CHAIN", "T-HAND"):
            run("INSERT INTO platform_terminals (terminal_id, registered_at) VALUES (?, 'x')",
                (terminal,))
            run("INSERT INTO platform_journal_checkpoints VALUES (?, 7, ?, 'then', 'm-7')",
                (terminal, "7" * 64))
        # Written together since 0007; a hand-edited database may lack the chain's row.
        run("INSERT INTO platform_journal_checkpoint_chain (terminal_id, entry_id, entry_hash, "
            "prev_entry_id, prev_entry_hash, signed_at, message_id) "
            "VALUES ('T-CHAIN', 7, ?, 3, ?, 'then', 'm-7')", ("7" * 64, "3" * 64))
    storage = open_storage(database)
    try:
        assert storage.schema_version() == shipped_migrations()[-1].version
        links = {}
        for terminal in ("T-CHAIN", "T-HAND"):
            _, at_seven, _ = storage.journal_checkpoints_around(terminal, 7)
            assert at_seven is not None and at_seven.entry_hash == "7" * 64
            links[terminal] = at_seven.prev_entry_id
        assert links == {"T-CHAIN": 3, "T-HAND": None}
        assert [(g.terminal_id, g.first_entry, g.last_entry, g.checkpoint_entry, g.since)
                for g in storage.checkpoint_gaps()] == [("T-CHAIN", 1, 3, 7, "then")]
        nxt = StoredCheckpoint(12, "c" * 64, 7, "7" * 64, "now", "m-12")
        outcome, = storage.ingest([Uplink("m-12", "T-HAND", "journal_checkpoint", 12, "m-12",
                                          "now", "{}", checkpoint=nxt)], "now")
        assert outcome.new and outcome.refused is None
    finally:
        storage.close()
    with raw(database) as conn:
        tables = _tables(conn, database)
    assert "platform_journal_checkpoint_chain" in tables
    assert "platform_journal_checkpoints" not in tables
    assert "platform_journal_checkpoint_gaps" in tables


def test_storage_methods_are_abstract() -> None:
    """A storage that leaves a method out cannot be built (abc), so no double lacks one."""

    class Partial(PlatformStorage):
        def close(self) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
