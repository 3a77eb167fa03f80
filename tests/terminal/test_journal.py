"""The audit journal: an intact chain verifies; each kind of damage names its first bad entry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from terminal.errors import JournalError
from terminal.store import StateChange, Store


@pytest.fixture
def journal_db(tmp_path: Path) -> Path:
    path = tmp_path / "etika.db"
    with Store.open(path) as store:
        for n in range(1, 7):
            store.record(StateChange("terminal", "ETK00001", None, action=f"event-{n}"))
    return path


def _tamper(path: Path, *statements: str) -> None:
    """Edit the file as an attacker with raw SQLite access would (triggers dropped)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER audit_journal_no_update; DROP TRIGGER audit_journal_no_delete;"
        + "".join(s + ";" for s in statements)
    )
    conn.close()


def _verify(path: Path) -> JournalError:
    with Store.open(path) as store, pytest.raises(JournalError) as info:
        store.verify_journal()
    return info.value


def test_intact_journal_verifies(journal_db: Path) -> None:
    """An untouched journal verifies and counts its entries."""
    with Store.open(journal_db) as store:
        assert store.verify_journal() == 6


def test_journal_refuses_update_and_delete_through_sqlite(journal_db: Path) -> None:
    """The table is append-only for anyone going through SQLite with the triggers in place."""
    conn = sqlite3.connect(journal_db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_journal SET actor = 'x' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_journal WHERE id = 2")


@pytest.mark.parametrize(
    ("statements",                                                          "entry", "damage"),
    [
        (["UPDATE audit_journal SET action = 'forged' WHERE id = 3"],            3, "edited"),
        (["UPDATE audit_journal SET data = '{\"x\":1}' WHERE id = 5"],                  5, "edited"),
        (["DELETE FROM audit_journal WHERE id = 4"],                             4, "deleted"),
        (["DELETE FROM audit_journal WHERE id = 4",
          "UPDATE audit_journal SET id = id - 1 WHERE id > 4"],                  4, "deleted"),
        (["DELETE FROM audit_journal WHERE id >= 5"],                            5, "deleted"),
        (["UPDATE audit_journal SET id = 100 WHERE id = 2",
          "UPDATE audit_journal SET id = 2 WHERE id = 3",
          "UPDATE audit_journal SET id = 3 WHERE id = 100"],                     2, "reordered"),
        (["DELETE FROM audit_journal_head"],                                     6, "edited"),
    ],
)
def test_tampering_names_first_bad_entry(
    journal_db: Path, statements: list[str], entry: int, damage: str
) -> None:
    """Editing, deleting (inside or at the end) and reordering are each detected and named."""
    _tamper(journal_db, *statements)
    error = _verify(journal_db)
    assert (error.fields["entry_id"], error.fields["damage"]) == (entry, damage), str(error)
    assert f"entry {entry}" in str(error) or f"entries {entry}" in str(error)


def test_recomputed_hash_does_not_hide_an_edit(journal_db: Path) -> None:
    """Rewriting an entry and its own hash still breaks the link to the next entry."""
    conn = sqlite3.connect(journal_db)
    row = conn.execute("SELECT prev_hash, at, actor, entity, entity_id, action, from_state,"
                       " to_state, data FROM audit_journal WHERE id = 3").fetchone()
    conn.close()
    from terminal.store.journal import _entry_hash

    content = dict(zip(("at", "actor", "entity", "entity_id", "action", "from_state",
                        "to_state", "data"), row[1:], strict=True))
    content["action"] = "forged"
    forged_hash = _entry_hash(row[0], content)
    _tamper(journal_db, f"UPDATE audit_journal SET action='forged', hash='{forged_hash}'"
                        " WHERE id = 3")
    error = _verify(journal_db)
    assert error.fields["entry_id"] == 4
