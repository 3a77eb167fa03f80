"""Every library error on the platform side surfaces as a PlatformError leaf, never raw."""

from __future__ import annotations

import datetime
import inspect
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_sync.errors import SyncError
from edge_sync.platform import errors
from edge_sync.platform.api import create_app
from edge_sync.platform.downlink import publish_downlink, sign_downlink
from edge_sync.platform.errors import (
    DownlinkError,
    PlatformError,
    StorageError,
    UnstorableDataError,
)
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.mqtt import MqttSettings
from edge_sync.platform.storage import PlatformStorage, PostgresStorage, open_storage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope


def test_every_leaf_is_a_sync_error() -> None:
    """The platform's tree hangs under SyncError, so the CLI prints one line for each."""
    leaves = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(leaf, PlatformError) and issubclass(leaf, SyncError) for leaf in leaves)


def test_sqlite_unopenable_file_is_a_storage_error(tmp_path: Path) -> None:
    """A database path that is not a SQLite file gives StorageError naming the path."""
    bogus = tmp_path / "platform.db"
    bogus.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StorageError, match=r"platform\.db"):
        open_storage(str(bogus))


def test_sqlite_failure_mid_batch_commits_nothing(
    tmp_path: Path, signer: SoftwareSigner
) -> None:
    """sqlite3.Error inside a batch is a StorageError and the batch is rolled back."""
    storage = open_storage(str(tmp_path / "p.db"))
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "now")
    first = envelope(signer)
    Ingestor(storage).ingest([RawUplink(TERMINAL_ID, first.to_json(), "transaction")])
    storage._connection.execute("DROP TABLE platform_transactions")  # type: ignore[attr-defined]
    batch = [RawUplink(TERMINAL_ID, envelope(signer, kind="note", payload={}).to_json(), "note"),
             RawUplink(TERMINAL_ID, envelope(signer).to_json(), "transaction")]
    with pytest.raises(StorageError, match="nothing of this batch was committed"):
        Ingestor(storage).ingest(batch)
    assert storage.message_count() == 1
    storage.close()


def _exception_classes(*modules: Any) -> set[type[BaseException]]:
    """Every exception class the modules define or export, read with inspect (no hand list)."""
    return {cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException)}


#: DB-API's Warning is not an Error subclass; neither driver raises it for our statements
#: (Python 3.11's sqlite3 raises ProgrammingError where it once warned).
SQLITE_ERRORS = sorted(_exception_classes(sqlite3) - {sqlite3.Warning}, key=lambda c: c.__name__)


def test_every_sqlite3_exception_is_under_the_caught_root() -> None:
    """sqlite3 defines nothing outside sqlite3.Error (which storage maps) but DB-API's Warning."""
    assert all(issubclass(cls, sqlite3.Error) for cls in SQLITE_ERRORS)
    assert len(SQLITE_ERRORS) == 9


@pytest.mark.parametrize("cls", SQLITE_ERRORS, ids=lambda c: c.__name__)
def test_every_sqlite3_error_in_a_batch_is_mapped(cls: type[sqlite3.Error], tmp_path: Path) -> None:
    """Each sqlite3 error in a write is a StorageError (DataError: UnstorableDataError); none is kept."""
    storage = open_storage(str(tmp_path / "p.db"))
    with pytest.raises(StorageError, match=r"nothing of (this batch|it) was committed") as caught:
        with storage._transaction() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO platform_terminals (terminal_id, registered_at) "
                         "VALUES (?, 'now')", (TERMINAL_ID,))
            raise cls("injected")
    assert type(caught.value.__cause__) is cls
    assert isinstance(caught.value, UnstorableDataError) == issubclass(cls, sqlite3.DataError)
    assert storage.terminals() == []
    storage.close()


def test_unsupported_url_is_a_value_error() -> None:
    """A URL scheme the platform does not speak is a caller mistake (ValueError)."""
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_storage("mysql://localhost/x")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_postgres_unreachable_is_a_storage_error() -> None:
    """psycopg's OperationalError (nothing listening) is a StorageError with a hint."""
    with pytest.raises(StorageError, match="check that the database is reachable"):
        open_storage(f"postgresql://127.0.0.1:{_closed_port()}/test?connect_timeout=2")


def _psycopg_exception_classes() -> tuple[set[type[BaseException]], set[type[BaseException]]]:
    """(every psycopg exception class, those outside psycopg.Error), from both modules."""
    import psycopg
    import psycopg.errors

    classes = _exception_classes(psycopg, psycopg.errors)
    return classes, {cls for cls in classes if not issubclass(cls, psycopg.Error)}


