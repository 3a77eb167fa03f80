"""Whatever a PSP answers, its connector ends in a response or one of the project's errors.

REST: every operation of both connectors through the router (``simulators.psp.hostile``),
answered with any JSON shapes, faults or bytes, must end in an answer the terminal can
store and use or a storable PspError. ISO 8583: any DE 55 in an approval keeps the approval
through the kernel hand-over (issue #17 items 5-7).

ISO 8583: a loopback host that reads the terminal's frame and answers with hypothesis's
choice — random bytes in a frame, a cut frame, or a decodable answer (right MTI and STAN, so
it reaches the connector's parser) whose fields are random. REST (Stripe- and PayPal-like):
``httpx.MockTransport`` answers with a random status, headers and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import warnings
from collections.abc import Awaitable, Callable

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.connectors import Iso8583Connector, Iso8583Settings
from edge_sync.connectors.base import Operation, Outcome, PspReference, PspResponse
from edge_sync.connectors.errors import PspError
from edge_sync.connectors.iso8583_spec import MTI_RESPONSE, decode, encode
from edge_sync.connectors.paypal import PayPalConnector
from edge_sync.connectors.rest import RestSettings
from edge_sync.connectors.stripe import StripeConnector
from etika_errors import EtikaError
from simulators.psp import hostile
from simulators.psp.keys import public_key_path
from terminal.psp_routing import kernel_answer
from tests.fixtures.psp import authorisation, host_context

warnings.filterwarnings("ignore", message=".*TripleDES.*")

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_NUMERIC = st.text("0123456789", min_size=0, max_size=14)
_FIELDS = st.dictionaries(
    st.sampled_from(["2", "3", "4", "7", "11", "12", "13", "37", "38", "39", "41", "44",
                     "48", "49", "55", "90"]),
    st.one_of(_NUMERIC, st.text(min_size=0, max_size=30), st.text("0123456789ABCDEF",
                                                                  max_size=80)),
    max_size=8)

#: What the fake host answers: ("raw", bytes) as a frame body, ("cut", bytes) as a frame
#: whose prefix announces more than comes, or ("fields", dict) merged into a proper answer.
ANSWERS = st.one_of(
    st.tuples(st.just("raw"), st.binary(max_size=200)),
    st.tuples(st.just("cut"), st.binary(max_size=50)),
    st.tuples(st.just("fields"), _FIELDS),
)


def _answer_for(request: dict[str, str], kind: str, payload: object) -> bytes:
    if kind == "raw":
        assert isinstance(payload, bytes)
        return struct.pack(">H", len(payload)) + payload
    if kind == "cut":
        assert isinstance(payload, bytes)
        return struct.pack(">H", len(payload) + 10) + payload
    assert isinstance(payload, dict)
    fields = {"t": MTI_RESPONSE[request["t"]], "11": request["11"], "41": request.get("41", ""),
              "39": "00", **payload}
    try:
        body = encode(fields)
    except ValueError:  # not encodable: send it as raw garbage instead
        body = repr(fields).encode()[:500]
    return struct.pack(">H", len(body)) + body


async def _with_host(kind: str, payload: object,
                     call: Callable[[Iso8583Connector], Awaitable[object]]) -> object:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            request = decode(await reader.readexactly(length))
            writer.write(_answer_for(request, kind, payload))
            await writer.drain()
            if kind == "cut":
                writer.close()
            else:
                await reader.read()  # hold the line until the terminal gives up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connector = Iso8583Connector(Iso8583Settings(
        host_context(), "127.0.0.1", port, public_key_path("iso8583").read_bytes(),
        timeout_s=0.3))
    try:
        return await call(connector)
    finally:
        await connector.aclose()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


@FUZZ
@given(answer=ANSWERS)
def test_iso8583_connector_survives_any_answer(answer: tuple[str, object]) -> None:
    """A garbage, cut or field-fuzzed ISO 8583 answer is a PspResponse or a PspError (the
    project's own), never a raw exception (ISO 8583:1987 §4: the answer echoes MTI/STAN)."""
    kind, payload = answer

    async def go() -> object:
        try:
            return await _with_host(kind, payload,
                                    lambda c: c.authorise(authorisation()))
        except EtikaError as exc:
            return exc

    result = asyncio.run(go())
    assert isinstance(result, PspResponse | EtikaError), type(result)


_HEADERS = st.dictionaries(st.sampled_from(["content-type", "idempotent-replayed",
                                            "retry-after", "paypal-request-id"]),
                           st.text("abcdefghijklmnopqrstuvwxyz/;=0123456789 ", max_size=30),
                           max_size=3)
_JSON_BODY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "status", "amount", "currency", "error", "code",
                         "decline_code", "message", "metadata", "latest_charge",
                         "purchase_units", "payments", "captures", "authorizations",
                         "links", "details", "outcome", "network_reason"]),
        inner, max_size=6),
    max_leaves=20)
_BODIES = st.one_of(st.binary(max_size=200),
                    _JSON_BODY.map(lambda v: httpx.Response(200, json=v).content))


@FUZZ
@given(kind=st.sampled_from(["stripe", "paypal"]),
       status=st.sampled_from([200, 201, 202, 204, 301, 400, 401, 402, 404, 409, 422, 429,
                               500, 502, 503]),
       headers=_HEADERS, body=_BODIES)
