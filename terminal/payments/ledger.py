"""The payment tables as the manager reads and writes them (seed 000's schema, migration
0001 + 0007): attempts, fraud checks, the PoP sequence, history and exposure queries.

Writes here run inside the caller's write transaction, next to the state change they
belong to (:func:`terminal.store.changes.record_change`), so a payment, its attempts, its
fraud check and its journal entry are one commit. Reads return the TypedDicts of
:mod:`terminal.payments.rows`, with no card data to leak: the store holds none.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from edge_sync.json_types import JsonObject
from terminal.payments.rows import (
    AttemptRow,
    FraudCheckRow,
    JournalEntry,
    PaymentDetail,
    PaymentRow,
    PaymentSummary,
    PopRow,
    RefundRow,
)
from terminal.store import Store

__all__ = [
    "Attempt",
    "CardHistory",
    "OfflineExposure",
    "card_history",
    "insert_attempts",
    "insert_fraud_check",
    "list_payments",
    "merchant_amount_stats",
    "next_pop_sequence",
    "offline_exposure",
    "payment_detail",
    "payment_row",
    "refunded_minor",
]


_Row = TypeVar("_Row")


@dataclass(frozen=True)
class Attempt:
    """One try at a PSP for a payment (seed 000 ``payment_attempts``)."""

    connector: str
    status: str  # approved | declined | unreachable | timeout | unknown | skipped
    error_code: str | None = None
    error_message: str | None = None
    #: What the PSP answered, without card data (code, outcome, references).
    summary: JsonObject | None = None


@dataclass(frozen=True)
class CardHistory:
    count: int
    declines: int


@dataclass(frozen=True)
class OfflineExposure:
    """Offline approvals in one currency whose advice has not reached the acquirer yet."""

    count: int
    total_minor: int
    oldest_age_s: float | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def insert_attempts(conn: sqlite3.Connection, payment_id: uuid.UUID,
                    attempts: Sequence[Attempt]) -> None:
    start = conn.execute("SELECT coalesce(max(attempt_number), 0) FROM payment_attempts "
                         "WHERE payment_id = ?", (str(payment_id),)).fetchone()[0]
    for number, attempt in enumerate(attempts, start=start + 1):
        summary = dict(attempt.summary or {})
        summary.setdefault("connector", attempt.connector)
        conn.execute(
            "INSERT INTO payment_attempts (id, payment_id, attempt_number, status, error_code,"
            " error_message, gateway_response, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (str(uuid.uuid4()), str(payment_id), number, attempt.status, attempt.error_code,
             (attempt.error_message or "")[:500] or None,
             json.dumps(summary, sort_keys=True), _now()),
        )


def insert_fraud_check(conn: sqlite3.Connection, payment_id: uuid.UUID,
                       row: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO fraud_checks (id, payment_id, risk_score, risk_level, checks_performed,"
        " decision, created_at) VALUES (?,?,?,?,?,?,?)",
        (str(uuid.uuid4()), str(payment_id), float(row["risk_score"]), row["risk_level"],
         json.dumps(row["checks_performed"], sort_keys=True), row["decision"], _now()),
    )


def next_pop_sequence(conn: sqlite3.Connection) -> int:
    """The terminal's next PoP record sequence number (only grows, survives restarts)."""
    conn.execute("INSERT INTO pop_sequence (singleton, last) VALUES (1, 0) "
                 "ON CONFLICT (singleton) DO NOTHING")
    conn.execute("UPDATE pop_sequence SET last = last + 1 WHERE singleton = 1")
    value: int = conn.execute("SELECT last FROM pop_sequence WHERE singleton = 1").fetchone()[0]
    return value


def card_history(store: Store, fingerprint: str, since: datetime) -> CardHistory:
    """Payments and declines of one card (by HSM-keyed fingerprint) since ``since``."""
    row = store.connection.execute(
        "SELECT count(*), sum(status IN ('financial_declined', 'offline_declined')) "
        "FROM payments WHERE card_fingerprint = ? AND created_at >= ?",
        (fingerprint, since.isoformat(timespec="microseconds")),
    ).fetchone()
    return CardHistory(int(row[0] or 0), int(row[1] or 0))


def merchant_amount_stats(store: Store, currency: str) -> tuple[int, float | None, float | None]:
    """Count, mean and standard deviation of this merchant's approved amounts."""
    row = store.connection.execute(
        "SELECT count(*), avg(amount_minor), avg(amount_minor * amount_minor) FROM payments "
        "WHERE currency = ? AND status IN ('completed', 'pop_deferred')", (currency,),
    ).fetchone()
    count = int(row[0] or 0)
    if not count:
        return 0, None, None
    mean = float(row[1])
    variance = max(float(row[2]) - mean * mean, 0.0)
    return count, mean, math.sqrt(variance)


