"""Signed journal checkpoints: the journal head, signed with the terminal's HSM key.

The hash chain of :mod:`terminal.store.journal` detects accidents, but its head lives in
the same database: whoever can write the file can truncate the journal or rewrite it and
recompute every hash. A checkpoint is the head — ``(entry_id, entry_hash)`` — signed with
the terminal's key in the key store, which no file edit can reproduce. Each one is kept in
``journal_checkpoints`` (append-only) and uplinked (kind ``journal_checkpoint``), so the
platform holds them too, out of reach. A checkpoint also names the previous one's entry
and that entry's hash *as the journal has it now* (``prev_entry_id``, ``prev_entry_hash``):
the platform compares them with what it received before, and a journal rewritten or
truncated in between no longer matches.

:func:`verify_checkpoints` (``etika db verify-journal``) checks that the journal still has
each checkpointed entry with that hash; the platform checks the signatures and the links.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from terminal.errors import JournalError
from terminal.store.changes import OutboxMessage, StateChange, record_change
from terminal.store.journal import GENESIS_HASH, canonical_json

if TYPE_CHECKING:
    from edge_sync.signing import Signer
    from terminal.store.db import Store

__all__ = [
    "CHECKPOINT_KIND",
    "Checkpoint",
    "checkpoint_if_due",
    "sign_checkpoint",
    "verify_checkpoints",
]

#: The uplink kind a checkpoint travels as (to the platform).
CHECKPOINT_KIND = "journal_checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """One signed journal head."""

    payload: dict[str, Any]
    signature: str

    @property
    def entry_id(self) -> int:
        return int(self.payload["entry_id"])


def _signed_bytes(payload: dict[str, Any]) -> bytes:
    return canonical_json(payload).encode("utf-8")


def sign_checkpoint(store: Store, signer: Signer, terminal_id: str, reason: str) -> Checkpoint:
    """Sign the current journal head, keep it, and queue it for the platform (one
    transaction). ``reason`` says why (``end_of_day``, ``sync``, ``interval``)."""
    with store.transaction() as conn:
        head = conn.execute("SELECT last_id, last_hash FROM audit_journal_head").fetchone()
        entry_id, entry_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
        previous = conn.execute(
            "SELECT entry_id FROM journal_checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        prev_id = int(previous[0]) if previous else 0
        prev_hash = _hash_of(conn, prev_id)
        payload: dict[str, Any] = {
            "terminal_id": terminal_id,
            "entry_id": entry_id,
            "entry_hash": entry_hash,
            "prev_entry_id": prev_id,
            "prev_entry_hash": prev_hash,
            "signed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "reason": reason,
            "key_version": signer.key_version,
        }
        signature = base64.b64encode(signer.sign(_signed_bytes(payload))).decode("ascii")
        conn.execute(
            "INSERT INTO journal_checkpoints (entry_id, entry_hash, signed_at, reason,"
            " key_version, signature) VALUES (?, ?, ?, ?, ?, ?)",
            (entry_id, entry_hash, payload["signed_at"], reason, signer.key_version, signature),
        )
        record_change(conn, StateChange(
            entity="journal", entity_id=f"checkpoint-{entry_id}", to_state=None,
            action="journal_checkpoint", fields={"entry_id": entry_id, "reason": reason},
            outbox=(OutboxMessage("platform", CHECKPOINT_KIND,
                                  {**payload, "signature": signature},
                                  f"checkpoint:{terminal_id}:{entry_id}:{payload['signed_at']}"),),
        ))
    return Checkpoint(payload, signature)


def checkpoint_if_due(store: Store, signer: Signer, terminal_id: str, interval_s: float,
                      *, now: datetime | None = None) -> Checkpoint | None:
    """Sign an ``interval`` checkpoint when the journal moved since the last checkpoint and
    that one is ``interval_s`` old or more (or there is none); else nothing.

    End of day alone would leave a whole day in which the journal can be cut or rewritten
    unseen; the sync loop calls this at every run and then every minute, so at most
    ``interval_s`` of entries are ever unsigned. ``0`` turns interval checkpoints off (end
    of day still signs). A checkpoint writes its own journal entry, which alone does not
    count as the journal moving (an idle terminal signs nothing more).
    """
    if interval_s <= 0:
        return None
    conn = store.connection
    head = conn.execute("SELECT last_id FROM audit_journal_head").fetchone()
    head_id = int(head[0]) if head else 0
    last = conn.execute(
        "SELECT entry_id, signed_at FROM journal_checkpoints ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is None:
        if head_id == 0:
            return None
    else:
        if head_id <= int(last[0]) + 1:
            return None
        signed_at = datetime.fromisoformat(str(last[1]).replace("Z", "+00:00"))
        if ((now or datetime.now(UTC)) - signed_at).total_seconds() < interval_s:
            return None
    return sign_checkpoint(store, signer, terminal_id, "interval")


def _hash_of(conn: sqlite3.Connection, entry_id: int) -> str | None:
    """The hash the journal holds for ``entry_id`` now (the genesis hash for 0)."""
    if entry_id == 0:
        return GENESIS_HASH
    row = conn.execute("SELECT hash FROM audit_journal WHERE id = ?", (entry_id,)).fetchone()
    return None if row is None else str(row[0])


def verify_checkpoints(conn: sqlite3.Connection) -> int:
    """Check that the journal still holds every checkpointed entry with its signed hash;
    return how many checkpoints, or raise :class:`JournalError`.

    The signatures themselves are checked where a forger cannot reach: by the platform,
    which receives every checkpoint inside an envelope signed with the same key, and links
    each to the one before.
    """
    count = 0
    rows = conn.execute(
        "SELECT entry_id, entry_hash FROM journal_checkpoints ORDER BY id"
    ).fetchall()
    for entry_id, entry_hash in rows:
        held = _hash_of(conn, int(entry_id))
        if held is None:
            raise JournalError(
                f"audit journal truncated: a signed checkpoint covers entry {entry_id}, which "
                "is no longer there", entry_id=int(entry_id), damage="deleted")
        if held != entry_hash:
            raise JournalError(
                f"audit journal rewritten: entry {entry_id} no longer has the hash its signed "
                "checkpoint holds", entry_id=int(entry_id), damage="edited")
        count += 1
    return count
