"""The terminals' signed journal checkpoints as the platform keeps them, and their gaps.

Every verified checkpoint is a row of ``platform_journal_checkpoint_chain`` (migration
0007). Whether a new one links to its stored neighbours (:mod:`..checkpoint_chain`) is
decided *inside* the transaction that stores it, under a per-terminal lock held until the
commit: two platform workers on the shared subscription each receiving one of two
conflicting checkpoints of a terminal would otherwise both check against the rows as they
stood before either commit, and both store theirs. Under the lock the second sees the
first and is refused. SQLite needs no extra lock (a write transaction there begins
IMMEDIATE, holding the file's write lock from its start); PostgreSQL takes a transaction
advisory lock per terminal (:meth:`PostgresStorage._lock_checkpoints
<edge_sync.platform.storage.postgres.PostgresStorage._lock_checkpoints>`).

A stored checkpoint whose predecessor has not arrived is a *gap*, kept as a row of
``platform_journal_checkpoint_gaps`` (migration 0010) from the commit that opens it to the
one that fills it: :meth:`CheckpointRows.checkpoint_gaps` lists them for the operators'
views without reading every checkpoint ever received.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from edge_sync.platform.checkpoint_chain import link_problem
from edge_sync.platform.records import CheckpointGap, StoredCheckpoint

__all__ = ["CheckpointRows"]

_TABLE = "platform_journal_checkpoint_chain"
_COLUMNS = "entry_id, entry_hash, prev_entry_id, prev_entry_hash, signed_at, message_id"

_GAP_TABLE = "platform_journal_checkpoint_gaps"
# Each open gap (migration 0010) with the nearest stored checkpoint below the missing one
# (where the unchecked stretch starts) and when the checkpoint naming it came. Only
# constants are formatted in; the terminal id is a parameter.
_GAPS = f"""SELECT g.terminal_id, g.entry_id, g.prev_entry_id, c.signed_at, m.received_at,
        (SELECT MAX(b.entry_id) FROM {_TABLE} b
         WHERE b.terminal_id = g.terminal_id AND b.entry_id < g.prev_entry_id)
    FROM {_GAP_TABLE} g
    JOIN {_TABLE} c ON c.terminal_id = g.terminal_id AND c.entry_id = g.entry_id
    LEFT JOIN platform_messages m
        ON m.terminal_id = c.terminal_id AND m.message_id = c.message_id
    WHERE (? = 1 OR g.terminal_id = ?)
    ORDER BY g.terminal_id, g.entry_id"""  # noqa: S608


def _checkpoint(row: Sequence[Any] | None) -> StoredCheckpoint | None:
    if row is None:
        return None
    return StoredCheckpoint(int(row[0]), str(row[1]), None if row[2] is None else int(row[2]),
                            None if row[3] is None else str(row[3]), str(row[4]), str(row[5]))


class CheckpointRows:
    """Checkpoint rows: link-checked and stored in the caller's transaction, read back,
    and their gaps; the plumbing is declared here, provided by
    :class:`~edge_sync.platform.storage.sql.SqlStorage`."""

    if TYPE_CHECKING:
        def _transaction(self, *, write: bool = True) -> AbstractContextManager[Any]: ...

        def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any: ...

    def _lock_checkpoints(self, conn: Any, terminal_id: str) -> None:
        """Hold off every other transaction checking ``terminal_id``'s checkpoints until
        this one ends (nothing to do where write transactions are serialised already)."""

    def _checkpoints_around(
        self, conn: Any, terminal_id: str, entry_id: int
    ) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None, StoredCheckpoint | None]:
        below, same, above = (
            self._run(conn, f"SELECT {_COLUMNS} FROM {_TABLE} WHERE terminal_id = ? "  # noqa: S608
                      f"AND entry_id {where} ORDER BY entry_id {order} LIMIT 1",
                      (terminal_id, entry_id)).fetchone()
            for where, order in (("< ?", "DESC"), ("= ?", "ASC"), ("> ?", "ASC"))
        )
        return _checkpoint(below), _checkpoint(same), _checkpoint(above)

    def journal_checkpoints_around(
        self, terminal_id: str, entry_id: int
    ) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None, StoredCheckpoint | None]:
        with self._transaction(write=False) as conn:
            return self._checkpoints_around(conn, terminal_id, entry_id)

    def _checkpoint_problem(self, conn: Any, terminal_id: str,
                            checkpoint: StoredCheckpoint) -> str | None:
        """Why ``checkpoint`` does not link to the rows stored now (the caller holds the
        terminal's lock, :meth:`_lock_checkpoints`), or ``None``."""
        return link_problem(checkpoint,
                            *self._checkpoints_around(conn, terminal_id, checkpoint.entry_id))

    def _store_checkpoint(self, conn: Any, terminal_id: str,
                          checkpoint: StoredCheckpoint) -> None:
        # No conflict is possible here: the link check under the lock refused another
        # checkpoint of this entry, and the same message again is a duplicate message.
        self._run(
            conn,
            f"INSERT INTO {_TABLE} (terminal_id, {_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (terminal_id, checkpoint.entry_id, checkpoint.entry_hash,
             checkpoint.prev_entry_id, checkpoint.prev_entry_hash, checkpoint.signed_at,
             checkpoint.message_id),
        )
        # The gaps it fills close; the one it opens (its predecessor not here) is kept.
        self._run(conn, f"DELETE FROM {_GAP_TABLE} WHERE terminal_id = ? "  # noqa: S608
                  "AND prev_entry_id = ?", (terminal_id, checkpoint.entry_id))
        prev = checkpoint.prev_entry_id
        if prev is not None and prev > 0 and self._run(
            conn, f"SELECT 1 FROM {_TABLE} WHERE terminal_id = ? AND entry_id = ?",  # noqa: S608
            (terminal_id, prev),
        ).fetchone() is None:
            self._run(conn, f"INSERT INTO {_GAP_TABLE} (terminal_id, entry_id, "  # noqa: S608
                      "prev_entry_id) VALUES (?, ?, ?)", (terminal_id, checkpoint.entry_id, prev))

    def checkpoint_gaps(self, terminal_id: str | None = None) -> list[CheckpointGap]:
        with self._transaction(write=False) as conn:
            return self._gaps(conn, terminal_id)

    def _gaps(self, conn: Any, terminal_id: str | None) -> list[CheckpointGap]:
        rows = self._run(conn, _GAPS, (int(terminal_id is None), terminal_id or "")).fetchall()
        return [
            CheckpointGap(
                terminal_id=str(r[0]),
                first_entry=1 if r[5] is None else int(r[5]) + 1,
                last_entry=int(r[2]),
                checkpoint_entry=int(r[1]),
                # The message is always stored with its checkpoint; the signing time is
                # the fallback should it ever have been pruned.
                since=str(r[4] if r[4] is not None else r[3]),
            )
            for r in rows
        ]
