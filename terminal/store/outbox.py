"""The store's outbox table as the :class:`edge_sync.outbox.Outbox` the sync worker drains.

Rows are written by :meth:`Store.record` (a state change and its messages, atomically); this
module only moves them through ``pending → in_flight → delivered | dead`` and back to
``pending`` for a retry. Every method is one ``BEGIN IMMEDIATE`` transaction, so a crash
between two calls leaves each row in a state :meth:`SqliteOutbox.recover` understands.
The claim/ordering/dependency rules are the ones documented in :mod:`edge_sync.outbox`.

Dead-lettering writes, in the same transaction, an ``outbox``-entity event through
:func:`record_change`: its journal entry and the ``alert`` row for the platform.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from edge_sync.json_types import JsonObject
from edge_sync.outbox import (
    ALERT_DESTINATION,
    ALERT_KIND,
    ALERT_PRIORITY,
    FINANCIAL_PREFIX,
    SILENT_KINDS,
    DestinationStatus,
    OutboxRow,
    alert_payload,
)
from terminal.store.changes import OutboxMessage, StateChange, record_change
from terminal.store.db import Store

__all__ = ["SqliteOutbox"]

_CLAIM_SQL = (
    "SELECT id, message_id, destination, kind, idempotency_key, payload, priority, attempts,"
    " created_at, expires_at, ref_id, next_attempt_at"
    " FROM outbox WHERE destination = ? AND state = 'pending' ORDER BY priority, id"
)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteOutbox:
    """Implements :class:`edge_sync.outbox.Outbox` over ``store``'s ``outbox`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def recover(self, now: float) -> int:
        with self._store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = min(next_attempt_at, ?)"
                " WHERE state = 'in_flight'",
                (now,),
            )
            return cur.rowcount

    def destinations(self) -> list[str]:
        rows = self._store.connection.execute(
            "SELECT DISTINCT destination FROM outbox WHERE state IN ('pending', 'in_flight')"
            " ORDER BY destination"
        ).fetchall()
        return [str(r[0]) for r in rows]

    @staticmethod
    def _blocked(conn: sqlite3.Connection, row_id: int, kind: str, ref_id: str | None) -> bool:
        if kind != "pop_record" or ref_id is None:
            return False
        found = conn.execute(
            "SELECT 1 FROM outbox WHERE ref_id = ? AND id < ? AND destination LIKE ?"
            " AND state IN ('pending', 'in_flight') LIMIT 1",
            (ref_id, row_id, FINANCIAL_PREFIX + "%"),
        ).fetchone()
        return found is not None

    def claim(self, destination: str, limit: int, now: float) -> list[OutboxRow]:
        if limit < 1:
            return []
        claimed: list[OutboxRow] = []
        with self._store.transaction() as conn:
            cursor = conn.execute(
                _CLAIM_SQL,
                (destination,),
            )
            for r in cursor:
                if r["next_attempt_at"] > now or self._blocked(
                    conn, r["id"], r["kind"], r["ref_id"]
                ):
                    break
                claimed.append(
                    OutboxRow(
                        id=r["id"],
                        message_id=r["message_id"],
                        destination=r["destination"],
                        kind=r["kind"],
                        idempotency_key=r["idempotency_key"],
                        payload=json.loads(r["payload"]),
                        priority=r["priority"],
                        attempts=r["attempts"] + 1,
                        created_at=r["created_at"],
                        expires_at=r["expires_at"],
                        ref_id=r["ref_id"],
                    )
                )
                if len(claimed) >= limit:
                    break
            cursor.close()
            # f-strings below only splice "?,?,…" placeholders, never values.
            for chunk in _chunks([row.id for row in claimed]):
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    "UPDATE outbox SET state = 'in_flight', attempts = attempts + 1"
                    f" WHERE id IN ({marks})",
                    tuple(chunk),
                )
        return claimed

    def mark_delivered(
        self, message_ids: Sequence[str], now: float, destination: str | None = None
    ) -> int:
        count = 0
        # Two statements rather than "(? IS NULL OR destination = ?)": the hot path (every
        # batch) keeps its plan.
        where = "" if destination is None else " AND destination = ?"
        tail = () if destination is None else (destination,)
        with self._store.transaction() as conn:
            for chunk in _chunks(message_ids):
                marks = ",".join("?" * len(chunk))
                count += conn.execute(
                    "UPDATE outbox SET state = 'delivered', delivered_at = ?,"
                    f" last_error = NULL WHERE message_id IN ({marks})"
                    f" AND state IN ('pending', 'in_flight'){where}",
                    (now, *chunk, *tail),
                ).rowcount
        return count

    def retry_later(self, retries: Sequence[tuple[str, float]], error: str) -> int:
        count = 0
        with self._store.transaction() as conn:
            for message_id, at in retries:
                count += conn.execute(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ?"
                    " WHERE message_id = ? AND state IN ('pending', 'in_flight')",
                    (at, error[:500], message_id),
                ).rowcount
        return count

    def _dead_letter(
        self, conn: sqlite3.Connection, message_ids: Sequence[str], reason: str, now: float
    ) -> int:
        count = 0
        for message_id in message_ids:
            row = conn.execute(
                "SELECT id, destination, kind, ref_id, attempts FROM outbox"
                " WHERE message_id = ? AND state IN ('pending', 'in_flight')",
                (message_id,),
            ).fetchone()
            if row is None:
                continue
            conn.execute(
                "UPDATE outbox SET state = 'dead', dead_at = ?, last_error = ? WHERE id = ?",
                (now, reason[:500], row["id"]),
            )
            count += 1
            # No alert for SILENT_KINDS (see edge_sync.outbox); the journal still records it.
            alerts: tuple[OutboxMessage, ...] = ()
            if row["kind"] not in SILENT_KINDS:
                alerts = (
                    OutboxMessage(
                        destination=ALERT_DESTINATION,
                        kind=ALERT_KIND,
                        payload=alert_payload(
                            "dead_letter",
                            message_id=message_id,
                            destination=row["destination"],
                            kind=row["kind"],
                            ref_id=row["ref_id"],
                            attempts=row["attempts"],
                            reason=reason[:500],
                        ),
                        idempotency_key=f"dead:{message_id}",
                        priority=ALERT_PRIORITY,
                    ),
                )
            record_change(
                conn,
                StateChange(
                    entity="outbox",
                    entity_id=message_id,
                    to_state=None,
                    action="dead_letter",
                    reason=reason[:500],
                    outbox=alerts,
                    actor="edge_sync",
                ),
            )
        return count

    def dead_letter(self, message_ids: Sequence[str], reason: str, now: float) -> int:
        with self._store.transaction() as conn:
            return self._dead_letter(conn, message_ids, reason, now)

    def expire(self, now: float) -> list[str]:
        with self._store.transaction() as conn:
            expired = [
                str(r[0])
                for r in conn.execute(
                    "SELECT message_id FROM outbox WHERE state = 'pending'"
                    " AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY id",
                    (now,),
                )
            ]
            self._dead_letter(conn, expired, "expired (time to live passed)", now)
        return expired

    def requeue_dead(self, destination: str | None, now: float) -> int:
        with self._store.transaction() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    "SELECT message_id FROM outbox WHERE state = 'dead' AND kind != 'status'"
                    " AND (? IS NULL OR destination = ?) ORDER BY id",
                    (destination, destination),
                )
            ]
            conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " expires_at = NULL, dead_at = NULL"
                " WHERE state = 'dead' AND kind != 'status' AND (? IS NULL OR destination = ?)",
                (now, destination, destination),
            )
            if ids:
                record_change(
                    conn,
                    StateChange(
                        entity="outbox",
                        entity_id=destination or "*",
                        to_state=None,
                        action="requeue_dead",
                        fields={"message_ids": ids},
                        actor="operator",
                    ),
                )
        return len(ids)

    def enqueue(
        self,
        destination: str,
        kind: str,
        payload: JsonObject,
        idempotency_key: str,
        now: float,
        *,
        priority: int = 100,
        ttl_s: float | None = None,
        ref_id: str | None = None,
    ) -> str:
        message = OutboxMessage(
            destination=destination,
            kind=kind,
            payload=payload,
            idempotency_key=idempotency_key,
            ref_id=ref_id or idempotency_key,
            priority=priority,
            ttl_s=ttl_s,
        )
        self._store.record(
            StateChange(
                entity="sync",
                entity_id=idempotency_key,
                to_state=None,
                action=kind,
                outbox=(message,),
                actor="edge_sync",
            )
        )
        return message.message_id

    def note_result(
        self, destination: str, *, ok: bool, now: float, error: str | None = None
    ) -> None:
        with self._store.transaction() as conn:
            if ok:
                conn.execute(
                    "INSERT INTO sync_status (destination, last_success_at) VALUES (?, ?)"
                    " ON CONFLICT (destination) DO UPDATE"
                    " SET last_success_at = excluded.last_success_at",
                    (destination, now),
                )
            else:
                conn.execute(
                    "INSERT INTO sync_status (destination, last_error_at, last_error)"
                    " VALUES (?, ?, ?) ON CONFLICT (destination) DO UPDATE SET"
                    " last_error_at = excluded.last_error_at, last_error = excluded.last_error",
                    (destination, now, (error or "unknown error")[:500]),
                )

    def status(self, now: float) -> list[DestinationStatus]:
        conn = self._store.connection
        counts: dict[str, dict[str, Any]] = {}
        for destination, state, n, oldest in conn.execute(
            "SELECT destination, state, count(*), min(created_at) FROM outbox"
            " GROUP BY destination, state"
        ):
            entry = counts.setdefault(destination, {})
            entry[state] = n
            if state == "pending":
                entry["oldest"] = oldest
        extra = {
            r["destination"]: r
            for r in conn.execute(
                "SELECT destination, last_success_at, last_error_at, last_error FROM sync_status"
            )
        }
        result = []
        for name in sorted(set(counts) | set(extra)):
            entry = counts.get(name, {})
            oldest = entry.get("oldest")
            info = extra.get(name)
            # An error older than the last success is history: a status that kept showing
            # it after later deliveries would send an operator hunting a fixed fault.
            error_at = info["last_error_at"] if info else None
            success_at = info["last_success_at"] if info else None
            resolved = error_at is not None and success_at is not None and success_at >= error_at
            result.append(
                DestinationStatus(
                    destination=name,
                    pending=entry.get("pending", 0),
                    in_flight=entry.get("in_flight", 0),
                    dead=entry.get("dead", 0),
                    delivered=entry.get("delivered", 0),
                    oldest_pending_age_s=None if oldest is None else max(0.0, now - oldest),
                    last_success_at=info["last_success_at"] if info else None,
                    last_error_at=None if resolved else error_at,
                    last_error=None if resolved or not info else info["last_error"],
                )
            )
        return result
