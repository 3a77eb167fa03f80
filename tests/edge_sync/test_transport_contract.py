"""The Transport rules, checked on the in-process FakeReceiver, on MQTT through Mosquitto and
on HTTPS to the real platform.

Each test runs against :class:`edge_sync.fake_transport.FakeReceiver`, against
:class:`edge_sync.mqtt.MqttTransport` talking to a real Mosquitto started for the test
(``tests/fixtures/mosquitto.py``, marker ``network``) with the acking receiver of
``tests/integration/sync_receiver.py`` at the far end, and against
:class:`edge_sync.https.HttpsTransport` talking to a real ``etika platform serve`` over TLS
with client certificates on 127.0.0.1 (a free port, stopped by PID). The far ends validate,
verify and deduplicate the way the platform does, so one set of checks holds for every link:
an envelope whose signature does not verify gets no ack at all (anyone could have sent it,
so an answer must not make the terminal drop the message whose id it quotes), and a verified
one that reuses a committed message id with other content is ``rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from edge_sync import pki as test_pki_module
from edge_sync.errors import TransportError
from edge_sync.fake_transport import FakeReceiver
from edge_sync.https import HttpsLinkSettings
from edge_sync.messages import REUSED_ID_REASON, Ack, Envelope, build_envelope
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport

TERMINAL_ID = "ETK00001"
SIGNER = SoftwareSigner.generate()
ACK_WAIT_S = 10.0  # every ack comes back well within it; only a lost ack waits it out
LOST_ACK_WAIT_S = 1.0


@dataclass
class Harness:
    """A transport, what its far end committed, and the hands that break the link."""

    transport: Transport
    committed: Callable[[], list[str]]
    lose_ack_of: Callable[[str], None]
    link_down: Callable[[], Awaitable[None]]


def _envelopes(count: int, signer: SoftwareSigner = SIGNER, first_seq: int = 1,
               message_id: str | None = None) -> list[Envelope]:
    # A status report: a kind every far end books as it is (the platform would refuse a
    # transaction payload that is not a whole payment).
    return [
        build_envelope(signer, terminal_id=TERMINAL_ID, kind="status", seq=seq,
                       idempotency_key=f"status-{seq}", payload={"backlog": {"platform": seq}},
                       message_id=message_id)
        for seq in range(first_seq, first_seq + count)
    ]


REPO = Path(__file__).resolve().parents[2]


class AckLosingTransport(httpx.AsyncBaseTransport):
    """The TLS link to the platform, losing on the way back the acks of the ids in ``lose``
    (the platform committed them; the answer that says so never arrives whole)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.lose: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not self.lose or response.status_code != 200:
            return response
        body = json.loads(await response.aread())
        kept = [ack for ack in body["acks"] if ack["message_id"] not in self.lose]
        self.lose -= {ack["message_id"] for ack in body["acks"]}
        return httpx.Response(200, json={**body, "acks": kept})

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class PlatformProcess:
    """``etika platform serve`` over HTTPS only, with the terminal's signing key registered."""

    url: str
    database: Path
    public_key_pem: bytes
    process: subprocess.Popen[bytes]

    def committed(self) -> list[str]:
        """Message ids the platform stored for the terminal, in sequence order."""
        from edge_sync.platform.storage import open_storage

        storage = open_storage(str(self.database))
        try:
            rows = storage.messages(TERMINAL_ID, limit=1000)
        finally:
            storage.close()
        return [row["envelope"]["message_id"] for row in reversed(rows)]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


def _platform_cli(data: Path, *args: str) -> str:
    from terminal.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--data-dir", str(data), "platform", *args]) == 0
    return out.getvalue()


