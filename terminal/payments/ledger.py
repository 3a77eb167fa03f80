"""The payment tables as the manager reads and writes them (seed 000's schema, migration
0001 + 0007): attempts, fraud checks, the PoP sequence, history and exposure queries.

Writes here run inside the caller's write transaction, next to the state change they
belong to (:func:`terminal.store.changes.record_change`), so a payment, its attempts, its
fraud check and its journal entry are one commit. Reads return plain dicts, with no card
data to leak: the store holds none.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True)
class Attempt:
    """One try at a PSP for a payment (seed 000 ``payment_attempts``)."""

    connector: str
    status: str  # approved | declined | unreachable | timeout | unknown | skipped
    error_code: str | None = None
    error_message: str | None = None
    #: What the PSP answered, without card data (code, outcome, references).
    summary: Mapping[str, Any] | None = None


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


def _dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    data = {key: row[key] for key in row.keys()}
    data.pop("vault_blob", None)  # sealed card data: never shown, never exported
    for key in ("emv", "route_connectors", "psp_reference", "receipt", "gateway_response",
                "checks_performed"):
        if isinstance(data.get(key), str):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    return data


def payment_row(store: Store, payment_id: str) -> dict[str, Any] | None:
    row = store.connection.execute("SELECT * FROM payments WHERE id = ?", (payment_id,))
    return _dict(row.fetchone())


def list_payments(store: Store, *, state: str | None = None, last4: str | None = None,
                  since: str | None = None, until: str | None = None,
                  min_minor: int | None = None, max_minor: int | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """Payments newest first, filtered as the history screen and ``etika tx list`` ask."""
    where: list[str] = []
    args: list[Any] = []
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
    return [d for r in store.connection.execute(sql, args) if (d := _dict(r)) is not None]


def payment_detail(store: Store, payment_id: str) -> dict[str, Any] | None:
    """A payment with its attempts, fraud check, PoP record, refunds and journal entries."""
    payment = payment_row(store, payment_id)
    if payment is None:
        return None
    conn = store.connection

    def rows(sql: str) -> list[dict[str, Any]]:
        return [d for r in conn.execute(sql, (payment_id,)) if (d := _dict(r)) is not None]

    payment["attempts"] = rows("SELECT attempt_number, status, error_code, error_message, "
                               "gateway_response, created_at FROM payment_attempts "
                               "WHERE payment_id = ? ORDER BY attempt_number")
    fraud = rows("SELECT risk_score, risk_level, decision, checks_performed, created_at "
                 "FROM fraud_checks WHERE payment_id = ? ORDER BY created_at")
    payment["fraud_check"] = fraud[-1] if fraud else None
    pop = rows("SELECT id, status, pop_reference, sequence, reason, updated_at "
               "FROM pop_transactions WHERE payment_id = ?")
    payment["pop"] = pop[0] if pop else None
    payment["refunds"] = rows("SELECT id, kind, amount_minor, currency, status, reason, "
                              "pop_record_id, created_at FROM refunds WHERE payment_id = ? "
                              "ORDER BY created_at")
    ids = [payment_id, *(r["id"] for r in payment["refunds"])]
    if payment["pop"]:
        ids.append(payment["pop"]["id"])
    marks = ",".join("?" for _ in ids)
    payment["journal"] = [
        {"id": r[0], "at": r[1], "entity": r[2], "action": r[3], "from": r[4], "to": r[5]}
        for r in conn.execute(
            f"SELECT id, at, entity, action, from_state, to_state FROM audit_journal "  # noqa: S608
            f"WHERE entity_id IN ({marks}) ORDER BY id", ids)
    ]
    return payment
