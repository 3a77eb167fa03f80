"""The terminal's durable SQLite store.

Open it with :meth:`Store.open`; write only through :meth:`Store.record`, which puts a
state change, its outbox rows and its audit-journal entry in one transaction.
"""

from terminal.store.changes import STATE_MACHINES, OutboxMessage, StateChange, StateMachine
from terminal.store.db import PRAGMAS, Store
from terminal.store.journal import JournalEntry, canonical_json, verify_journal
from terminal.store.status import store_status

__all__ = [
    "PRAGMAS",
    "STATE_MACHINES",
    "JournalEntry",
    "OutboxMessage",
    "StateChange",
    "StateMachine",
    "Store",
    "canonical_json",
    "store_status",
    "verify_journal",
]
