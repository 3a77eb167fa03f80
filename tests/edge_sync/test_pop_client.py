"""PoP records and the HTTPS client's edge: what it signs, and every failure mapped to PopError."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from edge_sync.errors import (
    PopError,
    PopRecordError,
    PopRejectedError,
    PopUnavailableError,
    PopUnknownRecordError,
)
from edge_sync.messages import canonical_json
from edge_sync.pop import (
    DEFAULT_AUDIENCE,
    MAX_BODY_BYTES,
    HttpsPopClient,
    PopClient,
    PopReceipt,
    PopRecord,
)
from edge_sync.pop_fake import InMemoryPopBackend
from edge_sync.signing import SoftwareSigner, verify_signature
from tests.fixtures.pop import RecordMaker

SIGNER = SoftwareSigner.generate()
VISA_TEST_PAN = "4761739001010010"


def client(handler: Callable[[httpx.Request], httpx.Response], terminal_id: str,
           timeout_s: float = 5.0) -> HttpsPopClient:
    return HttpsPopClient("http://pop.test", SIGNER, terminal_id, timeout_s=timeout_s,
                          transport=httpx.MockTransport(handler))


def test_both_implementations_satisfy_the_protocol() -> None:
    """HttpsPopClient and the fake are both PopClient (runtime-checkable Protocol)."""
    assert isinstance(InMemoryPopBackend(), PopClient)
    assert isinstance(HttpsPopClient("http://x", SIGNER, "T1", timeout_s=1), PopClient)


def test_payload_round_trips_and_is_canonical() -> None:
    """as_payload → JSON → from_payload gives the same record; the hash is of that payload."""
    record = RecordMaker().sale()
    again = PopRecord.from_payload(json.loads(json.dumps(record.as_payload())))
    assert again == record and again.content_hash() == record.content_hash()
    refund = RecordMaker().make("refund", refers_to=record.record_id)
    assert PopRecord.from_payload(refund.as_payload()).refers_to == record.record_id


@pytest.mark.parametrize(
    ("changes",                                    "field"),
    [
        ({"card_token": VISA_TEST_PAN},            "card_token"),
        ({"card_token": "short"},                  "card_token"),
        ({"kind": "payout"},                       "kind"),
        ({"amount_minor": -1},                     "amount_minor"),
        ({"amount_minor": 10**12},                 "amount_minor"),
        ({"currency": "mad"},                      "currency"),
        ({"created_at": "2026-12-03T10:00:00"},    "created_at"),
        ({"created_at": "yesterday"},              "created_at"),
        ({"sequence": -1},                         "sequence"),
        ({"terminal_id": "T/1"},                   "terminal_id"),
        ({"refers_to": uuid.uuid4()},              "refers_to"),
        ({"record_id": "not-a-uuid"},              "record_id"),
    ],
)
def test_malformed_records_are_refused_by_field(changes: dict[str, Any], field: str) -> None:
    """Each malformed field is a PopRecordError naming it; a PAN is never echoed."""
    with pytest.raises(PopRecordError, match=field) as caught:
        replace(RecordMaker().sale(), **changes)
    assert VISA_TEST_PAN not in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"record_id": str(uuid.uuid4())},
        {**RecordMaker().sale().as_payload(), "extra": 1},
        {**RecordMaker().sale().as_payload(), "payment_id": 7},
    ],
)
def test_malformed_payloads_are_record_errors(payload: Any) -> None:
    """from_payload refuses missing, extra or mistyped fields with PopRecordError."""
    with pytest.raises(PopRecordError):
        PopRecord.from_payload(payload)


async def test_every_request_is_signed_and_binds_terminal_audience_and_record() -> None:
    """The body carries op, audience, terminal and the record, signed over canonical JSON."""
    records = RecordMaker()
    record = records.sale()
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=PopReceipt(record.record_id, "pending").as_dict())

    async with client(handler, records.terminal_id) as pop:
        assert (await pop.submit(record)).status == "pending"
    body = seen[0]
    assert (body["op"], body["audience"], body["terminal_id"]) == (
        "submit", DEFAULT_AUDIENCE, records.terminal_id)
    assert body["record"] == record.as_payload()
    verify_signature(SIGNER.public_key_pem(), canonical_json(body),
                     base64.b64decode(body["signature"]))


async def test_a_record_of_another_terminal_is_not_sent() -> None:
    """The client refuses to submit a record whose terminal id is not its own."""
    async with client(lambda _: httpx.Response(500), "OTHER001") as pop:
        with pytest.raises(PopRecordError, match="terminal"):
            await pop.submit(RecordMaker().sale())


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


REQ = httpx.Request("POST", "http://pop.test")


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused", request=REQ),
        httpx.ConnectTimeout("slow", request=REQ),
        httpx.ReadTimeout("slow", request=REQ),
        httpx.ReadError("reset", request=REQ),
        httpx.WriteError("broken pipe", request=REQ),
        httpx.RemoteProtocolError("garbage", request=REQ),
        httpx.LocalProtocolError("bad", request=REQ),
        httpx.PoolTimeout("pool", request=REQ),
        httpx.ProxyError("proxy", request=REQ),
        httpx.UnsupportedProtocol("gopher", request=REQ),
        httpx.DecodingError("gzip", request=REQ),
        httpx.TooManyRedirects("loop", request=REQ),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_every_transport_failure_is_unavailable(failure: Exception) -> None:
    """Every httpx/OS failure becomes PopUnavailableError (retry later), nothing raw."""
    records = RecordMaker()
    async with client(_raise(failure), records.terminal_id) as pop:
        with pytest.raises(PopUnavailableError):
            await pop.submit(records.sale())


def _answer(code: int, content: bytes | None = None, json_body: Any = None
            ) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(code, content=content)
        return httpx.Response(code, json=json_body)
    return handler


@pytest.mark.parametrize(
    ("status", "body",                                                  "error"),
    [
        (500,      {"error": "boom", "reason": "internal"},             PopUnavailableError),
        (503,      {"error": "unavailable", "reason": "fault"},         PopUnavailableError),
        (429,      {"error": "slow down", "reason": "rate"},            PopUnavailableError),
        (408,      {},                                                  PopUnavailableError),
        (302,      {},                                                  PopUnavailableError),
        (200,      {"status": "confirmed"},                             PopUnavailableError),
        (200,      {"record_id": "x", "status": "confirmed"},           PopUnavailableError),
        (200,      {"record_id": str(uuid.uuid4()), "status": "done"},  PopUnavailableError),
        (200,      b"<html>not json</html>",                             PopUnavailableError),
        (200,      b"\xff\xfe\x00",                                      PopUnavailableError),
        (200,      b"[1, 2]",                                            PopUnavailableError),
        (200,      b"[" * 100_000 + b"]" * 100_000,                      PopUnavailableError),
        (200,      b'{"record_id": ' + b"9" * 5000 + b"}",               PopUnavailableError),
        (409,      b'{"error": "conflict", "reason": "\\udfff\\u0000"}', PopRejectedError),
        (401,      {"error": "bad_signature", "reason": "bad signature"}, PopRejectedError),
        (403,      {"error": "redirected", "reason": "redirected"},     PopRejectedError),
        (409,      {"error": "conflict", "reason": "other content"},    PopRejectedError),
        (422,      b"not json",                                          PopRejectedError),
        (404,      {"error": "unknown_record", "reason": "no record"},  PopUnknownRecordError),
        (404,      {"error": "not_found", "reason": "no route"},        PopRejectedError),
    ],
)
async def test_every_answer_maps_to_a_receipt_or_a_pop_error(
    status: int, body: dict[str, Any] | bytes, error: type[PopError]
) -> None:
    """Answers that are not a receipt for this record are the right PopError leaf."""
    records = RecordMaker()
    handler = (_answer(status, content=body) if isinstance(body, bytes)
               else _answer(status, json_body=body))
    async with client(handler, records.terminal_id) as pop:
        with pytest.raises(error):
            await pop.status(uuid.uuid4())


@pytest.mark.parametrize(
    ("status", "body",                                                      "error"),
    [
        (200,      b"[" * 20000 + b"]" * 20000,                             PopUnavailableError),
        (500,      b"[" * 20000 + b"]" * 20000,                             PopUnavailableError),
        (404,      b"{" + b'"a":{' * 8000 + b"}" * 8001,                  PopRejectedError),
        (200,      {"status": "pending", "pop_reference": "\udfff"},        PopUnavailableError),
        (200,      {"status": "confirmed", "reason": "ok\x00"},             PopUnavailableError),
        (409,      {"error": "conflict", "reason": "\ud800 other content"}, PopRejectedError),
        (422,      b"bad\x00 answer",                                        PopRejectedError),
    ],
    ids=["deep-200", "deep-500", "deep-404", "surrogate-reference", "nul-reason",
         "surrogate-refusal", "nul-raw-refusal"],
)
async def test_a_hostile_answer_is_a_pop_error_that_can_be_stored(
    status: int, body: dict[str, Any] | bytes, error: type[PopError]
) -> None:
    """#17 items 8-9: deep nesting, a lone surrogate or NUL in a PoP answer is the right
    PopError leaf (never RecursionError), and its message is text SQLite can store."""
    records = RecordMaker()
    record_id = uuid.uuid4()
    if isinstance(body, dict):
        body = json.dumps({"record_id": str(record_id), **body}).encode()
    async with client(_answer(status, content=body), records.terminal_id) as pop:
        with pytest.raises(error) as caught:
            await pop.status(record_id)
    message = str(caught.value)
    assert "\x00" not in message
    message.encode("utf-8")


async def test_an_answer_about_another_record_is_not_trusted() -> None:
    """A receipt naming another record id is unavailable (fate unknown), not success."""
    records = RecordMaker()
    other = PopReceipt(uuid.uuid4(), "confirmed", "pop-1").as_dict()
    async with client(_answer(200, json_body=other), records.terminal_id) as pop:
        with pytest.raises(PopUnavailableError, match="another record"):
            await pop.submit(records.sale())


async def test_an_oversized_answer_is_not_read() -> None:
    """An answer above MAX_BODY_BYTES is refused as unavailable without reading it all."""
    records = RecordMaker()
    huge = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    async with client(_answer(200, content=huge), records.terminal_id) as pop:
        with pytest.raises(PopUnavailableError, match="exceeds"):
            await pop.status(uuid.uuid4())


async def test_a_rejected_status_on_submit_raises_with_the_reason() -> None:
    """submit turns a 'rejected' receipt into PopRejectedError carrying the reason."""
    records = RecordMaker()
    record = records.sale()
    answer = PopReceipt(record.record_id, "rejected", None, "consensus said no").as_dict()
    async with client(_answer(200, json_body=answer), records.terminal_id) as pop:
        with pytest.raises(PopRejectedError) as caught:
            await pop.submit(record)
    assert caught.value.reason == "consensus said no"


@pytest.mark.parametrize(
    ("kwargs",                                    "message"),
    [
        ({"base_url": "ftp://pop"},               "http"),
        ({"timeout_s": 0},                        "timeout"),
        ({"terminal_id": "T 1"},                  "terminal id"),
    ],
)
def test_bad_construction_is_a_value_error(kwargs: dict[str, Any], message: str) -> None:
    """A client with a bad URL, timeout or terminal id is refused when built."""
    values: dict[str, Any] = {"base_url": "http://pop", "terminal_id": "T1", "timeout_s": 1.0}
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        HttpsPopClient(values["base_url"], SIGNER, values["terminal_id"],
                       timeout_s=values["timeout_s"])
