"""A hostile REST PSP: every answer of a Stripe- or PayPal-like gateway chosen by a stream of
bytes (issue #17 items 5–6).

For the connectors' fuzz targets (``fuzz/fuzz_psp_rest.py`` under atheris, ``tests/fuzz/``
under hypothesis). One input — any bytes — is a whole scenario, so a fuzzer's input replays
exactly:

* byte 0: the connector (:data:`KINDS`) and the operation (:data:`OPERATIONS`), run through
  the :class:`~edge_sync.connectors.routing.Router` as the terminal runs it — so an
  authorisation whose answer is lost goes on to the search and the reversal; byte 1: whether
  the follow-up operations know the PSP's id already (else they search for it first);
* then, for each HTTP request the connector sends, the answer: a fault (timeout, dropped
  connection, refused connection) or a status (:data:`STATUSES`) and a body — raw bytes, a
  deeply nested array, or JSON: an honest answer of either API (:data:`TEMPLATES`) with
  some of its values replaced by any JSON value (:func:`json_value`: every type, the two
  APIs' keys, lone surrogates, path-steering ids, issuer data of any form).

When the stream runs out every further request is answered 500 (retry), so every scenario
ends. :func:`problems` says what the terminal could not store or use in an outcome.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    BreakerSettings,
    CardInput,
    PayPalConnector,
    PspResponse,
    RestSettings,
    Router,
    RouteRule,
    RoutingKey,
    StripeConnector,
)
from edge_sync.connectors.base import Connector, PspReference, RefundRequest
from edge_sync.connectors.errors import PspError, ReversalPendingError

__all__ = [
    "KINDS",
    "OPERATIONS",
    "STATUSES",
    "TEMPLATES",
    "ByteStream",
    "json_value",
    "problems",
    "run_operation",
    "run_scenario",
]

KINDS = ("stripe", "paypal")
OPERATIONS = ("authorise", "advice", "complete", "reverse", "refund", "status", "echo")
STATUSES = (200, 201, 202, 204, 301, 400, 401, 402, 404, 409, 422, 429, 500, 502, 503)
_FAULTS = ("timeout", "dropped", "refused")

#: Keys of both APIs' answers: a random object is made of these, so that it is read.
KEYS = ("id", "object", "status", "amount", "error", "code", "decline_code", "message",
        "type", "data", "orders", "purchase_units", "payments", "captures", "authorizations",
        "processor_response", "response_code", "authorization_code", "emv_auth_data",
        "latest_charge", "payment_method_details", "card_present", "payment_intent", "name",
        "last_payment_error", "details", "links", "custom_id")
#: Strings the connectors compare against, and strings that have hurt before.
STRINGS = ("succeeded", "requires_capture", "canceled", "processing", "pending", "COMPLETED",
           "CREATED", "VOIDED", "PENDING", "DECLINED", "0000", "00N7", "9100", "5400", "00",
           "05", "pi_1", "C1", "AUT1", "A1B2C3", "call_issuer", "try_again_later",
           "card_declined", "\udfff", "\ud800x", "é", "٤٢", "a/b", "../refunds", "x?y=1",
           "C1#f", "", " ", "\x00", "9108" + "00" * 8, "910A" + "00" * 10, "9114" + "00" * 20,
           "91", "ZZ", "72" * 40, "1" * 5000, "true")

_ENVELOPE = b"\x01" * 16


class _Sealed:
    """The P2PE envelope without the cryptography: the connectors only carry it."""

    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return _ENVELOPE


def _stripe_intent(status: str = "succeeded") -> dict[str, Any]:
    return {"id": "pi_1", "object": "payment_intent", "status": status, "amount": 2500,
            "latest_charge": {"id": "ch_1", "payment_method_details": {"card_present": {
                "authorization_code": "A1B2C3", "emv_auth_data": "9108" + "11" * 8}}}}


def _paypal_payment(kind: str = "captures", status: str = "COMPLETED") -> dict[str, Any]:
    return {"id": "C1", "status": status, "processor_response": {
        "response_code": "0000", "authorization_code": "A1B2C3",
        "emv_auth_data": "9108" + "11" * 8}}


def _paypal_order(kind: str = "captures") -> dict[str, Any]:
    return {"id": "O1", "status": "COMPLETED", "purchase_units": [
        {"reference_id": "t", "payments": {kind: [_paypal_payment(kind)]}}]}


#: Honest answers of both APIs, to every request the connectors send.
TEMPLATES: tuple[dict[str, Any], ...] = (
    _stripe_intent(), _stripe_intent("requires_capture"), _stripe_intent("canceled"),
    {"data": [_stripe_intent()]}, {"data": []},
    {"id": "re_1", "object": "refund", "status": "succeeded"},
    {"error": {"type": "card_error", "decline_code": "do_not_honor", "message": "Declined",
               "payment_intent": {"id": "pi_1"}}},
    {"object": "balance", "available": []},
    _paypal_order(), _paypal_order("authorizations"), {"orders": [_paypal_order()]},
    {"orders": []}, _paypal_payment(), {"id": "R1", "status": "COMPLETED"},
    {"name": "UNPROCESSABLE_ENTITY", "message": "Declined", "details": [{"issue": "x"}]},
    {"status": "UP"},
)


class ByteStream:
    """The fuzzer's input, read a byte or a few at a time; zeros once it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    @property
    def exhausted(self) -> bool:
        return self.offset >= len(self.data)

    def byte(self) -> int:
        value = self.data[self.offset] if self.offset < len(self.data) else 0
        self.offset += 1
        return value

    def take(self, count: int) -> bytes:
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk


