"""The terminal's sync under hostile JSON (#17 items 8-9): acks, ack batches, downlinks,
HTTPS answers and message batches, raw or signed by the platform key, holding lone
surrogates, deep nesting, huge integers and wrong types. Each ends in the project's own
refusal and changes nothing; none raises anything else.

The atheris harness ``fuzz/fuzz_sync.py`` covers the same entry points from raw bytes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_sync.ack_binding import SentLog
from edge_sync.bounded_json import canonical_json, decode_json
from edge_sync.downlink import DownlinkHandler, MemoryDownlinkHooks
from edge_sync.errors import MessageFormatError, SignatureError, TransportError
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import (
    DOWNLINK_KINDS,
    Ack,
    MessageBatch,
    build_envelope,
    parse_envelope,
    utc_now_iso,
    verify_envelope,
)
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.signing import SoftwareSigner
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PLATFORM = SoftwareSigner.generate()
TERMINAL = SoftwareSigner.generate()
TERMINAL_ID = "ETK00001"
ACK_TOPIC = f"etika/v1/t/{TERMINAL_ID}/ack"
MID = "8a4f1c1e-4a39-4d36-9b44-8d0c4bd1f3a1"

#: Text with every code point, lone surrogates included (hypothesis leaves them out unless
#: told), plus the few strings the sync names.
TEXT = st.text(st.characters(exclude_categories=()), max_size=20) | st.sampled_from(
    [MID, TERMINAL_ID, "platform", "accepted", "rejected", "fx", "config", "\udfff", "\x00"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**40)
           | st.floats(allow_nan=False, allow_infinity=False) | TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=20)
#: Nesting far past every bound (the decoders' MAX_DEPTH, pydantic's, CPython's recursion).
DEEP = st.integers(min_value=30, max_value=6000).map(lambda n: "[" * n + "]" * n)
#: An integer literal past CPython's 4300-digit conversion limit.
HUGE = st.integers(min_value=4301, max_value=6000).map(lambda n: "9" * n)
ACK_FIELDS = ["v", "message_id", "status", "reason", "terminal_id", "destination", "seq",
              "issued_at", "acks", "signature"]
DOWNLINK_FIELDS = ["v", "message_id", "terminal_id", "kind", "seq", "issued_at",
                   "expires_at", "payload", "signature"]


def _text(value: object) -> str:
    """JSON text as a broker carries it: ASCII, a lone surrogate as a ``\\udfff`` escape."""
    return json.dumps(value)


def hostile_json(fields: list[str]) -> st.SearchStrategy[bytes]:
    """JSON text: arbitrary values, or an object of the message's fields with arbitrary
    values, with deep nesting or a huge integer spliced in as one field's raw text."""
    obj = st.dictionaries(st.sampled_from(fields) | TEXT, JSON, max_size=6)
    plain = (JSON | obj).map(_text)
    spliced = st.tuples(obj, st.sampled_from(fields), DEEP | HUGE).map(
        lambda t: _text(t[0])[:-1].rstrip() + ("," if t[0] else "") + f'"{t[1]}": {t[2]}}}')
    return (plain | spliced).map(lambda s: s.encode("utf-8", "surrogatepass"))


def signed(unsigned: dict[str, Any]) -> bytes | None:
    """``unsigned`` signed by the platform key, or ``None`` when canonical JSON refuses it
    (with the project's error: that refusal is part of what is checked)."""
    try:
        material = canonical_json(unsigned)
    except MessageFormatError:
        return None
    signature = base64.b64encode(PLATFORM.sign(material)).decode("ascii")
    return _text({**unsigned, "signature": signature}).encode()


def ack_fields() -> dict[str, Any]:
    return {"v": 1, "message_id": MID, "status": "accepted", "reason": None,
            "terminal_id": TERMINAL_ID, "destination": "platform", "seq": 5,
            "issued_at": utc_now_iso()}


def downlink_fields(kind: str, payload: object) -> dict[str, Any]:
    return {"v": 1, "message_id": str(uuid.uuid4()), "terminal_id": TERMINAL_ID, "kind": kind,
            "seq": 1, "issued_at": utc_now_iso(), "expires_at": "2999-01-01T00:00:00Z",
            "payload": payload}


class Link:
    """The MQTT link's ack handling, with one message (MID, seq 5) in flight."""

    def __init__(self) -> None:
        self.settled: list[Ack] = []
        sent = SentLog()
        sent.sent(MID, 5)
        self.transport = MqttTransport(
            MqttLinkSettings(terminal_id=TERMINAL_ID,
                             platform_public_key=PLATFORM.public_key_pem()),
            on_late_ack=self.settled.append, sent_log=sent)

    def receive(self, raw: bytes) -> None:
        asyncio.run(self.transport._dispatch(ACK_TOPIC, raw))