def offline_exposure(store: Store, currency: str, now: datetime) -> OfflineExposure:
    """What the terminal carries on its own in ``currency``: offline approvals whose advice
    is still in the outbox."""
    row = store.connection.execute(
        """
        SELECT count(*), coalesce(sum(p.amount_minor), 0), min(p.created_at)
          FROM payments p
         WHERE p.offline = 1 AND p.currency = ?
           AND p.status IN ('completed', 'pop_deferred')
           AND EXISTS (SELECT 1 FROM outbox o WHERE o.ref_id = p.id AND o.kind = 'advice'
                        AND o.state IN ('pending', 'in_flight'))
        """,
        (currency,),
    ).fetchone()
    oldest = None
    if row[2]:
        oldest = (now - datetime.fromisoformat(row[2])).total_seconds()
    return OfflineExposure(int(row[0]), int(row[1]), oldest)


def refunded_minor(store: Store, payment_id: uuid.UUID) -> int:
    """What refunds and voids of the payment took back, or hold while pending."""
    value = store.connection.execute(
        "SELECT coalesce(sum(amount_minor), 0) FROM refunds WHERE payment_id = ? "
        "AND status IN ('approved', 'pending_sync', 'requested')", (str(payment_id),),
    ).fetchone()[0]
    return int(value)


_JSON_COLUMNS = frozenset({"emv", "route_connectors", "psp_reference", "receipt",
                           "gateway_response", "checks_performed"})


def _column(key: str, value: object) -> object:
    if key in _JSON_COLUMNS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            pass  # not JSON: shown as stored
    return value


def _typed(shape: type[_Row], row: sqlite3.Row) -> _Row:
    """The row as ``shape``: exactly its keys (``row[key]`` fails on a column the query
    lacks), JSON columns decoded. The cast is what this function checks: the keys come from
    the TypedDict and the value types from the schema it mirrors (:mod:`terminal.payments.rows`;
    a test pins the two together)."""
    return cast(_Row, {key: _column(key, row[key]) for key in shape.__annotations__})


def payment_row(store: Store, payment_id: str) -> PaymentRow | None:
    row = store.connection.execute("SELECT * FROM payments WHERE id = ?", (payment_id,))
    found = row.fetchone()
    return None if found is None else _typed(PaymentRow, found)


def list_payments(store: Store, *, state: str | None = None, last4: str | None = None,
                  since: str | None = None, until: str | None = None,
                  min_minor: int | None = None, max_minor: int | None = None,
                  limit: int = 100) -> list[PaymentSummary]:
    """Payments newest first, filtered as the history screen and ``etika tx list`` ask."""
    where: list[str] = []
    args: list[str | int] = []
    if state:
        where.append("status = ?")
        args.append(state)
    if last4:
        where.append("pan_masked LIKE ?")
        args.append(f"%{last4}")
    if since:
        where.append("created_at >= ?")
        args.append(since)
    if until:
        where.append("created_at < ?")
        args.append(until)
    if min_minor is not None:
        where.append("amount_minor >= ?")
        args.append(min_minor)
    if max_minor is not None:
        where.append("amount_minor <= ?")
        args.append(max_minor)
    sql = ("SELECT id, created_at, status, amount_minor, currency, pan_masked, network, "
           "offline, reason FROM payments")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id LIMIT ?"
    args.append(limit)
    return [_typed(PaymentSummary, r) for r in store.connection.execute(sql, args)]


def payment_detail(store: Store, payment_id: str) -> PaymentDetail | None:
    """A payment with its attempts, fraud check, PoP record, refunds and journal entries."""
    payment = payment_row(store, payment_id)
    if payment is None:
        return None
    conn = store.connection

    def rows(shape: type[_Row], sql: str) -> list[_Row]:
        return [_typed(shape, r) for r in conn.execute(sql, (payment_id,))]

    attempts = rows(AttemptRow, "SELECT attempt_number, status, error_code, error_message, "
                    "gateway_response, created_at FROM payment_attempts "
                    "WHERE payment_id = ? ORDER BY attempt_number")
    fraud = rows(FraudCheckRow, "SELECT risk_score, risk_level, decision, checks_performed, "
                 "created_at FROM fraud_checks WHERE payment_id = ? ORDER BY created_at")
    pop = rows(PopRow, "SELECT id, status, pop_reference, sequence, reason, updated_at "
               "FROM pop_transactions WHERE payment_id = ?")
    refunds = rows(RefundRow, "SELECT id, kind, amount_minor, currency, status, reason, "
                   "pop_record_id, created_at FROM refunds WHERE payment_id = ? "
                   "ORDER BY created_at")
    ids = [payment_id, *(r["id"] for r in refunds)]
    if pop:
        ids.append(pop[0]["id"])
    marks = ",".join("?" for _ in ids)
    journal: list[JournalEntry] = [
        {"id": r[0], "at": r[1], "entity": r[2], "action": r[3], "from": r[4], "to": r[5]}
        for r in conn.execute(
            f"SELECT id, at, entity, action, from_state, to_state FROM audit_journal "  # noqa: S608
            f"WHERE entity_id IN ({marks}) ORDER BY id", ids)
    ]
    return PaymentDetail(**payment, attempts=attempts, fraud_check=fraud[-1] if fraud else None,
                         pop=pop[0] if pop else None, refunds=refunds, journal=journal)
