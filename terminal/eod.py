"""End of day: the terminal's own totals for one business day, reported to the platform.

The platform reconciles each terminal's report against the transactions it ingested
(:mod:`edge_sync.platform.reconcile`), so both sides count the same way (the wire contract,
``edge_sync/PROTOCOL.md``): a payment counts when its state is one of
:data:`COUNTED_STATES`, with its amount; an approved refund counts with its amount negated
(a void does not: the voided payment itself no longer counts);
the business day is the UTC date of ``created_at`` (the platform's default when a record
names none). The report is written like every other change: one ``Store.record`` — the
journal entry and the ``eod_totals`` outbox row together.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from edge_sync.json_types import JsonValue
from terminal.store import OutboxMessage, StateChange, Store

__all__ = ["COUNTED_STATES", "CurrencyTotal", "end_of_day_totals", "report_end_of_day"]

#: Payment states in which the money moved (DESIGN §6); the platform counts the same ones.
COUNTED_STATES = ("completed", "pop_deferred", "needs_reconciliation")


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    count: int
    amount_minor: int

    def as_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "count": self.count, "amount_minor": self.amount_minor}


def end_of_day_totals(store: Store, business_date: dt.date) -> list[CurrencyTotal]:
    """Counted payments minus approved refunds of ``business_date``, per currency."""
    day = business_date.isoformat()
    marks = ", ".join("?" for _ in COUNTED_STATES)
    rows = store.connection.execute(
        f"""
        SELECT currency, sum(n), sum(amount) FROM (
            SELECT currency, 1 AS n, amount_minor AS amount FROM payments
             WHERE status IN ({marks}) AND substr(created_at, 1, 10) = ?
            UNION ALL
            SELECT currency, 1, -amount_minor FROM refunds
             WHERE kind = 'refund' AND status = 'approved' AND substr(created_at, 1, 10) = ?
        ) GROUP BY currency ORDER BY currency
        """,  # noqa: S608 - only placeholders are interpolated
        (*COUNTED_STATES, day, day),
    ).fetchall()
    return [CurrencyTotal(currency, int(count), int(amount)) for currency, count, amount in rows]


def report_end_of_day(
    store: Store, terminal_id: str, business_date: dt.date
) -> list[CurrencyTotal]:
    """Compute the day's totals and queue them for the platform (journalled)."""
    totals = end_of_day_totals(store, business_date)
    day = business_date.isoformat()
    payload: dict[str, JsonValue] = {"business_date": day,
                                     "totals": [t.as_json() for t in totals]}
    store.record(
        StateChange(
            "terminal",
            terminal_id,
            None,
            action="eod_totals",
            outbox=[OutboxMessage("platform", "eod_totals", payload, f"eod:{terminal_id}:{day}")],
        )
    )
    return totals
