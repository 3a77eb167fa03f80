"""The HTTPS fallback transport: request shape, ack parsing and error mapping."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import httpx
import pytest

from edge_sync.errors import TransportError
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import Ack, AckBatch, build_ack, build_envelope
from edge_sync.platform.ingest import Ingestor
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings

SIGNER = SoftwareSigner.generate()
PLATFORM = SoftwareSigner.generate()
SETTINGS = HttpsLinkSettings(terminal_id="ETK00001", base_url="https://platform.test/", max_batch=2,
                             platform_public_key=PLATFORM.public_key_pem())


def accepted(message_id: str, terminal_id: str = "ETK00001", signer: SoftwareSigner = PLATFORM,
             destination: str = "platform", seq: int = 0, issued_at: str | None = None) -> Ack:
    return build_ack(signer, terminal_id=terminal_id, destination=destination,
                     message_id=message_id, seq=seq, status="accepted", issued_at=issued_at)


def envelopes(n: int) -> list:  # type: ignore[type-arg]
    return [
        build_envelope(SIGNER, terminal_id="ETK00001", kind="transaction", seq=i,
                       idempotency_key=f"k{i}", payload={"i": i})
        for i in range(n)
    ]


async def test_posts_batches_in_order_and_reads_acks() -> None:
    """Envelopes go in order as {"messages": [...]}, split by max_batch; acks come back by id."""
    bodies: list[dict] = []  # type: ignore[type-arg]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/terminals/ETK00001/messages"
        body = json.loads(request.content)
        bodies.append(body)
        acks = [accepted(m["message_id"], seq=m["seq"]) for m in body["messages"]]
        return httpx.Response(200, content=AckBatch(acks=acks).to_json())

    batch = envelopes(3)
    async with HttpsTransport(SETTINGS, transport=httpx.MockTransport(handler)) as https:
        acks = await https.deliver(batch, timeout=5)
    assert [len(b["messages"]) for b in bodies] == [2, 1]
    assert [m["seq"] for b in bodies for m in b["messages"]] == [0, 1, 2]
    assert set(acks) == {e.message_id for e in batch}


@pytest.mark.parametrize(
    ("failure",                                                   "match"),
    [
        (httpx.ConnectError("refused"),                             "failed"),
        (httpx.ReadTimeout("slow"),                                 "timed out"),
        (httpx.Response(503, text="db down"),                       "503"),
        (httpx.Response(400, text="bad"),                           "contract mismatch"),
        (httpx.Response(200, text="not json"),                      "not an ack batch"),
    ],
)
async def test_errors_map_to_transport_error(failure: object, match: str) -> None:
    """httpx errors, non-200 answers and garbage answers all become TransportError."""

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(failure, Exception):
            raise failure
        assert isinstance(failure, httpx.Response)
        return failure

    async with HttpsTransport(SETTINGS, transport=httpx.MockTransport(handler)) as https:
        with pytest.raises(TransportError, match=match):
            await https.deliver(envelopes(1), timeout=5)


#: Every exception class httpx exports, read from the module so a new one cannot hide.
HTTPX_EXCEPTIONS = frozenset(
    cls for _, cls in inspect.getmembers(httpx, inspect.isclass) if issubclass(cls, Exception)
)
#: Raised by httpx only for a caller's mistake (bad URL, cookies, stream misuse); a POST of
#: bytes to the configured URL cannot raise them, so the transport does not map them.
CALLER_MISTAKES = frozenset({
    httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError, httpx.StreamConsumed,
    httpx.StreamClosed, httpx.ResponseNotRead, httpx.RequestNotRead,
})


def test_every_httpx_exception_is_classified() -> None:
    """Each httpx exception is an HTTPError (mapped below) or a known caller mistake."""
    assert {c for c in HTTPX_EXCEPTIONS if not issubclass(c, httpx.HTTPError)} == CALLER_MISTAKES


@pytest.mark.parametrize(
    "cls",
    sorted((c for c in HTTPX_EXCEPTIONS if issubclass(c, httpx.HTTPError)), key=lambda c: c.__name__),
    ids=lambda c: c.__name__,
)
async def test_every_httpx_error_from_the_link_is_a_transport_error(cls: type) -> None:
    """Whatever httpx error the link raises, deliver() raises TransportError from it."""

    def handler(request: httpx.Request) -> httpx.Response:
        if issubclass(cls, httpx.HTTPStatusError):
            raise cls("boom", request=request, response=httpx.Response(500, request=request))
        if issubclass(cls, httpx.RequestError):
            raise cls("boom", request=request)
        raise cls("boom")

    async with HttpsTransport(SETTINGS, transport=httpx.MockTransport(handler)) as https:
        with pytest.raises(TransportError, match=r"platform\.test") as caught:
            await https.deliver(envelopes(1), timeout=5)
    assert type(caught.value.__cause__) is cls


async def test_partial_failure_keeps_what_was_acked() -> None:
    """When a later request of a split batch fails, acks already received are returned."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise httpx.ConnectError("gone")
        body = json.loads(request.content)
        acks = [accepted(m["message_id"], seq=m["seq"]) for m in body["messages"]]
        return httpx.Response(200, content=AckBatch(acks=acks).to_json())

    async with HttpsTransport(SETTINGS, transport=httpx.MockTransport(handler)) as https:
        acks = await https.deliver(envelopes(3), timeout=5)
    assert len(acks) == 2