def test_every_psycopg_exception_is_under_the_caught_root() -> None:
    """psycopg raises nothing at us outside psycopg.Error (which storage maps) but non-errors."""
    import asyncio

    import psycopg

    classes, outside = _psycopg_exception_classes()
    assert len(classes) > 200  # the SQLSTATE classes were found: the check is not vacuous
    # Warning (DB-API, unused by psycopg 3), Rollback (a with-block's control flow, which
    # storage does not use), asyncio's CancelledError (re-exported).
    assert outside == {psycopg.Warning, psycopg.Rollback, asyncio.CancelledError}


@pytest.mark.network
def test_every_psycopg_error_in_a_batch_is_mapped(postgres_url: str) -> None:
    """Each psycopg error class inside a write is a StorageError (DataError: UnstorableDataError)."""
    import psycopg

    classes, outside = _psycopg_exception_classes()
    storage = open_storage(postgres_url)
    for cls in sorted(classes - outside, key=lambda c: c.__qualname__):
        with pytest.raises(StorageError) as caught:
            with storage._transaction() as conn:  # type: ignore[attr-defined]
                conn.execute("INSERT INTO platform_terminals (terminal_id, registered_at) "
                             "VALUES (%s, 'now')", (TERMINAL_ID,))
                raise cls("injected")
        assert type(caught.value.__cause__) is cls, cls
        assert isinstance(caught.value, UnstorableDataError) == issubclass(cls, psycopg.DataError), cls
    assert storage.terminals() == []
    storage.close()


@pytest.mark.network
def test_postgres_lost_connection_is_mapped_then_recovered(
    postgres_url: str, signer: SoftwareSigner
) -> None:
    """A server-side disconnect is one StorageError; the next call reconnects."""
    import psycopg

    storage = open_storage(postgres_url)
    assert isinstance(storage, PostgresStorage)
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "now")
    pid = storage._conn().info.backend_pid
    with psycopg.connect(postgres_url.split("?")[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StorageError):
        storage.message_count()
    assert storage.message_count() == 0
    acks = Ingestor(storage).ingest([RawUplink(TERMINAL_ID, envelope(signer).to_json(),
                                               "transaction")])
    assert acks[0].status == "accepted"
    storage.close()


async def test_push_without_a_broker_is_a_downlink_error() -> None:
    """aiomqtt's MqttError (connection refused) becomes DownlinkError naming the broker."""
    downlink = sign_downlink(
        SoftwareSigner.generate(), "cmd", {"command": "sync_now"}, terminal_id=TERMINAL_ID, seq=1
    )
    assert downlink.kind == "cmd"
    settings = MqttSettings(port=_closed_port())
    with pytest.raises(DownlinkError, match=f"127.0.0.1:{settings.port}"):
        await publish_downlink(settings, TERMINAL_ID, downlink)


_FULL_PAN_BIN = {"version": 1, "mode": "add", "entries": [{"type": "bin",
                                                             "value": "4111111111111111"}]}


@pytest.mark.parametrize(
    ("kind",       "payload",                                              "message"),
    [
        ("reboot",     {},                                                  "unknown downlink kind"),
        ("fx",         {"at": datetime.date(2026, 1, 1)},                   "not JSON-serialisable"),
        ("fx",         {"base": "MAD", "as_of": "x", "rates": {"EUR": "-1"}}, "rates: Value error"),
        ("cmd",        {"command": "format_disk"},                          "command"),
        ("blacklist",  _FULL_PAN_BIN,                                       "not a valid bin"),
        ("config",     {"version": "1", "files": {"../etc/passwd": "x"}},   "not a profile file"),
    ],
)
def test_unsignable_downlinks_are_refused(kind: str, payload: dict[str, Any], message: str) -> None:
    """An unknown kind or a payload JSON cannot carry is refused before anything is signed."""
    with pytest.raises(DownlinkError, match=message):
        sign_downlink(SoftwareSigner.generate(), kind, payload, terminal_id=TERMINAL_ID, seq=1)


class _DatabaseDown:
    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise StorageError("the platform database is down")

        return fail


async def test_https_answers_503_when_the_database_is_down() -> None:
    """A storage failure is a 503 with Retry-After: nothing was stored, the terminal resends."""
    storage: PlatformStorage = _DatabaseDown()  # type: ignore[assignment]
    app = create_app(storage)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://platform") as http:
        response = await http.post(f"/v1/terminals/{TERMINAL_ID}/messages",
                                   json={"messages": [{"v": 1}]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert (await http.get("/v1/terminals")).status_code == 503


def test_taken_http_port_is_a_listen_error() -> None:
    """A port already in use is ListenError naming it, before any worker starts."""
    from edge_sync.platform.errors import ListenError
    from edge_sync.platform.server import listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            listen("127.0.0.1", port)
