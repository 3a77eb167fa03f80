"""What ``etika db status`` reports: schema version, rows per table and state, outbox depth."""

from __future__ import annotations

import time
from typing import Any

from terminal.store.db import Store

__all__ = ["STATUS_TABLES", "store_status"]

#: Tables reported, and whether they have a ``status`` column to break counts down by.
STATUS_TABLES: dict[str, str | None] = {
    "payments": "status",
    "payment_attempts": "status",
    "refunds": "status",
    "fraud_checks": "decision",
    "pop_transactions": "status",
    "outbox": "state",
    "audit_journal": None,
}


def store_status(store: Store) -> dict[str, Any]:
    conn = store.connection
    tables: dict[str, Any] = {}
    for table, state_column in STATUS_TABLES.items():
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        entry: dict[str, Any] = {"rows": rows}
        if state_column:
            entry["by_state"] = {
                str(state): n
                for state, n in conn.execute(
                    f"SELECT {state_column}, count(*) FROM {table}"
                    f" GROUP BY {state_column} ORDER BY {state_column}"
                )
            }
        tables[table] = entry
    now = time.time()
    outbox: dict[str, Any] = {}
    for destination, depth, oldest, dead in conn.execute(
        "SELECT destination,"
        " sum(state IN ('pending', 'in_flight')),"
        " min(CASE WHEN state IN ('pending', 'in_flight') THEN created_at END),"
        " sum(state = 'dead')"
        " FROM outbox GROUP BY destination ORDER BY destination"
    ):
        outbox[destination] = {
            "depth": depth or 0,
            "oldest_age_s": round(now - oldest, 3) if oldest is not None else None,
            "dead": dead or 0,
        }
    return {
        "path": str(store.path),
        "schema_version": store.schema_version(),
        "tables": tables,
        "outbox": outbox,
    }