@contextlib.contextmanager
def https_platform(pki: test_pki_module.TestPki, directory: Path) -> Iterator[PlatformProcess]:
    """A platform serving HTTPS on a free loopback port, client certificates required."""
    from tests.fixtures.mosquitto import free_port

    data, database = directory / "platform-data", directory / "platform.db"
    key_file = directory / "terminal.pub.pem"
    key_file.write_bytes(SIGNER.public_key_pem())
    _platform_cli(data, "register-terminal", "--database", str(database),
                  "--terminal-id", TERMINAL_ID, "--public-key", str(key_file))
    # Its own process: SoftHSM2 keeps the first token directory a process loaded, so an
    # in-process call would look for this platform's token in another test's directory.
    public_key = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(data), "platform", "key"],
        cwd=REPO, capture_output=True, check=True).stdout
    port, log = free_port(), directory / "platform.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(data), "platform",
         "serve", "--no-mqtt", "--database", str(database), "--http-port", str(port),
         "--https-cert", str(pki.platform_pem), "--https-key", str(pki.platform_key),
         "--https-client-ca", str(pki.ca_pem)],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    platform = PlatformProcess(f"https://127.0.0.1:{port}", database, public_key, process)
    try:
        link = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url=platform.url,
                                 ca_file=pki.ca_pem, cert_file=pki.terminal_pem,
                                 key_file=pki.terminal_key)
        deadline = time.monotonic() + 30
        while True:  # a guard against a platform that never comes up, not a timing check
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            try:
                with httpx.Client(verify=link.ssl_context()) as http:
                    if http.get(f"{platform.url}/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"platform never answered: {log.read_text()}") from None
                time.sleep(0.05)
        yield platform
    finally:
        platform.stop()


@pytest.fixture(params=["fake", pytest.param("mqtt", marks=pytest.mark.network),
                        pytest.param("https", marks=pytest.mark.network)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "fake":
        fake = FakeReceiver(SIGNER.public_key_pem())

        async def fake_down() -> None:
            fake.fail_next_calls = 1

        yield Harness(fake, lambda: [e.message_id for e in fake.committed],
                      fake.lose_ack_once.add, fake_down)
        return
    if request.param == "https":
        from edge_sync.https import HttpsTransport

        pki = request.getfixturevalue("test_pki")
        with https_platform(pki, request.getfixturevalue("tmp_path")) as platform:
            link = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url=platform.url,
                                     ca_file=pki.ca_pem, cert_file=pki.terminal_pem,
                                     key_file=pki.terminal_key,
                                     platform_public_key=platform.public_key_pem)
            losing = AckLosingTransport(httpx.AsyncHTTPTransport(verify=link.ssl_context()))

            async def platform_dies() -> None:
                platform.stop()

            async with HttpsTransport(link, transport=losing) as https:
                yield Harness(https, platform.committed, losing.lose.add, platform_dies)
        return
    from edge_sync.mqtt import MqttTransport
    from tests.integration.sync_receiver import PLATFORM_KEY, AckingReceiver

    @dataclass
    class LosingReceiver(AckingReceiver):
        """Commits every message, but the acks of the ids in ``lose`` never leave."""

        lose: set[str] = field(default_factory=set)

        def judge(self, terminal_id: str, raw: bytes) -> Ack | None:
            ack = super().judge(terminal_id, raw)
            if ack is not None and ack.message_id in self.lose:
                self.lose.discard(ack.message_id)
                return None
            return ack

    broker = request.getfixturevalue("mosquitto")
    settings = broker.terminal_link(TERMINAL_ID, platform_public_key=PLATFORM_KEY.public_key_pem())
    receiver = LosingReceiver(broker.host, broker.platform_port, SIGNER.public_key_pem(),
                              tls=broker.client_files("etika-platform"))

    async def broker_dies() -> None:
        broker.kill()
        # A guard against a hang, not a timing check: the next worker pass after a crash
        # finds the client disconnected too.
        async with asyncio.timeout(10):
            while transport.connected:
                await asyncio.sleep(0.02)

    with receiver:
        async with MqttTransport(settings) as transport:
            assert await transport.wait_connected(10), transport.last_error
            yield Harness(transport, lambda: list(receiver.committed), receiver.lose.add,
                          broker_dies)


def test_implements_the_protocol(harness: Harness) -> None:
    """Both links satisfy edge_sync.transport.Transport and have a name."""
    assert isinstance(harness.transport, Transport)
    assert harness.transport.name


async def test_ordered_batch_is_acked_by_message_id(harness: Harness) -> None:
    """A batch comes back as one accepted ack per message id, committed in batch order."""
    batch = _envelopes(5)
    acks = await harness.transport.deliver(batch, ACK_WAIT_S)
    ids = [e.message_id for e in batch]
    assert sorted(acks) == sorted(ids)
    assert all(acks[m].message_id == m and acks[m].status == "accepted" for m in ids)
    assert all(ack.delivered for ack in acks.values())
    assert harness.committed() == ids


async def test_redelivery_is_acked_as_duplicate(harness: Harness) -> None:
    """Sending a batch again gives duplicate acks (delivered) and commits nothing twice."""
    batch = _envelopes(2)
    await harness.transport.deliver(batch, ACK_WAIT_S)
    again = await harness.transport.deliver(batch, ACK_WAIT_S)
    assert {m: a.status for m, a in again.items()} == {e.message_id: "duplicate" for e in batch}
    assert all(ack.delivered for ack in again.values())
    assert harness.committed() == [e.message_id for e in batch]


async def test_bad_signature_gets_no_ack(harness: Harness) -> None:
    """An envelope signed with a key the far end does not hold gets no ack at all (neither
    delivered nor rejected: anyone could have sent it) and is not committed; the genuine
    one beside it is accepted."""
    forged, genuine = (*_envelopes(1, signer=SoftwareSigner.generate()), *_envelopes(1, first_seq=2))
    acks = await harness.transport.deliver([forged, genuine], ACK_WAIT_S)
    assert set(acks) == {genuine.message_id}
    assert acks[genuine.message_id].status == "accepted"  # the link itself worked
    assert harness.committed() == [genuine.message_id]


async def test_reused_message_id_is_rejected(harness: Harness) -> None:
    """A verified envelope that reuses a committed message id with other content is
    ``rejected`` with the reason (never ``duplicate``, which would settle it), and the
    message first committed under that id stays as it was."""
    (first,) = _envelopes(1)
    (other,) = _envelopes(1, first_seq=2, message_id=first.message_id)
    await harness.transport.deliver([first], ACK_WAIT_S)
    acks = await harness.transport.deliver([other], ACK_WAIT_S)
    ack = acks[first.message_id]
    assert ack.status == "rejected" and not ack.delivered
    assert ack.reason == REUSED_ID_REASON
    assert harness.committed() == [first.message_id]


async def test_a_lost_ack_is_absent_not_an_error(harness: Harness) -> None:
    """An ack that never arrives is missing from the result; the others are there."""
    batch = _envelopes(3)
    harness.lose_ack_of(batch[1].message_id)
    acks = await harness.transport.deliver(batch, LOST_ACK_WAIT_S)
    assert set(acks) == {batch[0].message_id, batch[2].message_id}
    assert harness.committed() == [e.message_id for e in batch]


async def test_empty_batch_gives_no_acks(harness: Harness) -> None:
    """Delivering nothing returns an empty dict."""
    assert await harness.transport.deliver([], LOST_ACK_WAIT_S) == {}


async def test_unavailable_link_raises_transport_error(harness: Harness) -> None:
    """With the link down (the broker gone), deliver raises TransportError, not a raw error."""
    await harness.link_down()
    with pytest.raises(TransportError):
        await harness.transport.deliver(_envelopes(1), LOST_ACK_WAIT_S)
