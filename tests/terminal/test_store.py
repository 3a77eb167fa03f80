"""The durable store: pragmas, migrations, state machines and the one atomic write API."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from terminal.errors import IllegalTransitionError, StoreError
from terminal.store import OutboxMessage, StateChange, Store, store_status
from terminal.store.db import migrations


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "etika.db")
    yield opened
    opened.close()


def _new_payment(store: Store, amount: int = 1250) -> str:
    payment_id = str(uuid.uuid4())
    store.record(
        StateChange(
            "payment",
            payment_id,
            "created",
            {"amount_minor": amount, "currency": "MAD", "order_ref": "R-1"},
            outbox=[OutboxMessage("platform", "transaction", {"id": payment_id}, payment_id)],
        )
    )
    return payment_id


def test_pragmas_are_durable(store: Store) -> None:
    """WAL, synchronous=FULL and foreign keys are on for every connection."""
    conn = store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_all_applied_and_recorded(store: Store) -> None:
    """Every shipped migration is applied once and recorded; user_version is the highest."""
    shipped = [v for v, _, _ in migrations()]
    recorded = [r[0] for r in store.connection.execute(
        "SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == shipped
    assert store.schema_version() == max(shipped)


def test_reopen_does_not_migrate_again(tmp_path: Path) -> None:
    """Opening an up-to-date store changes nothing."""
    Store.open(tmp_path / "a.db").close()
    with Store.open(tmp_path / "a.db") as again:
        count = again.connection.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert count == len(migrations())


def test_newer_database_is_refused(tmp_path: Path) -> None:
    """A store written by newer software is refused with what to do."""
    Store.open(tmp_path / "a.db").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="upgrade the terminal software"):
        Store.open(tmp_path / "a.db")


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    """A data dir that cannot hold the database names it and says what to check."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="--data-dir"):
        Store.open(blocker / "etika.db")


def test_state_change_writes_row_outbox_and_journal_together(store: Store) -> None:
    """One record() gives the state row, its outbox row and a journal entry naming it."""
    payment_id = _new_payment(store)
    conn = store.connection
    row = conn.execute("SELECT status, amount_minor FROM payments WHERE id=?",
                       (payment_id,)).fetchone()
    assert tuple(row) == ("created", 1250)
    outbox = conn.execute("SELECT message_id, destination, state FROM outbox").fetchall()
    assert [(r[1], r[2]) for r in outbox] == [("platform", "pending")]
    entry = conn.execute("SELECT entity_id, to_state, data FROM audit_journal").fetchone()
    assert entry[0] == payment_id and entry[1] == "created"
    assert json.loads(entry[2])["outbox"] == [outbox[0][0]]


@pytest.mark.parametrize(
    ("path",                                              "allowed"),
    [
        (["authorising", "completed"],                    True),
        (["authorising", "pop_deferred", "completed"],    True),
        (["authorising", "reversal_pending", "reversed"], True),
        (["authorising", "needs_reconciliation", "reversed"], True),
        (["completed"],                                   True),   # card TC at GENERATE AC 1
        (["completed", "voided"],                         True),
        (["completed", "offline_declined"],               True),
        (["completed", "reversed"],                       False),
        (["financial_declined", "completed"],             False),
        (["authorising", "completed", "authorising"],     False),
        (["cancelled", "authorising"],                    False),
        (["authorising", "reversed"],                     False),
    ],
)
def test_payment_state_machine(store: Store, path: list[str], allowed: bool) -> None:
    """Only the transitions of DESIGN §6 are accepted."""
    payment_id = _new_payment(store)
    if allowed:
        for state in path:
            store.record(StateChange("payment", payment_id, state))
        return
    with pytest.raises(IllegalTransitionError):
        for state in path:
            store.record(StateChange("payment", payment_id, state))


def test_refused_transition_leaves_nothing_behind(store: Store) -> None:
    """An illegal transition writes neither state, outbox row nor journal entry."""
    payment_id = _new_payment(store)
    before = store_status(store)
    with pytest.raises(IllegalTransitionError):
        store.record(StateChange(
            "payment", payment_id, "reversed",
            outbox=[OutboxMessage("psp:cih", "reversal", {}, payment_id, priority=10)]))
    assert store_status(store)["tables"] == before["tables"]


def test_failure_mid_change_rolls_back_everything(store: Store) -> None:
    """If an outbox row cannot be written, the state change is not written either."""
    payment_id = _new_payment(store)
    duplicate = OutboxMessage("platform", "transaction", {}, payment_id)
    with pytest.raises(sqlite3.IntegrityError):
        store.record(StateChange("payment", payment_id, "authorising",
                                 outbox=[duplicate, duplicate]))
    status = store.connection.execute("SELECT status FROM payments").fetchone()[0]
    assert status == "created"
    assert store.verify_journal() == 1