def json_value(stream: ByteStream, depth: int = 0) -> Any:
    """Any JSON value: scalars of every type, the APIs' strings, arrays and objects of the
    APIs' keys (at most 6 levels here; deeper nesting is a body of its own)."""
    choice = stream.byte() % (10 if depth < 6 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return bool(stream.byte() & 1)
    if choice == 2:
        return int.from_bytes(stream.take(stream.byte() % 9), "big", signed=True)
    if choice == 3:
        return [0.5, -1e308, 1e-300, 2500.0][stream.byte() % 4]
    if choice == 4:
        return STRINGS[stream.byte() % len(STRINGS)]
    if choice == 5:
        return stream.take(stream.byte() % 24).decode("utf-8", "surrogateescape")
    if choice == 6:
        return [json_value(stream, depth + 1) for _ in range(stream.byte() % 4)]
    if choice == 7:
        return {KEYS[stream.byte() % len(KEYS)]: json_value(stream, depth + 1)
                for _ in range(stream.byte() % 5)}
    return _template(stream)


def _template(stream: ByteStream) -> Any:
    """A fresh copy of one of :data:`TEMPLATES` (the answers are changed in place)."""
    return json.loads(json.dumps(TEMPLATES[stream.byte() % len(TEMPLATES)]))


def _nodes(value: Any, into: list[tuple[Any, Any]]) -> None:
    """Every (container, key) of ``value``, depth first."""
    if isinstance(value, dict):
        for key in value:
            into.append((value, key))
            _nodes(value[key], into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            into.append((value, index))
            _nodes(item, into)


def _template_answer(stream: ByteStream) -> Any:
    """An honest answer with up to 3 of its values replaced, or keys dropped."""
    answer = _template(stream)
    for _ in range(stream.byte() % 4):
        nodes: list[tuple[Any, Any]] = []
        _nodes(answer, nodes)
        if not nodes:
            break
        container, key = nodes[stream.byte() % len(nodes)]
        if stream.byte() % 4 == 0 and isinstance(container, dict):
            del container[key]
        else:
            container[key] = json_value(stream)
    return answer


def _body(stream: ByteStream) -> bytes:
    mode = stream.byte() % 8
    if mode == 0:
        return stream.take(stream.byte() * 2)  # raw bytes
    if mode == 1:
        levels = 1 + stream.byte() * 8  # past the nesting bound, or just under it
        return b"[" * levels + b"]" * levels
    value = _template_answer(stream) if mode < 6 else json_value(stream)
    # ensure_ascii: a lone surrogate travels as its \\u escape, as a real PSP could send it.
    return json.dumps(value).encode("ascii")


def _handler(stream: ByteStream) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if stream.exhausted:
            return httpx.Response(500, content=b"{}")
        choice = stream.byte()
        if choice >= 240:
            fault = _FAULTS[choice % len(_FAULTS)]
            if fault == "timeout":
                raise httpx.ReadTimeout("no answer", request=request)
            if fault == "dropped":
                raise httpx.RemoteProtocolError("connection dropped", request=request)
            raise httpx.ConnectError("refused", request=request)
        headers = {"Idempotent-Replayed": "true"} if stream.byte() & 1 else {}
        return httpx.Response(STATUSES[choice % len(STATUSES)], headers=headers,
                              content=_body(stream))

    return answer


async def _no_sleep(_: float) -> None:
    return None


def _connector(kind: str, transport: httpx.AsyncBaseTransport) -> Connector:
    settings = RestSettings(name=kind, url="https://psp.invalid", p2pe_public_key=b"-",
                            api_key="sk_test", timeout_s=1.0)
    if kind == "stripe":
        return StripeConnector(settings, transport=transport)
    return PayPalConnector(settings, transport=transport)


async def run_scenario(data: bytes) -> PspResponse:
    """Run the operation ``data`` chooses against the answers it chooses; the answer, or
    the connectors' own error (:class:`PspError`) — anything else is a finding."""
    stream = ByteStream(data)
    head = stream.byte()
    return await run_operation(KINDS[head % len(KINDS)],
                               OPERATIONS[(head // len(KINDS)) % len(OPERATIONS)],
                               _handler(stream), known_id=bool(stream.byte() & 1))


async def run_operation(kind: str, operation: str,
                        handler: Callable[[httpx.Request], httpx.Response], *,
                        known_id: bool = False) -> PspResponse:
    """``operation`` of a ``kind`` connector through the router, its requests answered by
    ``handler`` (``known_id``: the follow-ups know the PSP's id, else they search)."""
    connector = _connector(kind, httpx.MockTransport(handler))
    router = Router([RouteRule("all", (kind,))], {kind: connector}, {},
                    breakers={kind: BreakerSettings(failures=1000, reset_s=60)},
                    sleep=_no_sleep)
    amount = Amount(2500, "MAD", 504, 2)
    transaction = uuid.UUID(int=1)
    request = AuthorisationRequest(transaction, amount, CardInput(encryptor=_Sealed()))
    psp_id = ("pi_1" if kind == "stripe" else "capture/C1") if known_id else None
    original = PspReference(connector=kind, transaction_id=str(transaction), psp_id=psp_id)
    try:
        if operation == "authorise":
            return await router.authorise(request, RoutingKey("visa", "MAD", 2500))
        if operation == "advice":
            return await router.advice(kind, request)
        if operation == "complete":
            return await router.complete(original, amount)
        if operation == "reverse":
            return await router.reverse(original, amount)
        if operation == "refund":
            return await router.refund(RefundRequest(uuid.UUID(int=2), amount, original))
        if operation == "status":
            return await router.status(original)
        return await router.echo(kind)
    finally:
        await router.aclose()


def problems(outcome: PspResponse | PspError) -> list[str]:
    """What the terminal could not store or use of an outcome: text SQLite refuses (a lone
    surrogate), a code the kernel cannot classify, an id that is not path-safe, an approval
    code longer than DE 38, issuer data longer than DE 55, a reversal that is not JSON."""
    found: list[str] = []

    def storable(what: str, value: object) -> None:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            found.append(f"{what} cannot be stored")

    if isinstance(outcome, PspError):
        storable("the error message", str(outcome))
        if not (outcome.fields.get("connector") or outcome.fields.get("idempotency_key")):
            found.append("the error names neither its connector nor its payment")
        if isinstance(outcome, ReversalPendingError):
            storable("the queued reversal", outcome.reversal)
            if not outcome.reversal.get("original"):
                found.append("the queued reversal has no original")
        return found
    reference = outcome.reference
    storable("the answer", [outcome.code, outcome.message, reference.as_dict()])
    if not (outcome.code.isascii() and 0 < len(outcome.code) <= 64):
        found.append(f"code {outcome.code!r}")
    psp_id = (reference.psp_id or "").partition("/")[2] or reference.psp_id or ""
    if any(c in psp_id for c in "/?#%.") or not psp_id.isascii():
        found.append(f"psp_id {reference.psp_id!r}")
    approval = reference.approval_code
    if approval is not None and not (approval.isascii() and len(approval) <= 6):
        found.append(f"approval code {approval!r}")
    if not isinstance(outcome.emv_data, bytes) or len(outcome.emv_data) > 255:
        found.append("issuer data")
    return found
