"""The store's fingerprint → token map: :class:`hsm.base.TokenRegistry` on SQLite.

Table ``token_map`` (migration ``0002_token_map.sql``). :meth:`StoreTokenRegistry.bind`
runs in one ``BEGIN IMMEDIATE`` transaction, so two terminals processes or threads that
tokenise the same new PAN at once get the same token, and two PANs whose first candidates
collide get different ones: the first to commit takes the candidate, the other the next
free one in its own deterministic sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from terminal.store.db import Store

__all__ = ["StoreTokenRegistry"]


class StoreTokenRegistry:
    """Implements :class:`hsm.base.TokenRegistry` on the terminal's :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def bind(self, fingerprint: str, key_version: int, candidates: Iterable[str]) -> str | None:
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT token FROM token_map WHERE fingerprint = ? AND key_version = ?",
                (fingerprint, key_version),
            ).fetchone()
            if row is not None:
                return str(row[0])
            for token in candidates:
                taken = conn.execute(
                    "SELECT 1 FROM token_map WHERE token = ?", (token,)
                ).fetchone()
                if taken is None:
                    conn.execute(
                        "INSERT INTO token_map (fingerprint, key_version, token, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (fingerprint, key_version, token, datetime.now(UTC).isoformat()),
                    )
                    return token
            return None

    def token_of(self, fingerprint: str, key_version: int) -> str | None:
        """The token bound to a fingerprint, without binding one."""
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT token FROM token_map WHERE fingerprint = ? AND key_version = ?",
                (fingerprint, key_version),
            ).fetchone()
        return None if row is None else str(row[0])

    def fingerprint_of(self, token: str) -> tuple[str, int] | None:
        """``(fingerprint, key_version)`` of a token (blacklists, velocity by token)."""
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT fingerprint, key_version FROM token_map WHERE token = ?", (token,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def __len__(self) -> int:
        with self._store.transaction() as conn:
            return int(conn.execute("SELECT count(*) FROM token_map").fetchone()[0])