def test_refused_commit_is_a_store_error_and_the_store_stays_usable(store: Store) -> None:
    """A COMMIT SQLite refuses is a StoreError, rolled back; the next change still commits."""
    store.connection.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.connection.execute(
        "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(StoreError, match="nothing of this change was written") as caught:
        with store.transaction() as conn:
            conn.execute("INSERT INTO child VALUES (42)")  # checked only at COMMIT
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert not store.connection.in_transaction
    assert store.connection.execute("SELECT count(*) FROM child").fetchone()[0] == 0
    payment_id = _new_payment(store)
    assert store.connection.execute(
        "SELECT status FROM payments WHERE id = ?", (payment_id,)).fetchone()[0] == "created"


def test_unknown_field_is_a_caller_mistake(store: Store) -> None:
    """Setting a column the table does not have (e.g. a clear PAN) is refused."""
    with pytest.raises(ValueError, match="no column"):
        store.record(StateChange("payment", "p1", "created",
                                 {"amount_minor": 1, "currency": "MAD", "pan": "x"}))


def test_events_need_an_action(store: Store) -> None:
    """Entities without a state table record events, which must be named."""
    with pytest.raises(ValueError, match="action"):
        store.record(StateChange("terminal", "ETK00001", None))
    store.record(StateChange("terminal", "ETK00001", None, action="keys_rotated",
                             outbox=[OutboxMessage("platform", "alert", {"k": 1}, "a1")]))
    assert store.verify_journal() == 1


def test_vault_blob_is_journalled_by_digest_only(store: Store) -> None:
    """Binary fields reach the journal as a SHA-256, never as bytes."""
    blob = b"\x01\x02secret-ciphertext"
    store.record(StateChange("payment", "p2", "created",
                             {"amount_minor": 5, "currency": "MAD", "vault_blob": blob}))
    data = json.loads(store.connection.execute("SELECT data FROM audit_journal").fetchone()[0])
    assert set(data["vault_blob"]) == {"sha256"}


def test_status_counts_per_state_and_outbox_depth(store: Store) -> None:
    """db status reports rows per table and state and the outbox depth per destination."""
    first = _new_payment(store)
    _new_payment(store)
    store.record(StateChange("payment", first, "authorising"))
    status = store_status(store)
    assert status["tables"]["payments"]["by_state"] == {"authorising": 1, "created": 1}
    assert status["outbox"]["platform"]["depth"] == 2
    assert status["tables"]["audit_journal"]["rows"] == 3


def test_each_applied_migration_has_its_checksum(store: Store) -> None:
    """#10.5: every applied migration is recorded with the SHA-256 of its file."""
    from terminal.store.db import migration_checksum

    recorded = dict(store.connection.execute(
        "SELECT name, checksum FROM schema_migrations"))
    assert recorded == {name: migration_checksum(sql) for _, name, sql in migrations()}


def test_a_changed_applied_migration_is_refused(tmp_path: Path) -> None:
    """#10.5: a store whose applied migration file changed since (checksum differs) is
    refused, naming the migration; the store is left as it was."""
    Store.open(tmp_path / "a.db").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 2")
    conn.commit()
    conn.close()
    (_, name, _), = [m for m in migrations() if m[0] == 2]
    with pytest.raises(StoreError, match=f"migration {name} .* has changed"):
        Store.open(tmp_path / "a.db")
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("SELECT checksum FROM schema_migrations WHERE version = 2"
                        ).fetchone()[0] == "deadbeef"
    conn.close()


def test_a_store_from_before_checksums_upgrades(tmp_path: Path) -> None:
    """#10.5: a store written before checksums and the retirement of the empty reserved
    migrations 0003/0004 (recorded as applied) opens, and gets its checksums recorded."""
    from terminal.store.db import RETIRED_MIGRATIONS

    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                 " name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    old = [(v, n, sql) for v, n, sql in migrations() if v <= 2]
    for version, name, sql in old:
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01')",
                     (version, name))
    for version, name in RETIRED_MIGRATIONS.items():
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01')",
                     (version, name))
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "old.db") as store:
        rows = dict(store.connection.execute(
            "SELECT version, checksum FROM schema_migrations"))
        assert store.schema_version() == max(v for v, _, _ in migrations())
    assert all(rows[v] for v, _, _ in migrations())
    assert rows[3] is None and rows[4] is None  # retired: nothing to check them against


def test_the_reserved_migrations_are_gone() -> None:
    """#10.5: no empty "reserved" migration invites editing an applied file any more."""
    names = [name for _, name, _ in migrations()]
    assert not any("reserved" in name for name in names)
    assert all(sql.strip() for _, _, sql in migrations())
