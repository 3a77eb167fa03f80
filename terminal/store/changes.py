"""The one write API: a state change, its outbox rows and its journal entry, atomically.

Every transition of DESIGN §6 goes through :meth:`record_change`, which in ONE SQLite
transaction (a) checks the transition against the entity's state machine, (b) writes the
new state and fields, (c) inserts the outbox rows the change causes and (d) appends the
audit-journal entry that names them. A crash at any moment leaves either all four or none.

Entities with a state table (``payment``, ``pop_transaction``, ``refund``) follow their
state machine; any other entity name (``terminal``, ``config``, ``keys`` …) records an
*event*: journal entry and outbox rows only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_sync.json_types import JsonObject
from terminal.errors import IllegalTransitionError
from terminal.store.journal import JournalEntry, append_entry

__all__ = ["STATE_MACHINES", "OutboxMessage", "StateChange", "StateMachine", "record_change"]


@dataclass(frozen=True, slots=True)
class StateMachine:
    table: str
    initial: frozenset[str]
    transitions: Mapping[str, frozenset[str]]

    def check(self, entity: str, entity_id: str, current: str | None, new: str) -> None:
        allowed = self.initial if current is None else self.transitions.get(current, frozenset())
        if new not in allowed:
            where = "a new" if current is None else f"state {current!r} of"
            raise IllegalTransitionError(
                f"{entity} {entity_id}: {where} {entity} cannot go to {new!r} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none, it is final'})",
                entity=entity,
                entity_id=entity_id,
                from_state=current,
                to_state=new,
            )


def _machine(table: str, initial: set[str], transitions: dict[str, set[str]]) -> StateMachine:
    return StateMachine(
        table, frozenset(initial), {k: frozenset(v) for k, v in transitions.items()}
    )


#: DESIGN §6 for payments; the PoP leg and refunds have their own small machines.
STATE_MACHINES: dict[str, StateMachine] = {
    "payment": _machine(
        "payments",
        {"created"},
        {
            # Declined or approved by the card before any host was asked (AAC or TC at the
            # first GENERATE AC, fraud rules, offline limits) skips "authorising".
            "created": {"authorising", "cancelled", "financial_declined", "pop_deferred",
                        "completed"},
            "authorising": {
                "completed", "financial_declined", "cancelled", "pop_deferred",
                "reversal_pending", "needs_reconciliation",
            },
            "pop_deferred": {"completed", "reversal_pending", "needs_reconciliation",
                             "offline_declined", "voided"},
            # An offline approval whose advice the issuer declines, or a void before the
            # end of day, are the only ways out of "completed".
            "completed": {"offline_declined", "voided"},
            "reversal_pending": {"reversed", "needs_reconciliation"},
            "needs_reconciliation": {"completed", "reversed"},
        },
    ),
    "pop_transaction": _machine(
        "pop_transactions",
        {"pending"},
        {
            "pending": {"submitted", "confirmed", "rejected", "deferred", "cancelled"},
            "submitted": {"confirmed", "rejected", "deferred", "cancelled"},
            "deferred": {"submitted", "confirmed", "needs_reconciliation", "cancelled"},
            # A record confirmed for a payment that then failed (card AAC at GENERATE AC 2,
            # a void) is cancelled at the back end.
            "confirmed": {"cancelled", "needs_reconciliation"},
            "rejected": {"needs_reconciliation"},
            "needs_reconciliation": {"confirmed", "cancelled"},
        },
    ),
    "refund": _machine(
        "refunds",
        {"requested"},
        {
            "requested": {"approved", "declined", "pending_sync"},
            "pending_sync": {"approved", "declined"},
        },
    ),
}


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to send later; the payload is JSON and never holds clear card data."""

    destination: str
    kind: str
    payload: JsonObject
    idempotency_key: str
    ref_id: str | None = None
    priority: int = 100
    ttl_s: float | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if not self.destination or not self.kind:
            raise ValueError("an outbox message needs a destination and a kind")


@dataclass(frozen=True, slots=True)
class StateChange:
    """Move ``entity``/``entity_id`` to ``to_state`` (or record an event), setting ``fields``."""

    entity: str
    entity_id: str
    to_state: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    outbox: Sequence[OutboxMessage] = ()
    actor: str = "terminal"
    action: str | None = None
    reason: str | None = None


_SYSTEM_COLUMNS = frozenset({"id", "status", "created_at", "updated_at"})


def _columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    # Read each time (microseconds, against a millisecond fsync): a cache could outlive a
    # migration or mix up two databases open in one process.
    return frozenset(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))


def _journal_value(value: Any) -> Any:
    # Blobs (the vault blob) are journalled by digest only: the journal is for auditors.
    if isinstance(value, bytes | bytearray | memoryview):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    return value


def record_change(conn: sqlite3.Connection, change: StateChange) -> JournalEntry:
    """Apply ``change`` inside the caller's write transaction; see the module docstring."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    machine = STATE_MACHINES.get(change.entity)
    from_state: str | None = None
    if machine is not None:
        if change.to_state is None:
            raise ValueError(f"a {change.entity} change needs a to_state")
        columns = _columns(conn, machine.table)
        unknown = set(change.fields) - (columns - _SYSTEM_COLUMNS)
        if unknown:
            raise ValueError(
                f"{machine.table} has no column(s) {sorted(unknown)} that a change may set"
            )
        row = conn.execute(
            f"SELECT status FROM {machine.table} WHERE id = ?", (change.entity_id,)
        ).fetchone()
        from_state = row[0] if row else None
        machine.check(change.entity, change.entity_id, from_state, change.to_state)
        if row is None:
            values = {**change.fields, "id": change.entity_id, "status": change.to_state,
                      "created_at": now, "updated_at": now}
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            conn.execute(
                f"INSERT INTO {machine.table} ({names}) VALUES ({marks})", tuple(values.values())
            )
        else:
            values = {**change.fields, "status": change.to_state, "updated_at": now}
            assignments = ", ".join(f"{name} = ?" for name in values)
            conn.execute(
                f"UPDATE {machine.table} SET {assignments} WHERE id = ?",
                (*values.values(), change.entity_id),
            )
    elif change.action is None:
        raise ValueError(f"an event on {change.entity!r} needs an action name")

    created = time.time()
    for message in change.outbox:
        conn.execute(
            "INSERT INTO outbox (message_id, destination, kind, idempotency_key, ref_id,"
            " payload, priority, next_attempt_at, created_at, expires_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                message.message_id,
                message.destination,
                message.kind,
                message.idempotency_key,
                message.ref_id if message.ref_id is not None else change.entity_id,
                json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False),
                message.priority,
                created,
                created,
                created + message.ttl_s if message.ttl_s is not None else None,
            ),
        )
    data: dict[str, Any] = {k: _journal_value(v) for k, v in change.fields.items()}
    if change.outbox:
        data["outbox"] = [m.message_id for m in change.outbox]
    if change.reason:
        data["reason"] = change.reason
    return append_entry(
        conn,
        actor=change.actor,
        entity=change.entity,
        entity_id=change.entity_id,
        action=change.action or ("create" if from_state is None else "transition"),
        from_state=from_state,
        to_state=change.to_state,
        data=data,
    )