def test_rest_connectors_survive_any_answer(kind: str, status: int,
                                            headers: dict[str, str], body: bytes) -> None:
    """Any status, headers and body from a REST PSP is a PspResponse or the project's own
    error; the connector never lets a KeyError, TypeError or JSON error out."""

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=body)

    settings_ = RestSettings(name=kind, url="http://psp.invalid",
                             p2pe_public_key=public_key_path(kind).read_bytes(), timeout_s=1)
    cls = StripeConnector if kind == "stripe" else PayPalConnector

    async def go() -> object:
        connector = cls(settings_, transport=httpx.MockTransport(answer))
        try:
            return await connector.authorise(authorisation())
        except EtikaError as exc:
            return exc
        finally:
            with contextlib.suppress(Exception):
                await connector.aclose()

    result = asyncio.run(go())
    assert isinstance(result, PspResponse | EtikaError), type(result)


# --- every REST operation, every answer (issue #17 items 5-6) -----------------------------

_ANSWER_KEYS = st.sampled_from(hostile.KEYS)
_ANSWER_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(hostile.STRINGS) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANSWER_KEYS, inner,
                                                                max_size=5)
    | st.sampled_from(hostile.TEMPLATES),
    max_leaves=16)
#: One answer: a transport fault, or a status and a JSON body (ASCII, so lone surrogates
#: travel as their \\u escapes), or a status and raw bytes.
_ANSWER = st.one_of(
    st.sampled_from(["timeout", "dropped"]),
    st.tuples(st.sampled_from(hostile.STATUSES), _ANSWER_JSON.map(
        lambda v: json.dumps(v).encode("ascii"))),
    st.tuples(st.sampled_from(hostile.STATUSES), st.binary(max_size=64)),
)


def _answers(script: list[object]) -> Callable[[httpx.Request], httpx.Response]:
    replies = iter(script)

    def answer(request: httpx.Request) -> httpx.Response:
        reply = next(replies, (500, b"{}"))
        if reply == "timeout":
            raise httpx.ReadTimeout("no answer", request=request)
        if reply == "dropped":
            raise httpx.RemoteProtocolError("dropped", request=request)
        assert isinstance(reply, tuple)
        status, body = reply
        return httpx.Response(status, content=body)

    return answer


def _outcome(run: Awaitable[PspResponse]) -> PspResponse | PspError:
    async def go() -> PspResponse | PspError:
        try:
            return await run
        except PspError as exc:
            return exc

    return asyncio.run(go())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(hostile.KINDS), operation=st.sampled_from(hostile.OPERATIONS),
       known_id=st.booleans(), script=st.lists(_ANSWER, min_size=1, max_size=6))
def test_every_rest_operation_survives_any_json_answers(
        kind: str, operation: str, known_id: bool, script: list[object]) -> None:
    """Authorise (with its search and reversal), capture, search, refund, reverse, status
    and echo of both REST connectors, answered with any JSON shapes, faults or bytes: a
    usable answer or a storable PspError — never a raw exception, never an id that steers
    a URL (issue #17 items 5-6)."""
    outcome = _outcome(hostile.run_operation(kind, operation, _answers(script),
                                             known_id=known_id))
    assert hostile.problems(outcome) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_hostile_psp_scenarios_replay(data: bytes) -> None:
    """Any bytes as a scenario of simulators.psp.hostile (the atheris harness's input
    format): a usable answer or a storable PspError."""
    assert hostile.problems(_outcome(hostile.run_scenario(data))) == []


# --- any DE 55 in an approval (issue #17 item 7) -----------------------------------------

_DE55 = st.one_of(
    st.binary(max_size=255),
    st.lists(st.sampled_from([bytes.fromhex("9108") + bytes(8), bytes.fromhex("9114"),
                              bytes.fromhex("91"), b"\x72\x81", b"\x71\x03\x86\x01\x00",
                              bytes.fromhex("8A023030"), b"\x00"]),
             max_size=6).map(b"".join).filter(lambda b: len(b) <= 255),
)


@FUZZ
@given(de55=_DE55)
def test_any_de55_in_an_iso_approval_keeps_the_approval(de55: bytes) -> None:
    """An ISO 8583 approval carrying any DE 55 stays an approval through the connector and
    the kernel hand-over: unusable issuer data is an issuer authentication failure, never an
    exception or a dropped answer (issue #17 item 7, EMV Book 3 §10.9)."""

    async def go() -> object:
        return await _with_host("fields", {"55": de55.hex().upper()},
                                lambda c: c.authorise(authorisation()))

    response = asyncio.run(go())
    assert isinstance(response, PspResponse) and response.approved
    answer = kernel_answer(response)
    assert answer.arc == b"00" and answer.approved
    iad = answer.issuer_authentication_data
    assert iad is None or isinstance(iad, bytes)


@settings(max_examples=200, deadline=None)
@given(de55=_DE55, code=st.sampled_from(["00", "05", "51", "91", "ZZ", "succeeded", "é"]),
       approved=st.booleans(), flagged=st.booleans())
def test_kernel_answer_never_raises(de55: bytes, code: str, approved: bool,
                                    flagged: bool) -> None:
    """Whatever a PSP answered, the kernel is told an ARC that agrees with the outcome and
    issuer data it can use or a failed issuer authentication (EMV Book 3 §10.9)."""
    response = PspResponse(
        outcome=Outcome.APPROVE if approved else Outcome.DECLINE, code=code, message="",
        operation=Operation.AUTHORISE,
        reference=PspReference(connector="x", transaction_id="t"), emv_data=de55,
        issuer_data_malformed=flagged)
    answer = kernel_answer(response)
    assert answer.approved is approved
    assert answer.issuer_data_malformed or not flagged
