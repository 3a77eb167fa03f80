"""Reads of the mirrored transactions that reconciliation needs, uncapped and by key.

Reconciliation must see every sale of a day however large the fleet, so these reads take
no limit: :meth:`TransactionReads.day_transactions` pages through the day by the primary
key (keyset pagination: each page is one short read, the lock is never held while the
caller works), and the lookups answer for the keys asked about, in chunks that keep each
``IN (…)`` list small. The lookup columns (``psp_advice_key``, ``pop_record_id``,
``refers_to``, migration 0008) are written at ingestion by :func:`lookup_columns`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from edge_sync.transaction_keys import psp_keys

__all__ = ["TRANSACTION_COLUMNS", "TransactionReads", "lookup_columns", "transaction_row"]

#: The columns of a mirrored transaction as :func:`transaction_row` reads them.
TRANSACTION_COLUMNS = ("terminal_id, transaction_id, business_date, currency, amount_minor, "
                       "state, counted, seq, details")
#: Ids per ``IN (…)`` list: well under SQLite's and psycopg's parameter limits.
_CHUNK = 500


def transaction_row(r: Sequence[Any]) -> dict[str, Any]:
    """One row of :data:`TRANSACTION_COLUMNS` as the platform hands it out."""
    return {"terminal_id": r[0], "transaction_id": r[1], "business_date": r[2],
            "currency": r[3], "amount_minor": int(r[4]), "state": r[5],
            "counted": bool(r[6]), "seq": int(r[7]),
            "details": json.loads(r[8]) if r[8] else None}


def lookup_columns(transaction_id: str, details: dict[str, Any] | None
                   ) -> tuple[str, str | None, str | None]:
    """``(psp_advice_key, pop_record_id, refers_to)`` of a transaction; the advice key is
    ``''`` for an id that has none (not a UUID)."""
    keys = psp_keys(transaction_id)
    details = details or {}
    pop_record_id, refers_to = details.get("pop_record_id"), details.get("refers_to")
    return (keys[1] if len(keys) > 1 else "",
            None if pop_record_id is None else str(pop_record_id),
            None if refers_to is None else str(refers_to))


class TransactionReads:
    """Mixed into :class:`~edge_sync.platform.storage.sql.SqlStorage`, which provides the
    connection plumbing declared here."""

    if TYPE_CHECKING:
        def _transaction(self, *, write: bool = True) -> AbstractContextManager[Any]: ...

        def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any: ...

    def day_transactions(self, business_date: str, terminal_id: str | None = None, *,
                         page_size: int = 1000) -> Iterator[dict[str, Any]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        after = ("", "")
        while True:
            with self._transaction(write=False) as conn:
                rows = self._run(
                    conn,
                    f"SELECT {TRANSACTION_COLUMNS} FROM platform_transactions "  # noqa: S608
                    "WHERE business_date = ? AND (? = 1 OR terminal_id = ?) "
                    "AND (terminal_id > ? OR (terminal_id = ? AND transaction_id > ?)) "
                    "ORDER BY terminal_id, transaction_id LIMIT ?",
                    (business_date, int(terminal_id is None), terminal_id or "",
                     after[0], after[0], after[1], page_size),
                ).fetchall()
            yield from (transaction_row(r) for r in rows)
            if len(rows) < page_size:
                return
            after = (str(rows[-1][0]), str(rows[-1][1]))

    def transactions_by_psp_key(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        return self._lookup("transaction_id IN ({marks}) OR psp_advice_key IN ({marks})",
                            keys, twice=True)

    def transactions_by_pop_record(self, record_ids: Iterable[str]) -> list[dict[str, Any]]:
        return self._lookup("pop_record_id IN ({marks})", record_ids)

    def refunds_of(self, sale_ids: Iterable[str]) -> list[dict[str, Any]]:
        return self._lookup("refers_to IN ({marks})", sale_ids)

    def _lookup(self, where: str, values: Iterable[str], *, twice: bool = False
                ) -> list[dict[str, Any]]:
        wanted = sorted({str(v) for v in values})
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            with self._transaction(write=False) as conn:
                rows = self._run(
                    conn,
                    # ``where`` is a constant of this class; only the values are parameters.
                    f"SELECT {TRANSACTION_COLUMNS} FROM platform_transactions "  # noqa: S608
                    f"WHERE {where.format(marks=marks)} ORDER BY terminal_id, transaction_id",
                    chunk * 2 if twice else chunk,
                ).fetchall()
            for r in rows:
                found[(str(r[0]), str(r[1]))] = transaction_row(r)
        return [found[key] for key in sorted(found)]

    def _fill_lookup_columns(self, page_size: int = 1000) -> int:
        """Fill the lookup columns of rows mirrored before migration 0008; how many."""
        filled = 0
        while True:
            with self._transaction() as conn:
                rows = self._run(
                    conn,
                    "SELECT terminal_id, transaction_id, details FROM platform_transactions "
                    "WHERE psp_advice_key IS NULL LIMIT ?",
                    (page_size,),
                ).fetchall()
                for terminal_id, transaction_id, details in rows:
                    self._run(
                        conn,
                        "UPDATE platform_transactions SET psp_advice_key = ?, "
                        "pop_record_id = ?, refers_to = ? "
                        "WHERE terminal_id = ? AND transaction_id = ?",
                        (*lookup_columns(str(transaction_id),
                                         json.loads(details) if details else None),
                         terminal_id, transaction_id),
                    )
            filled += len(rows)
            if len(rows) < page_size:
                return filled