async def _inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def handle_downlink(kind: str, raw: bytes) -> tuple[str, MemoryDownlinkHooks, MemoryOutbox]:
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(PLATFORM.public_key_pem(), hooks, outbox,
                              terminal_id=TERMINAL_ID, run_blocking=_inline)
    result = asyncio.run(handler.handle(kind, raw))
    if result.outcome == "rejected":  # only the refusal itself may be recorded
        assert (hooks.configs, hooks.blacklists, hooks.crls, hooks.fx, hooks.rotations) == (
            [], [], [], [], 0)
        assert all(outcome == "rejected" for outcome, _ in hooks.log.values())
        for stored in outbox.rows():  # the refusal alert is signable
            canonical_json(stored.row.payload)
    return result.outcome, hooks, outbox


@FUZZ
@given(raw=hostile_json(ACK_FIELDS))
def test_any_ack_bytes_settle_nothing(raw: bytes) -> None:
    """Ack bytes nobody signed are refused and counted; nothing is settled."""
    link = Link()
    link.receive(raw)
    assert link.settled == []
    assert link.transport.refused_acks == 1


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(ACK_FIELDS[:-1]) | TEXT, JSON, max_size=4),
       batch=st.booleans())
def test_signed_acks_with_any_fields_are_settled_or_refused(fields: dict[str, Any],
                                                             batch: bool) -> None:
    """A correctly signed ack or ack batch with any field values settles the message only
    when every field is right, and is otherwise refused with the project's error."""
    if batch:
        item = {"message_id": MID, "seq": 5, "status": "accepted"}
        unsigned = {"v": 1, "terminal_id": TERMINAL_ID, "destination": "platform",
                    "issued_at": utc_now_iso(), "acks": [item], **fields}
    else:
        unsigned = {**ack_fields(), **fields}
    raw = signed(unsigned)
    if raw is None:
        return
    link = Link()
    link.receive(raw)
    assert link.settled or link.transport.refused_acks >= 1
    for ack in link.settled:
        assert ack.message_id == MID and ack.seq == 5
        json.dumps(ack.wire(), ensure_ascii=False).encode()  # storable as settled


@FUZZ
@given(kind=st.sampled_from([*DOWNLINK_KINDS, "firmware", "\udfff"]),
       raw=hostile_json(DOWNLINK_FIELDS))
def test_any_downlink_bytes_are_refused_and_change_nothing(kind: str, raw: bytes) -> None:
    """Downlink bytes nobody signed are refused with an alert that can be stored and signed;
    nothing is applied or recorded."""
    outcome, hooks, outbox = handle_downlink(kind, raw)
    assert outcome == "rejected"
    assert hooks.log == {} and hooks.sequences == {}
    assert [stored.row.payload["alert"] for stored in outbox.rows()] == ["downlink_rejected"]


@FUZZ
@given(kind=st.sampled_from(DOWNLINK_KINDS),
       fields=st.dictionaries(st.sampled_from(DOWNLINK_FIELDS[:-1]) | TEXT, JSON, max_size=3),
       payload=JSON | st.dictionaries(TEXT, JSON, max_size=4))
def test_signed_downlinks_with_any_content_are_applied_or_refused(
        kind: str, fields: dict[str, Any], payload: object) -> None:
    """A downlink the platform signed, with any envelope fields or any payload, is applied
    or refused (and then changes nothing); the handler never raises."""
    unsigned = {**downlink_fields(kind, payload), **fields}
    raw = signed(unsigned)
    if raw is None:
        return
    topic_kind = unsigned["kind"] if isinstance(unsigned["kind"], str) else kind
    outcome, _, _ = handle_downlink(topic_kind, raw)
    assert outcome in ("applied", "rejected")


@FUZZ
@given(raw=hostile_json(["acks", "messages"]), status=st.sampled_from([200, 400, 503]))
def test_any_https_answer_settles_nothing_or_is_a_transport_error(raw: bytes,
                                                                   status: int) -> None:
    """Whatever the HTTPS answer holds, the link returns no ack it cannot verify, or says
    the link failed (TransportError: the batch is sent again)."""
    envelope = build_envelope(TERMINAL, terminal_id=TERMINAL_ID, kind="transaction", seq=5,
                              idempotency_key="k", payload={}, message_id=MID)
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=raw))
    https = HttpsTransport(HttpsLinkSettings(terminal_id=TERMINAL_ID,
                                             base_url="https://platform.test",
                                             platform_public_key=PLATFORM.public_key_pem()),
                           transport=transport)

    async def deliver() -> dict[str, Ack]:
        async with https:
            return await https.deliver([envelope], timeout=5)

    try:
        acks = asyncio.run(deliver())
    except TransportError:
        return
    assert acks == {}


