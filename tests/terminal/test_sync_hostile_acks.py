"""Hostile acks on the terminal's real SQLite outbox (#17 items 8-9): a lone surrogate, deep
nesting or a huge integer in an ack settles nothing and crashes nothing — through the worker
and its links, as the platform's answer or the broker hands them over."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_sync.ack_binding import SentLog
from edge_sync.fake_transport import FakeReceiver
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.messages import Ack, Envelope, build_ack
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox

TERMINAL = SoftwareSigner.generate()
PLATFORM = SoftwareSigner.generate()
TERMINAL_ID = "ETK00001"
NOW = 1_800_000_000.0
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "etika.db")
    yield opened
    opened.close()


def outbox_rows(store: Store) -> list[tuple[str, str, str, str | None]]:
    """Every outbox row: kind, state, payload, last error."""
    return store.connection.execute(
        "SELECT kind, state, payload, last_error FROM outbox ORDER BY id").fetchall()


def worker(outbox: SqliteOutbox, transport: object) -> OutboxWorker:
    return OutboxWorker(outbox, {"platform": transport}, TERMINAL,  # type: ignore[dict-item]
                        WorkerSettings(terminal_id=TERMINAL_ID, batch_size=5, max_in_flight=5),
                        clock=lambda: NOW)


def signed_ack_json(message_id: str, seq: int) -> dict[str, object]:
    return json.loads(build_ack(PLATFORM, terminal_id=TERMINAL_ID, destination="platform",
                                message_id=message_id, seq=seq, status="accepted").to_json())


def hostile(ack: dict[str, object], how: str) -> bytes:
    """``ack`` (signed) with one hostile field, as JSON text a broker or server carries."""
    if how == "surrogate":
        return json.dumps({**ack, "reason": "\udfff"}).encode()  # ASCII, "\\udfff"
    text = json.dumps(ack)[:-1]
    return (text + (f', "reason": {DEEP}}}' if how == "deep" else f', "seq": {"9" * 5000}}}')
            ).encode()


@pytest.mark.parametrize("how", ["surrogate", "deep", "huge integer"])
async def test_a_hostile_https_answer_settles_nothing(store: Store, how: str) -> None:
    """The platform's HTTPS answer with a lone surrogate, deep nesting or a huge integer in
    an ack: the link reports a failed delivery (the project's TransportError, counted by the
    worker), the row goes back to pending and no ack settles it."""
    outbox = SqliteOutbox(store)
    message_id = outbox.enqueue("platform", "transaction", {"n": 1}, "txn-1", NOW)

    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)["messages"][0]
        ack = signed_ack_json(sent["message_id"], sent["seq"])
        return httpx.Response(200, content=b'{"acks": [' + hostile(ack, how) + b"]}")

    settings = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url="https://platform.test",
                                 platform_public_key=PLATFORM.public_key_pem())
    async with HttpsTransport(settings, transport=httpx.MockTransport(answer)) as https:
        report = await worker(outbox, https).drain()
    assert report.delivered == 0 and report.dead == 0
    assert any("not an ack batch" in error for error in report.errors), report.errors
    [(kind, state, _, last_error)] = outbox_rows(store)
    assert (kind, state) == ("transaction", "pending")
    assert last_error is not None and "not an ack batch" in last_error
    assert message_id


@pytest.mark.parametrize("how", ["surrogate", "deep", "huge integer"])
async def test_a_hostile_ack_on_the_broker_settles_nothing(how: str) -> None:
    """The same acks on the MQTT ack topic: refused and counted, nothing settled."""
    message_id = "8a4f1c1e-4a39-4d36-9b44-8d0c4bd1f3a1"
    sent = SentLog()
    sent.sent(message_id, 5)
    settled: list[Ack] = []
    link = MqttTransport(MqttLinkSettings(terminal_id=TERMINAL_ID,
                                          platform_public_key=PLATFORM.public_key_pem()),
                         on_late_ack=settled.append, sent_log=sent)
    await link._dispatch(f"etika/v1/t/{TERMINAL_ID}/ack",
                         hostile(signed_ack_json(message_id, 5), how))
    assert settled == []
    assert link.refused_acks == 1
    assert len(sent) == 1  # still waiting for its answer


class RejectingReceiver(FakeReceiver):
    """A receiver (a PSP connector, say) that refuses with a reason quoting hostile text."""

    def judge(self, envelope: Envelope) -> Ack | None:
        if envelope.kind != "transaction":
            return super().judge(envelope)  # the alert about it goes through
        return Ack(message_id=envelope.message_id, status="rejected",
                   reason="card \udfff\x00 refused " + "x" * 2000)


async def test_a_rejection_whose_reason_holds_a_lone_surrogate_is_stored(store: Store) -> None:
    """A rejecting ack whose reason holds a lone surrogate and a NUL dead-letters the row
    with a storable reason (described, not echoed) and queues a storable alert."""
    outbox = SqliteOutbox(store)
    outbox.enqueue("platform", "transaction", {"n": 1}, "txn-1", NOW)
    report = await worker(outbox, RejectingReceiver(TERMINAL.public_key_pem())).drain()
    assert report.dead == 1
    rows = outbox_rows(store)
    dead = [r for r in rows if r[0] == "transaction"]
    alerts = [json.loads(r[2]) for r in rows if r[0] == "alert"]
    assert [r[1] for r in dead] == ["dead"]
    assert dead[0][3] is not None and "card \ufffd? refused" in dead[0][3]
    assert [a["alert"] for a in alerts] == ["dead_letter"]
    assert "\udfff" not in alerts[0]["reason"] and "\x00" not in alerts[0]["reason"]
