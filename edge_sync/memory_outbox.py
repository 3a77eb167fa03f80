"""An in-process :class:`~edge_sync.outbox.Outbox` with the store's semantics (tests, demos).

It keeps rows in a dict and follows the same claim/ordering/dependency/dead-letter rules as
``terminal/store/outbox.py``; the shared contract tests run against both.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from edge_sync.json_types import JsonObject
from edge_sync.outbox import (
    ALERT_DESTINATION,
    ALERT_KIND,
    ALERT_PRIORITY,
    FINANCIAL_PREFIX,
    OPEN_STATES,
    SILENT_KINDS,
    DestinationStatus,
    OutboxRow,
    alert_payload,
)

__all__ = ["MemoryOutbox", "StoredRow"]


@dataclass
class StoredRow:
    row: OutboxRow
    state: str = "pending"
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    last_error: str | None = None


class MemoryOutbox:
    """Thread-safe (the worker calls it from a thread, like the SQLite one)."""

    def __init__(self) -> None:
        self._rows: dict[int, StoredRow] = {}
        self._by_message: dict[str, int] = {}
        self._next_id = 1
        self._status: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    # -- writing (what Store.record does in the real store) ------------------------------
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
        with self._lock:
            row_id = self._next_id
            self._next_id += 1
            message_id = str(uuid.uuid4())
            row = OutboxRow(
                id=row_id,
                message_id=message_id,
                destination=destination,
                kind=kind,
                idempotency_key=idempotency_key,
                payload=dict(payload),
                priority=priority,
                created_at=now,
                expires_at=None if ttl_s is None else now + ttl_s,
                ref_id=ref_id,
            )
            self._rows[row_id] = StoredRow(row=row, next_attempt_at=now)
            self._by_message[message_id] = row_id
            return message_id

    # -- inspection for tests --------------------------------------------------------------
    def state_of(self, message_id: str) -> str:
        with self._lock:
            return self._rows[self._by_message[message_id]].state

    def rows(self) -> list[StoredRow]:
        with self._lock:
            return [replace(r) for r in self._rows.values()]

    # -- the Outbox Protocol ---------------------------------------------------------------
    def recover(self, now: float) -> int:
        with self._lock:
            count = 0
            for stored in self._rows.values():
                if stored.state == "in_flight":
                    stored.state = "pending"
                    stored.next_attempt_at = now
                    count += 1
            return count

    def destinations(self) -> list[str]:
        with self._lock:
            return sorted(
                {s.row.destination for s in self._rows.values() if s.state in OPEN_STATES}
            )

    def _blocked(self, row: OutboxRow) -> bool:
        if row.kind != "pop_record" or row.ref_id is None:
            return False
        return any(
            other.row.ref_id == row.ref_id
            and other.row.destination.startswith(FINANCIAL_PREFIX)
            and other.row.id < row.id
            and other.state in OPEN_STATES
            for other in self._rows.values()
        )

    def claim(self, destination: str, limit: int, now: float) -> list[OutboxRow]:
        if limit < 1:
            return []
        with self._lock:
            open_rows = sorted(
                (
                    s
                    for s in self._rows.values()
                    if s.row.destination == destination and s.state in OPEN_STATES
                ),
                key=lambda s: (s.row.priority, s.row.id),
            )
            claimed: list[OutboxRow] = []
            for stored in open_rows:
                if stored.state == "in_flight":
                    continue
                if stored.next_attempt_at > now or self._blocked(stored.row):
                    break
                stored.state = "in_flight"
                stored.row = replace(stored.row, attempts=stored.row.attempts + 1)
                claimed.append(stored.row)
                if len(claimed) >= limit:
                    break
            return claimed

    def mark_delivered(
        self, message_ids: Sequence[str], now: float, destination: str | None = None
    ) -> int:
        with self._lock:
            count = 0
            for message_id in message_ids:
                stored = self._rows.get(self._by_message.get(message_id, -1))
                if stored is None or (
                    destination is not None and stored.row.destination != destination
                ):
                    continue
                if stored.state in OPEN_STATES:
                    stored.state = "delivered"
                    stored.delivered_at = now
                    count += 1
            return count

    def retry_later(self, retries: Sequence[tuple[str, float]], error: str) -> int:
        with self._lock:
            count = 0
            for message_id, at in retries:
                stored = self._rows.get(self._by_message.get(message_id, -1))
                if stored is not None and stored.state in OPEN_STATES:
                    stored.state = "pending"
                    stored.next_attempt_at = at
                    stored.last_error = error
                    count += 1
            return count

    def dead_letter(self, message_ids: Sequence[str], reason: str, now: float) -> int:
        with self._lock:
            count = 0
            for message_id in message_ids:
                stored = self._rows.get(self._by_message.get(message_id, -1))
                if stored is None or stored.state not in OPEN_STATES:
                    continue
                stored.state = "dead"
                stored.last_error = reason
                count += 1
                if stored.row.kind not in SILENT_KINDS:
                    row = stored.row
                    self.enqueue(
                        ALERT_DESTINATION,
                        ALERT_KIND,
                        alert_payload(
                            "dead_letter",
                            message_id=row.message_id,
                            destination=row.destination,
                            kind=row.kind,
                            ref_id=row.ref_id,
                            attempts=row.attempts,
                            reason=reason,
                        ),
                        f"dead:{row.message_id}",
                        now,
                        priority=ALERT_PRIORITY,
                    )
            return count

    def expire(self, now: float) -> list[str]:
        with self._lock:
            expired = [
                s.row.message_id
                for s in self._rows.values()
                if s.state == "pending" and s.row.expires_at is not None and s.row.expires_at <= now
            ]
            self.dead_letter(expired, "expired (time to live passed)", now)
            return expired

    def requeue_dead(self, destination: str | None, now: float) -> int:
        with self._lock:
            count = 0
            for stored in self._rows.values():
                if (
                    stored.state == "dead"
                    and destination in (None, stored.row.destination)
                    and stored.row.kind != "status"  # stale by now; a fresh one follows
                ):
                    stored.state = "pending"
                    stored.next_attempt_at = now
                    stored.row = replace(stored.row, attempts=0, expires_at=None)
                    count += 1
            return count

    def note_result(
        self, destination: str, *, ok: bool, now: float, error: str | None = None
    ) -> None:
        with self._lock:
            entry = self._status.setdefault(destination, {})
            if ok:
                entry["last_success_at"] = now
            else:
                entry["last_error_at"] = now
                entry["last_error"] = error

    def status(self, now: float) -> list[DestinationStatus]:
        with self._lock:
            names = {s.row.destination for s in self._rows.values()} | set(self._status)
            result = []
            for name in sorted(names):
                rows = [s for s in self._rows.values() if s.row.destination == name]
                pending = [s for s in rows if s.state == "pending"]
                oldest = min((s.row.created_at for s in pending), default=None)
                extra = self._status.get(name, {})
                result.append(
                    DestinationStatus(
                        destination=name,
                        pending=len(pending),
                        in_flight=sum(s.state == "in_flight" for s in rows),
                        dead=sum(s.state == "dead" for s in rows),
                        delivered=sum(s.state == "delivered" for s in rows),
                        oldest_pending_age_s=None if oldest is None else max(0.0, now - oldest),
                        last_success_at=extra.get("last_success_at"),
                        last_error_at=extra.get("last_error_at"),
                        last_error=extra.get("last_error"),
                    )
                )
            return result
