"""The token-activation events the token-system stand-in received (SQLite table).

An event is a JSON object with at least ``event_id`` (UUID, the dedup key), ``terminal_id``,
``payment_id``, ``card_token``, ``amount_minor``, ``currency`` and ``pop_reference``; other
fields are kept as they came. The same ``event_id`` twice is recorded once; with other content
it is refused.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from typing import Any

from edge_sync.messages import canonical_json

__all__ = ["REQUIRED_FIELDS", "ActivationLog", "ActivationRefusedError"]

REQUIRED_FIELDS = ("event_id", "terminal_id", "payment_id", "card_token", "amount_minor",
                   "currency", "pop_reference")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_activations (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  REAL NOT NULL
);
"""


class ActivationRefusedError(ValueError):
    """The event is malformed or reuses an event id with other content."""


class ActivationLog:
    """Records activation events; ``record`` answers ``"recorded"`` or ``"duplicate"``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)

    def record(self, event: Any) -> str:
        if not isinstance(event, dict):
            raise ActivationRefusedError("a token-activation event is a JSON object")
        missing = [name for name in REQUIRED_FIELDS if name not in event]
        if missing:
            raise ActivationRefusedError(f"token-activation event lacks {', '.join(missing)}")
        try:
            event_id = str(uuid.UUID(str(event["event_id"])))
        except ValueError:
            raise ActivationRefusedError("event_id is not a UUID") from None
        digest = hashlib.sha256(canonical_json(event)).hexdigest()
        row = self._db.execute("SELECT content_hash FROM token_activations WHERE event_id=?",
                               (event_id,)).fetchone()
        if row is not None:
            if row[0] != digest:
                raise ActivationRefusedError(f"event id {event_id} already used with other content")
            return "duplicate"
        self._db.execute("INSERT INTO token_activations (event_id, content_hash, body, "
                         "received_at) VALUES (?,?,?,?)",
                         (event_id, digest, canonical_json(event).decode(), time.time()))
        return "recorded"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for (body,) in self._db.execute(
            "SELECT body FROM token_activations ORDER BY seq")]
