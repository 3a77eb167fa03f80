"""Signed journal checkpoints and owner-only files (#12 item 5): a journal truncated or
rewritten by someone who can write the database — even with every hash recomputed — no
longer verifies; the data dir, database, WAL and logs are the owner's only."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_sync.signing import SoftwareSigner
from terminal.errors import JournalError
from terminal.logs import configure_logging
from terminal.store import Store
from terminal.store.changes import StateChange
from terminal.store.checkpoints import CHECKPOINT_KIND, checkpoint_if_due, sign_checkpoint
from terminal.store.journal import GENESIS_HASH, canonical_json

SIGNER = SoftwareSigner.generate()


def _journalled(tmp_path: Path, entries: int = 5) -> Store:
    store = Store.open(tmp_path / "data" / "etika.db")
    for i in range(entries):
        store.record(StateChange("terminal", f"e{i}", None, action="report"))
    return store


def _rechain(path: Path, keep: int | None = None, edit: int | None = None) -> None:
    """What an attacker with the file does: drop the guards, cut or edit entries, and
    recompute every hash and the head so that the chain itself verifies again."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_journal_no_update")
    conn.execute("DROP TRIGGER audit_journal_no_delete")
    if keep is not None:
        conn.execute("DELETE FROM audit_journal WHERE id > ?", (keep,))
    if edit is not None:
        conn.execute("UPDATE audit_journal SET action = 'nothing_to_see' WHERE id = ?", (edit,))
    columns = ("at", "actor", "entity", "entity_id", "action", "from_state", "to_state", "data")
    running = GENESIS_HASH
    rows = conn.execute(f"SELECT id, {', '.join(columns)} FROM audit_journal ORDER BY id")
    for row in rows.fetchall():
        content = dict(zip(columns, row[1:], strict=True))
        digest = hashlib.sha256(
            (running + "\n" + canonical_json(content)).encode()).hexdigest()
        conn.execute("UPDATE audit_journal SET prev_hash = ?, hash = ? WHERE id = ?",
                     (running, digest, row[0]))
        running = digest
    last = conn.execute("SELECT MAX(id) FROM audit_journal").fetchone()[0]
    conn.execute("UPDATE audit_journal_head SET last_id = ?, last_hash = ?", (last, running))
    conn.close()


def test_checkpoint_is_signed_kept_and_queued_for_the_platform(tmp_path: Path) -> None:
    """The head is signed with the terminal key, kept, and queued as an uplink that links
    to the previous checkpoint."""
    store = _journalled(tmp_path)
    first = sign_checkpoint(store, SIGNER, "ETK00001", "end_of_day")
    second = sign_checkpoint(store, SIGNER, "ETK00001", "sync")
    assert first.entry_id == 5 and second.entry_id == 6  # the first one's own journal entry
    assert (second.payload["prev_entry_id"], second.payload["prev_entry_hash"]) == (
        5, first.payload["entry_hash"])
    rows = store.connection.execute(
        "SELECT payload FROM outbox WHERE kind = ? ORDER BY id", (CHECKPOINT_KIND,)).fetchall()
    uplinked = [json.loads(r[0]) for r in rows]
    assert [u["entry_id"] for u in uplinked] == [5, 6]
    import base64

    from edge_sync.signing import verify_signature
    payload = {k: v for k, v in uplinked[0].items() if k != "signature"}
    verify_signature(SIGNER.public_key_pem(), canonical_json(payload).encode(),
                     base64.b64decode(uplinked[0]["signature"]))
    assert store.verify_journal() == 7
    store.close()


@pytest.mark.parametrize(
    ("keep", "edit", "message"),
    [
        (3,     None,  "truncated"),
        (None,  2,     "rewritten"),
    ],
)
def test_a_rechained_journal_no_longer_verifies(
    tmp_path: Path, keep: int | None, edit: int | None, message: str
) -> None:
    """Truncating or rewriting the journal and recomputing the chain passes the chain
    check, but not the signed checkpoint (which no file edit can re-sign)."""
    store = _journalled(tmp_path)
    sign_checkpoint(store, SIGNER, "ETK00001", "end_of_day")
    path = store.path
    store.close()
    _rechain(path, keep=keep, edit=edit)
    with Store.open(path) as reopened, pytest.raises(JournalError, match=message):
        reopened.verify_journal()


def test_data_dir_database_wal_and_logs_are_owner_only(tmp_path: Path) -> None:
    """Created by the terminal: directory 0700, database, WAL and log files 0600."""
    store = _journalled(tmp_path, 1)
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("etika.db", "etika.db-wal"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    store.close()
    logs = tmp_path / "logs"
    configure_logging(logs, console=False)
    try:
        logging.getLogger("etika.test").warning("hello")
    finally:
        configure_logging(None, console=False)
    files = list(logs.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700


NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _last_signed_at(store: Store) -> datetime:
    (signed_at,) = store.connection.execute(
        "SELECT signed_at FROM journal_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    return datetime.fromisoformat(signed_at.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("entries", "signed_before", "new_entries", "age_s", "interval_s", "signs"),
    [
        (0,         False,          0,             0,       900,          False),  # empty journal
        (5,         False,          0,             0,       900,          True),   # first one
        (5,         False,          0,             0,       0,            False),  # turned off
        (5,         True,           0,             10_000,  900,          False),  # only its own entry since
        (5,         True,           3,             899,     900,          False),  # moved, too soon
        (5,         True,           3,             900,     900,          True),   # moved, due
        (5,         True,           1,             3600,    900,          True),   # one real entry is enough
    ],
)
def test_interval_checkpoint_is_signed_when_due(
    tmp_path: Path, entries: int, signed_before: bool, new_entries: int, age_s: float,
    interval_s: float, signs: bool,
) -> None:
    """An interval checkpoint is signed once the journal moved past the last checkpoint's
    own entry and that checkpoint is interval_s old; never on an idle journal."""
    store = _journalled(tmp_path, entries)
    if signed_before:
        sign_checkpoint(store, SIGNER, "ETK00001", "end_of_day")
    for i in range(new_entries):
        store.record(StateChange("terminal", f"n{i}", None, action="report"))
    now = (_last_signed_at(store) if signed_before else NOON) + timedelta(seconds=age_s)
    done = checkpoint_if_due(store, SIGNER, "ETK00001", interval_s, now=now)
    assert (done is not None) == signs
    if done is not None:
        assert done.payload["reason"] == "interval"
        assert done.entry_id == entries + (1 if signed_before else 0) + new_entries
    store.close()


@pytest.mark.parametrize(("keep", "edit", "message"),
                         [(4, None, "truncated"), (None, 3, "rewritten")])
def test_an_interval_checkpoint_alone_catches_a_rechained_journal(
    tmp_path: Path, keep: int | None, edit: int | None, message: str
) -> None:
    """Without any end of day, the interval checkpoint is what a truncation or a rewrite
    (every hash recomputed) runs into."""
    store = _journalled(tmp_path, 6)
    assert checkpoint_if_due(store, SIGNER, "ETK00001", 900) is not None
    assert store.verify_journal() == 7
    path = store.path
    store.close()
    _rechain(path, keep=keep, edit=edit)
    with Store.open(path) as reopened, pytest.raises(JournalError, match=message):
        reopened.verify_journal()
