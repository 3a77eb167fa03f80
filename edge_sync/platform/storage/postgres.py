"""The platform database on PostgreSQL (``postgresql://…``), for several workers at once.

A URL may carry ``?schema=NAME``: the tables then live in that schema (created if missing),
so that test runs and tenants stay apart. Concurrent migrations (several workers starting
together) are serialised by an advisory lock on the schema's name, and the checkpoint
checks of one terminal (several workers committing its checkpoints) by one on its id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from edge_sync.platform.storage.sql import SqlStorage

__all__ = ["PostgresStorage"]


class PostgresStorage(SqlStorage):
    """The platform database on PostgreSQL (psycopg 3); reconnects after a lost connection."""

    _begin = "BEGIN"

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self._errors = (psycopg.Error,)
        self._data_errors = (psycopg.DataError, OverflowError, UnicodeEncodeError)
        self.url, self.schema = _split_schema(url)
        self._connection: Any = None
        self.migrate()

    def _describe(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        where = f"postgresql://{host}:{parts.port or 5432}{parts.path}"
        return f"{where} (schema {self.schema})" if self.schema else where

    def _conn(self) -> Any:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = self._psycopg.connect(self.url, autocommit=True)
            if self.schema:
                ident = self._psycopg.sql.Identifier(self.schema)
                self._connection.execute(
                    self._psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident)
                )
                self._connection.execute(
                    self._psycopg.sql.SQL("SET search_path TO {}").format(ident)
                )
        return self._connection

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _lock_schema(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")

    def _lock_checkpoints(self, conn: Any, terminal_id: str) -> None:
        # Held until this transaction ends; under READ COMMITTED each statement after the
        # wait sees what the worker that held it committed. Keyed by the schema too, so
        # that tenants (and test runs) do not queue behind each other; a hash collision
        # only serialises more than needed.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext(%s))",
                     (terminal_id,))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()


def _split_schema(url: str) -> tuple[str, str | None]:
    """Take our ``schema=`` parameter out of the URL (libpq would refuse it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = [(key, value) for key, value in query if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(rest))), schema or None