async def test_acks_that_are_not_the_platforms_for_this_batch_settle_nothing() -> None:
    """Unsigned, forged, misdirected, reordered (another seq) or replayed (issued before
    the request) acks and acks for messages not sent are dropped and counted; only the platform's own ack for a message of the batch counts."""
    batch = envelopes(1)
    mid = batch[0].message_id

    def handler(request: httpx.Request) -> httpx.Response:
        acks = [Ack(message_id=mid, status="accepted"), accepted(mid, signer=SIGNER),
                accepted(mid, terminal_id="ETK00002"), accepted(mid, destination="pop"),
                accepted("3b1f0c2e-8d4a-4f6b-9c1d-2e5a7b9c0d1e"),
                accepted(mid, seq=7),  # another seq under this id: reordered
                accepted(mid, issued_at="2020-01-01T00:00:00.000Z")]  # replayed
        return httpx.Response(200, content=AckBatch(acks=acks).to_json())

    async with HttpsTransport(SETTINGS, transport=httpx.MockTransport(handler)) as https:
        assert await https.deliver(batch, timeout=5) == {}
        assert https.refused_acks == 7


def test_missing_tls_files_say_what_to_do(tmp_path: Path) -> None:
    """A missing CA file is a TransportError that points at scripts/setup."""
    settings = HttpsLinkSettings(terminal_id="T1", base_url="https://x", ca_file=tmp_path / "no.pem")
    with pytest.raises(TransportError, match="scripts/setup"):
        HttpsTransport(settings)


async def test_malformed_uplink_refused_by_the_platform_and_terminal_told_why(
    tmp_path: Path,
) -> None:
    """The platform's real HTTP API rejects a malformed transaction; the worker dead-letters
    it with the platform's reason and queues an alert; a good one is accepted."""
    from edge_sync.platform.api import create_app
    from edge_sync.platform.storage import SqliteStorage

    storage = SqliteStorage(tmp_path / "platform.db")
    storage.register_key("ETK00001", 1, SIGNER.public_key_pem().decode(), "2026-01-01T00:00:00Z")
    app = create_app(storage, Ingestor(storage, signer=PLATFORM))
    settings = HttpsLinkSettings(terminal_id="ETK00001", base_url="http://platform.test",
                                 platform_public_key=PLATFORM.public_key_pem())
    outbox = MemoryOutbox()
    good = outbox.enqueue("platform", "transaction",
                          {"amount_minor": 1500, "currency": "MAD"}, "txn-good", 1.0)
    bad = outbox.enqueue("platform", "transaction",
                         {"amount_minor": 1500, "currency": "MAD", "type": "bogus"}, "txn-bad", 1.0)
    async with HttpsTransport(settings, transport=httpx.ASGITransport(app=app)) as https:
        worker = OutboxWorker(outbox, {"platform": https}, SIGNER,
                              WorkerSettings(terminal_id="ETK00001", batch_size=10, max_in_flight=10))
        report = await worker.drain()
        worker.close()
    storage.close()
    assert (report.delivered, report.rejected) == (2, 1)  # the good one, then the alert
    assert outbox.state_of(good) == "delivered" and outbox.state_of(bad) == "dead"
    dead = next(r for r in outbox.rows() if r.row.message_id == bad)
    assert "payload.type" in (dead.last_error or "")
    alert = next(r for r in outbox.rows() if r.row.kind == "alert")
    assert "payload.type" in alert.row.payload["reason"]
    assert alert.state == "delivered"


@pytest.mark.network
async def test_failover_to_https_while_the_broker_is_down(tmp_path: Path) -> None:
    """With no broker listening, the worker delivers through HTTPS to the platform's API."""
    from edge_sync.mqtt import MqttLinkSettings, MqttTransport
    from edge_sync.platform.api import create_app
    from edge_sync.platform.storage import SqliteStorage
    from edge_sync.transport import FailoverTransport
    from tests.fixtures.mosquitto import free_port

    storage = SqliteStorage(tmp_path / "platform.db")
    storage.register_key("ETK00001", 1, SIGNER.public_key_pem().decode(), "2026-01-01T00:00:00Z")
    outbox = MemoryOutbox()
    ids = [outbox.enqueue("platform", "transaction", {"amount_minor": i, "currency": "MAD"},
                          f"t{i}", 1.0) for i in range(20)]
    link = MqttLinkSettings(terminal_id="ETK00001", port=free_port(), reconnect_min_s=0.05)
    https_settings = HttpsLinkSettings(terminal_id="ETK00001", base_url="http://platform.test",
                                       platform_public_key=PLATFORM.public_key_pem())
    app = create_app(storage, Ingestor(storage, signer=PLATFORM))
    async with (
        MqttTransport(link) as mqtt,
        HttpsTransport(https_settings, transport=httpx.ASGITransport(app=app)) as https,
    ):
        failover = FailoverTransport([mqtt, https])
        worker = OutboxWorker(outbox, {"platform": failover}, SIGNER,
                              WorkerSettings(terminal_id="ETK00001", batch_size=10,
                                             max_in_flight=10))
        report = await worker.drain()
        worker.close()
    assert report.delivered == 20 and failover.last_used == "https"
    assert all(outbox.state_of(m) == "delivered" for m in ids)
    assert storage.message_count("ETK00001") == 20
    storage.close()
