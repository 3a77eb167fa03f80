"""The audit journal: append-only, each entry chained to the SHA-256 of the previous one.

An entry's hash is ``SHA-256(prev_hash ‖ "\\n" ‖ canonical JSON of its content)``; the
first entry's ``prev_hash`` is 64 zeros. The row id is deliberately *not* hashed: order is
carried by the chain itself, so renumbering rows cannot hide a deletion or a reordering.
A one-row head table (last id, last hash) is written in the same transaction as every
entry, so that removing the newest entries is detected too.

:func:`verify_journal` walks the chain and raises :class:`~terminal.errors.JournalError`
naming the first entry that was edited, deleted or reordered.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from terminal.errors import JournalError

__all__ = ["GENESIS_HASH", "JournalEntry", "append_entry", "canonical_json", "verify_journal"]

GENESIS_HASH = "0" * 64
_CONTENT_COLUMNS = (
    "at", "actor", "entity", "entity_id", "action", "from_state", "to_state", "data",
)


def canonical_json(value: object) -> str:
    """The one serialisation that is hashed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _entry_hash(prev_hash: str, content: dict[str, Any]) -> str:
    material = prev_hash + "\n" + canonical_json(content)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    hash: str


def append_entry(
    conn: sqlite3.Connection,
    *,
    actor: str,
    entity: str,
    entity_id: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    data: dict[str, Any],
    at: datetime | None = None,
) -> JournalEntry:
    """Append one entry; the caller holds the write transaction (``Store.transaction``)."""
    head = conn.execute("SELECT last_id, last_hash FROM audit_journal_head").fetchone()
    last_id, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
    content = {
        "at": (at or datetime.now(UTC)).isoformat(timespec="microseconds"),
        "actor": actor,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "data": canonical_json(data),
    }
    entry_hash = _entry_hash(prev_hash, content)
    entry_id = last_id + 1
    conn.execute(
        "INSERT INTO audit_journal (id, at, actor, entity, entity_id, action, from_state,"
        " to_state, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (entry_id, *(content[c] for c in _CONTENT_COLUMNS), prev_hash, entry_hash),
    )
    conn.execute(
        "INSERT INTO audit_journal_head (singleton, last_id, last_hash) VALUES (1, ?, ?)"
        " ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id,"
        " last_hash = excluded.last_hash",
        (entry_id, entry_hash),
    )
    return JournalEntry(entry_id, entry_hash)


def verify_journal(conn: sqlite3.Connection) -> int:
    """Check the whole chain; return the number of entries, or raise ``JournalError``.

    ``JournalError.fields`` holds ``entry_id`` (the first bad entry) and ``damage``
    (``edited``, ``deleted`` or ``reordered``).
    """
    running = GENESIS_HASH
    expected_id = 1
    count = 0
    cursor = conn.execute(
        "SELECT id, prev_hash, hash, " + ", ".join(_CONTENT_COLUMNS)
        + " FROM audit_journal ORDER BY id"
    )
    for row in cursor:
        entry_id, prev_hash, stored_hash = row[0], row[1], row[2]
        content = dict(zip(_CONTENT_COLUMNS, row[3:], strict=True))
        if entry_id != expected_id:
            _broken(expected_id, "deleted", f"entry {expected_id} is missing (deleted)")
        if _entry_hash(prev_hash, content) != stored_hash:
            _broken(entry_id, "edited", f"entry {entry_id} was edited: its hash does not match")
        if prev_hash != running:
            # Is the entry that should come here somewhere else in the table?
            elsewhere = conn.execute(
                "SELECT id FROM audit_journal WHERE prev_hash = ? AND id != ?",
                (running, entry_id),
            ).fetchone()
            if elsewhere is not None:
                _broken(
                    entry_id,
                    "reordered",
                    f"entry {entry_id} is out of order: entry {elsewhere[0]} belongs here",
                )
            _broken(
                entry_id,
                "deleted",
                f"an entry before entry {entry_id} was deleted: the chain breaks there",
            )
        running = stored_hash
        expected_id += 1
        count += 1
    head = conn.execute("SELECT last_id, last_hash FROM audit_journal_head").fetchone()
    if head is not None and (head[0], head[1]) != (count, running):
        if head[0] > count:
            _broken(
                count + 1,
                "deleted",
                f"entries {count + 1} to {head[0]} were deleted from the end of the journal",
            )
        _broken(count, "edited", f"the journal head does not match entry {count}, the last one")
    if head is None and count:
        _broken(count, "edited", f"the journal head is missing: entry {count}, the last one, "
                "cannot be vouched for")
    return count


def _broken(entry_id: int, damage: str, message: str) -> None:
    raise JournalError(f"audit journal broken: {message}", entry_id=entry_id, damage=damage)
