"""Terminal public keys the PoP stand-in verifies signatures with (kept in its SQLite file).

Registered like the platform's registry: from ``--key-file TERMINAL_ID=PEM[:VERSION]`` at
start, or ``POST /v1/admin/terminals`` ``{"terminal_id", "public_key_pem", "key_version"}``.
A PEM public key or a certificate is accepted; the key must be EC P-256.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_sync.platform.errors import RegistryError
from edge_sync.platform.keys import public_key_pem, read_terminal_public_key
from simulators.pop.errors import PopKeyFileError

__all__ = ["KeyRegistry", "parse_key_file_option"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminal_keys (
    terminal_id    TEXT NOT NULL,
    key_version    INTEGER NOT NULL,
    public_key_pem TEXT NOT NULL,
    PRIMARY KEY (terminal_id, key_version)
);
"""


def parse_key_file_option(text: str) -> tuple[str, Path, int]:
    """``TERMINAL_ID=PATH[:VERSION]`` → (terminal id, path, version); version defaults to 1."""
    terminal_id, sep, rest = text.partition("=")
    if not sep or not terminal_id or not rest:
        raise PopKeyFileError(f"--key-file {text!r}: expected TERMINAL_ID=PEM_FILE[:VERSION]")
    path_text, _, version_text = rest.rpartition(":") if ":" in rest else (rest, "", "1")
    try:
        version = int(version_text)
    except ValueError:
        path_text, version = rest, 1
    if version < 0:
        raise PopKeyFileError(f"--key-file {text!r}: the key version must be >= 0")
    return terminal_id, Path(path_text), version


class KeyRegistry:
    """``(terminal_id, key_version)`` → SubjectPublicKeyInfo PEM."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)

    def register_file(self, terminal_id: str, path: Path, key_version: int = 1) -> None:
        try:
            pem = read_terminal_public_key(path)
        except RegistryError as exc:
            raise PopKeyFileError(f"--key-file for {terminal_id}: {exc.message}",
                                  path=str(path)) from exc
        self._store(terminal_id, key_version, pem)

    def register_pem(self, terminal_id: str, pem: str, key_version: int = 1) -> None:
        """Register from PEM text; :class:`PopKeyFileError` when it is not an EC P-256 key."""
        try:
            normalised = public_key_pem(pem.encode())
        except RegistryError as exc:
            raise PopKeyFileError(f"public key of {terminal_id}: {exc.message}") from exc
        self._store(terminal_id, key_version, normalised)

    def _store(self, terminal_id: str, key_version: int, pem: str) -> None:
        self._db.execute("INSERT INTO terminal_keys VALUES (?,?,?) ON CONFLICT (terminal_id, "
                         "key_version) DO UPDATE SET public_key_pem=excluded.public_key_pem",
                         (terminal_id, key_version, pem))

    def lookup(self, terminal_id: str, key_version: int) -> str | None:
        row = self._db.execute("SELECT public_key_pem FROM terminal_keys WHERE terminal_id=? "
                               "AND key_version=?", (terminal_id, key_version)).fetchone()
        return None if row is None else str(row[0])
