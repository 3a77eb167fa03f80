"""What fleet downlinks leave in the store: the downlink log, the blacklist, FX rates.

Each write is one transaction that also appends an audit-journal event (``entity="fleet"``),
so an auditor sees when a blacklist or a rate set changed and which downlink changed it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from terminal.store.changes import StateChange, record_change
from terminal.store.db import Store

__all__ = ["FleetStore"]


def _set_version(conn: Any, name: str, value: str, now: float) -> None:
    conn.execute(
        "INSERT INTO fleet_versions (name, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        (name, value, now),
    )


class FleetStore:
    """Blocking; the downlink handler calls it from a thread."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def seen(self, message_id: str) -> bool:
        row = self._store.connection.execute(
            "SELECT 1 FROM downlink_log WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def last_downlink_seq(self, kind: str) -> int:
        """The sequence of the newest verified downlink of ``kind`` (0: none yet)."""
        row = self._store.connection.execute(
            "SELECT seq FROM downlink_sequence WHERE kind = ?", (kind,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def version(self, name: str) -> str | None:
        """The blacklist version or FX ``as_of`` in force (``None``: never pushed)."""
        row = self._store.connection.execute(
            "SELECT value FROM fleet_versions WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    def record_downlink(
        self,
        message_id: str,
        kind: str,
        issued_at: str,
        outcome: str,
        reason: str | None,
        seq: int | None = None,
    ) -> None:
        """Log a verified downlink's outcome; its ``seq`` becomes the kind's floor."""
        now = time.time()
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO downlink_log"
                " (message_id, kind, issued_at, received_at, outcome, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, kind, issued_at, now, outcome, reason),
            )
            if seq is not None:
                conn.execute(
                    "INSERT INTO downlink_sequence (kind, seq, message_id, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE SET"
                    " seq = excluded.seq, message_id = excluded.message_id,"
                    " updated_at = excluded.updated_at WHERE excluded.seq > seq",
                    (kind, seq, message_id, now),
                )
            record_change(
                conn,
                StateChange(
                    entity="fleet",
                    entity_id=message_id,
                    to_state=None,
                    action=f"downlink_{outcome}",
                    fields={"kind": kind, "issued_at": issued_at},
                    reason=reason,
                    actor="platform",
                ),
            )

    def replace_blacklist(
        self,
        version: int,
        mode: str,
        entries: Iterable[tuple[str, str, str | None]],
    ) -> int:
        """Apply a blacklist update (``replace``, ``add`` or ``remove``); rows affected."""
        if mode not in ("replace", "add", "remove"):
            raise ValueError(f"unknown blacklist mode {mode!r}")
        now = time.time()
        items = list(entries)
        with self._store.transaction() as conn:
            if mode == "replace":
                conn.execute("DELETE FROM blacklist")
            if mode == "remove":
                count = 0
                for entry_type, value, _ in items:
                    count += conn.execute(
                        "DELETE FROM blacklist WHERE entry_type = ? AND value = ?",
                        (entry_type, value),
                    ).rowcount
            else:
                conn.executemany(
                    "INSERT INTO blacklist (entry_type, value, reason, version, added_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (entry_type, value) DO UPDATE SET"
                    " reason = excluded.reason, version = excluded.version",
                    [(t, v, r, version, now) for t, v, r in items],
                )
                count = len(items)
            _set_version(conn, "blacklist", str(version), now)
            record_change(
                conn,
                StateChange(
                    entity="fleet",
                    entity_id=f"blacklist-v{version}",
                    to_state=None,
                    action=f"blacklist_{mode}",
                    fields={"version": version, "entries": len(items)},
                    actor="platform",
                ),
            )
        return count

    def is_blacklisted(self, entry_type: str, value: str) -> bool:
        row = self._store.connection.execute(
            "SELECT 1 FROM blacklist WHERE entry_type = ? AND value = ?", (entry_type, value)
        ).fetchone()
        return row is not None

    def store_fx(self, base: str, as_of: str, rates: Mapping[str, str]) -> None:
        now = time.time()
        with self._store.transaction() as conn:
            conn.executemany(
                "INSERT INTO fx_rates (currency, base, rate, as_of, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (currency) DO UPDATE SET"
                " base = excluded.base, rate = excluded.rate, as_of = excluded.as_of,"
                " updated_at = excluded.updated_at",
                [(code, base, rate, as_of, now) for code, rate in sorted(rates.items())],
            )
            _set_version(conn, "fx", as_of, now)
            record_change(
                conn,
                StateChange(
                    entity="fleet",
                    entity_id=f"fx-{as_of}",
                    to_state=None,
                    action="fx_rates",
                    fields={"base": base, "as_of": as_of, "rates": dict(rates)},
                    actor="platform",
                ),
            )

    def fx_rates(self) -> dict[str, dict[str, Any]]:
        return {
            str(r["currency"]): {"base": r["base"], "rate": r["rate"], "as_of": r["as_of"]}
            for r in self._store.connection.execute(
                "SELECT currency, base, rate, as_of FROM fx_rates ORDER BY currency"
            )
        }
