"""STANs that survive restarts: the store's :class:`~edge_sync.connectors.StanSource`.

An acquirer identifies a terminal's messages of the day by STAN (ISO 8583 DE 11) and
takes a reused one for a duplicate. Numbers are reserved in blocks (one durable write per
``block`` STANs, not one fsync per payment): after a crash the rest of a block is skipped.
Gaps are allowed by ISO 8583; reuse is not. Table ``psp_trace`` (migration 0006).
"""

from __future__ import annotations

import threading

from terminal.store.db import Store

__all__ = ["SqliteStanSource"]

_STAN_SPACE = 999_999


class SqliteStanSource:
    """Hands out ``000001``…``999999`` (wrapping) for one connector, never twice in a row
    of 999999 even across restarts."""

    def __init__(self, store: Store, connector: str, *, block: int = 100) -> None:
        if not 1 <= block <= 10_000:
            raise ValueError("block must be 1 to 10000")
        self._store = store
        self._connector = connector
        self._block = block
        self._next = 1
        self._limit = 0  # nothing reserved yet
        self._lock = threading.Lock()

    def _reserve(self) -> None:
        with self._store.transaction() as conn:
            row = conn.execute("SELECT high_water FROM psp_trace WHERE connector = ?",
                               (self._connector,)).fetchone()
            start = (row[0] if row else 0) + 1
            conn.execute(
                "INSERT INTO psp_trace (connector, high_water) VALUES (?, ?) "
                "ON CONFLICT (connector) DO UPDATE SET high_water = excluded.high_water",
                (self._connector, start + self._block - 1),
            )
        self._next, self._limit = start, start + self._block - 1

    def next_stan(self) -> str:
        with self._lock:
            if self._next > self._limit:
                self._reserve()
            value = self._next
            self._next += 1
        return f"{(value - 1) % _STAN_SPACE + 1:06d}"
