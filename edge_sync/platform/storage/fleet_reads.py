"""Reads of the fleet views: terminals and their counters, messages, totals, refusals.

Mixed into :class:`~edge_sync.platform.storage.sql.SqlStorage` (which provides the
connection plumbing); each read is one short read transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from edge_sync.platform.records import CheckpointGap, Rejection, TerminalSummary, Total
from edge_sync.platform.storage.transaction_reads import TRANSACTION_COLUMNS, transaction_row

__all__ = ["FleetReads"]

# The counters are kept up to date by each commit: a fleet of thousands of terminals with
# millions of messages is listed without counting them again.
_TERMINALS = """SELECT t.terminal_id, t.registered_at, t.last_seen_at, t.backlog,
        t.backlog_reported_at, t.messages, t.rejected, t.unbooked
    FROM platform_terminals t"""



class FleetReads:
    """The fleet API's and the CLI's reads; the plumbing is declared here, provided by
    :class:`~edge_sync.platform.storage.sql.SqlStorage`."""

    if TYPE_CHECKING:
        def _transaction(self, *, write: bool = True) -> AbstractContextManager[Any]: ...

        def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any: ...

        def _gaps(self, conn: Any, terminal_id: str | None) -> list[CheckpointGap]: ...

    def _summaries(self, terminal_id: str | None = None) -> list[TerminalSummary]:
        where, params = ("", ()) if terminal_id is None else ("WHERE t.terminal_id = ?",
                                                              (terminal_id,))
        with self._transaction(write=False) as conn:
            rows = self._run(conn, f"{_TERMINALS} {where} ORDER BY t.terminal_id", params)
            summaries = [
                TerminalSummary(
                    terminal_id=row[0],
                    registered_at=row[1],
                    last_seen_at=row[2],
                    backlog=json.loads(row[3]) if row[3] else None,
                    backlog_reported_at=row[4],
                    messages=int(row[5]),
                    rejected=int(row[6]),
                    unbooked=int(row[7]),
                )
                for row in rows.fetchall()
            ]
            keys = self._run(
                conn,
                "SELECT terminal_id, key_version FROM platform_terminal_keys "
                "ORDER BY terminal_id, key_version",
            ).fetchall()
            gaps = self._gaps(conn, terminal_id)
        by_id = {summary.terminal_id: summary for summary in summaries}
        for owner, key_version in keys:
            if owner in by_id:
                by_id[owner].key_versions.append(int(key_version))
        for gap in gaps:
            if gap.terminal_id in by_id:
                by_id[gap.terminal_id].checkpoint_gaps.append(gap)
        return summaries

    def terminals(self) -> list[TerminalSummary]:
        return self._summaries()

    def terminal(self, terminal_id: str) -> TerminalSummary | None:
        found = self._summaries(terminal_id)
        return found[0] if found else None

    def message_count(self, terminal_id: str | None = None) -> int:
        with self._transaction(write=False) as conn:
            if terminal_id is None:
                row = self._run(conn, "SELECT COUNT(*) FROM platform_messages").fetchone()
            else:
                row = self._run(
                    conn,
                    "SELECT COUNT(*) FROM platform_messages WHERE terminal_id = ?",
                    (terminal_id,),
                ).fetchone()
        return int(row[0])

    def kind_counts(self, terminal_id: str) -> dict[str, int]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT kind, COUNT(*) FROM platform_messages WHERE terminal_id = ? "
                "GROUP BY kind ORDER BY kind",
                (terminal_id,),
            ).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def transactions(self, terminal_id: str | None, limit: int = 100,
                     business_date: str | None = None) -> list[dict[str, Any]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                f"SELECT {TRANSACTION_COLUMNS} FROM platform_transactions "  # noqa: S608
                "WHERE (? = 1 OR terminal_id = ?) AND (? = 1 OR business_date = ?) "
                "ORDER BY seq DESC LIMIT ?",
                (int(terminal_id is None), terminal_id or "", int(business_date is None),
                 business_date or "", limit),
            ).fetchall()
        return [transaction_row(r) for r in rows]

    def transaction_totals(
        self, business_date: str | None = None, terminal_id: str | None = None
    ) -> list[Total]:
        clauses, params = ["counted = 1"], []
        if business_date is not None:
            clauses.append("business_date = ?")
            params.append(business_date)
        if terminal_id is not None:
            clauses.append("terminal_id = ?")
            params.append(terminal_id)
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                # The clauses are constants of this method; only the values are parameters.
                "SELECT terminal_id, business_date, currency, COUNT(*), SUM(amount_minor) "  # noqa: S608
                f"FROM platform_transactions WHERE {' AND '.join(clauses)} "
                "GROUP BY terminal_id, business_date, currency "
                "ORDER BY terminal_id, business_date, currency",
                params,
            ).fetchall()
        return [Total(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def reported_totals(self, business_date: str) -> list[Total]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT terminal_id, business_date, currency, count, amount_minor "
                "FROM platform_eod_totals WHERE business_date = ? AND currency <> '' "
                "ORDER BY terminal_id, currency",
                (business_date,),
            ).fetchall()
        return [Total(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def eod_reporters(self, business_date: str) -> set[str]:
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT DISTINCT terminal_id FROM platform_eod_totals WHERE business_date = ?",
                (business_date,),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def rejections(self, terminal_id: str | None = None, limit: int = 100) -> list[Rejection]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        select = "SELECT terminal_id, message_id, reason, received_at FROM platform_rejections"
        # Two statements rather than "(? IS NULL OR …)", which keeps planners off the index.
        with self._transaction(write=False) as conn:
            if terminal_id is None:
                rows = self._run(
                    conn, f"{select} ORDER BY received_at DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._run(
                    conn,
                    f"{select} WHERE terminal_id = ? ORDER BY received_at DESC LIMIT ?",
                    (terminal_id, limit),
                ).fetchall()
        return [Rejection(r[0], r[1], r[2], r[3]) for r in rows]

    def messages(
        self, terminal_id: str, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._transaction(write=False) as conn:
            rows = self._run(
                conn,
                "SELECT envelope, received_at FROM platform_messages WHERE terminal_id = ? "
                "AND (? = 1 OR kind = ?) ORDER BY seq DESC LIMIT ?",
                (terminal_id, int(kind is None), kind or "", limit),
            ).fetchall()
        return [{"received_at": r[1], "envelope": json.loads(r[0])} for r in rows]
