"""STANs and RRNs never repeat across restarts and concurrent processes when the router's
ISO 8583 connectors count with the store's SqliteStanSource (issue #12 item 7; ISO 8583:1987
DE 11 and DE 37: an acquirer takes a repeated STAN/RRN of the day for a duplicate)."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sync.connectors.iso8583_spec import MTI_RESPONSE, decode, encode, frame
from terminal.store import Store

pytestmark = [pytest.mark.network, pytest.mark.slow]

#: One terminal process: build the router from the profile with the durable STAN source
#: (the way the services layer does) and authorise ``count`` payments through it.
_PROCESS = '''
import asyncio, sys, uuid
from edge_sync.connectors import Amount, AuthorisationRequest, CardInput, RoutingKey
from terminal.profile import load_profile
from terminal.psp_routing import build_router
from terminal.store import Store
from terminal.store.psp_trace import SqliteStanSource


class Sealed:
    def envelope_for(self, pem, context):
        return bytes(32)


async def main(profile_dir, db, count):
    profile = load_profile(profile_dir)
    with Store.open(db) as store:
        router = build_router(profile, stan_source=lambda n: SqliteStanSource(store, n, block=7))
        key = RoutingKey(network="domestic", currency="MAD", amount_minor=2500)
        try:
            for _ in range(count):
                request = AuthorisationRequest(uuid.uuid4(), Amount(2500, "MAD", 504, 2),
                                               CardInput(encryptor=Sealed()))
                assert (await router.authorise(request, key)).approved
        finally:
            await router.aclose()


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
'''


class RecordingHost:
    """An acquirer host on loopback that approves everything and records DE 11 and DE 37."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="recording-host", daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                request = decode(await reader.readexactly(length))
                with self._lock:
                    self.received.append((request["11"], request.get("37", "")))
                answer = {"t": MTI_RESPONSE[request["t"]], "11": request["11"], "39": "00",
                          "38": "123456"}
                if "37" in request:
                    answer["37"] = request["37"]
                writer.write(frame(encode(answer)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    def __enter__(self) -> RecordingHost:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


@pytest.fixture
def host() -> Iterator[RecordingHost]:
    with RecordingHost() as recording:
        yield recording


def _terminal(profile: Path, db: Path, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _PROCESS, str(profile), str(db), str(count)],
                            stderr=subprocess.PIPE)


def test_stans_and_rrns_unique_across_restarts_and_processes(
        host: RecordingHost, tmp_path: Path, default_profile_dir: Path) -> None:
    """Two terminal processes on one store at once, then a restart: every authorisation the
    host receives has its own STAN and RRN."""
    profile = tmp_path / "profile"
    shutil.copytree(default_profile_dir, profile)
    routing = profile / "routing.toml"
    routing.write_text(routing.read_text().replace("port = 8583", f"port = {host.port}", 1))
    db = tmp_path / "etika.db"
    Store.open(db).close()  # migrated once, before the processes race

    concurrent = [_terminal(profile, db, 25), _terminal(profile, db, 25)]
    for process in concurrent:
        _, err = process.communicate()
        assert process.returncode == 0, err.decode()
    restarted = _terminal(profile, db, 20)
    _, err = restarted.communicate()
    assert restarted.returncode == 0, err.decode()

    stans = [stan for stan, _ in host.received]
    rrns = [rrn for _, rrn in host.received]
    assert len(stans) == 70
    assert len(set(stans)) == len(stans), "a STAN was reused"
    assert all(rrns) and len(set(rrns)) == len(rrns), "an RRN was reused"