@FUZZ
@given(raw=hostile_json(["messages"]), messages=st.lists(JSON, max_size=3))
def test_message_batches_parse_or_are_refused(raw: bytes, messages: list[Any]) -> None:
    """A message batch body, and each message in it, parses or is refused with the
    project's error; a message that parses verifies or is refused."""
    for body in (raw, _text({"messages": messages}).encode()):
        try:
            batch = MessageBatch.model_validate(decode_json(body, "message batch"))
        except (MessageFormatError, ValidationError):  # the body, or the batch's shape
            continue
        for item in batch.messages:
            with pytest.raises((MessageFormatError, SignatureError)):
                verify_envelope(parse_envelope(item), TERMINAL.public_key_pem())


PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"
#: A valid payload of each kind; the test replaces values along these paths.
TEMPLATES: dict[str, tuple[dict[str, Any], list[tuple[Any, ...]]]] = {
    "fx": ({"base": "MAD", "as_of": "2026-11-22T00:00:00Z", "rates": {"EUR": "10.85"}},
           [("base",), ("as_of",), ("rates",), ("rates", "EUR")]),
    "blacklist": ({"version": 7, "mode": "add",
                   "entries": [{"type": "bin", "value": "476173", "reason": "fraud"}]},
                  [("version",), ("mode",), ("entries",), ("entries", 0, "type"),
                   ("entries", 0, "value"), ("entries", 0, "reason")]),
    "crl": ({"version": 3, "mode": "add",
             "entries": [{"rid": "A000000003", "index": "92", "serial": "7E5E01"}]},
            [("version",), ("mode",), ("entries", 0, "rid"), ("entries", 0, "serial")]),
    "config": ({"version": "2", "files": {"sync.toml": (PROFILE / "sync.toml").read_text()}},
               [("version",), ("files",), ("files", "sync.toml")]),
    "cmd": ({"command": "report_diagnostics", "args": {}}, [("command",), ("args",)]),
}
#: Near misses a regex or a store is likely to meet: a trailing newline, NUL, empty, long.
NEAR = st.sampled_from(["EUR\n", "476173\n", "MAD\x00", "", "9" * 300, "\udfff", "add\n",
                        "x = " + "[" * 3000, "[sync]\nmqtt_port = 99999999999999999999\n"])


def _replace(document: Any, path: tuple[Any, ...], value: object) -> None:
    """Put ``value`` at ``path``, unless an earlier replacement took the path away."""
    for step in path[:-1]:
        if isinstance(document, dict) and step in document:
            document = document[step]
        elif isinstance(document, list) and isinstance(step, int) and step < len(document):
            document = document[step]
        else:
            return
    if isinstance(document, dict) or (isinstance(document, list) and isinstance(path[-1], int)
                                      and path[-1] < len(document)):
        document[path[-1]] = value


def _state(store: Store, profile: Path) -> tuple[object, ...]:
    """What a downlink can change: profile files, blacklist, FX rates, outbox rows."""
    conn = store.connection
    return ({f.name: f.read_text() for f in sorted(profile.rglob("*.toml"))},
            conn.execute("SELECT * FROM blacklist ORDER BY value").fetchall(),
            FleetStore(store).fx_rates(),
            conn.execute("SELECT kind FROM outbox WHERE kind != 'alert'").fetchall())


@FUZZ
@given(kind=st.sampled_from(sorted(TEMPLATES)), data=st.data())
def test_signed_payloads_on_the_real_store_are_applied_or_refused(
        kind: str, data: st.DataObject) -> None:
    """A downlink the platform signed, its payload's values replaced by anything (near
    misses included), through the real SQLite hooks and profile: applied, or refused with
    nothing changed and a stored alert; never an exception."""
    template, paths = TEMPLATES[kind]
    payload = copy.deepcopy(template)
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        _replace(payload, path, data.draw(NEAR | JSON))
    raw = signed(downlink_fields(kind, payload))
    if raw is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile"
        shutil.copytree(PROFILE, profile)
        store = Store.open(Path(tmp) / "etika.db")
        try:
            handler = DownlinkHandler(
                PLATFORM.public_key_pem(), TerminalDownlinkHooks(FleetStore(store), profile),
                SqliteOutbox(store), terminal_id=TERMINAL_ID, run_blocking=_inline)
            before = _state(store, profile)
            result = asyncio.run(handler.handle(kind, raw))
            if result.outcome == "rejected":
                assert _state(store, profile) == before
                alerts = store.connection.execute(
                    "SELECT payload FROM outbox WHERE kind = 'alert'").fetchall()
                assert [json.loads(a[0])["alert"] for a in alerts] == ["downlink_rejected"]
            else:
                assert result.outcome == "applied"
        finally:
            store.close()
