"""Hostile REST answers through the router: a PspError or a well-typed answer, never a raw
Python exception, and never a lost reversal (issue #17 items 5–6)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from edge_sync.connectors.answers import decode_json
from edge_sync.connectors.errors import MalformedResponseError, PspError, ReversalPendingError

MAD = Amount(2500, "MAD", 504, 2)
KEY = RoutingKey(network="visa", currency="MAD", amount_minor=2500)
Handler = Callable[[httpx.Request], httpx.Response]


class _Encryptor:
    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return b"\x01"


async def _no_sleep(_: float) -> None:
    return None


def _router(kind: str, handler: Handler) -> Router:
    settings_ = RestSettings(name=kind, url="https://psp.test", p2pe_public_key=b"pem",
                             api_key="sk_test")
    transport = httpx.MockTransport(handler)
    connector = (StripeConnector(settings_, transport=transport) if kind == "stripe"
                 else PayPalConnector(settings_, transport=transport))
    return Router([RouteRule("all", (kind,))], {kind: connector}, {},
                  breakers={kind: BreakerSettings(failures=100, reset_s=60)}, sleep=_no_sleep)


def _request() -> AuthorisationRequest:
    return AuthorisationRequest(uuid.uuid4(), MAD, CardInput(encryptor=_Encryptor()))


def _authorise(kind: str, handler: Handler) -> tuple[AuthorisationRequest, PspResponse]:
    request = _request()

    async def run() -> PspResponse:
        router = _router(kind, handler)
        try:
            return await router.authorise(request, KEY)
        finally:
            await router.aclose()

    return request, asyncio.run(run())


def _ill_typed(response: PspResponse) -> list[str]:
    """What the kernel and the store could not use: non-ASCII codes, non-bytes issuer data."""
    problems = []
    if not (isinstance(response.code, str) and response.code.isascii()):
        problems.append(f"code {response.code!r}")
    if not isinstance(response.emv_data, bytes):
        problems.append("emv_data")
    approval = response.reference.approval_code
    if not (approval is None or (isinstance(approval, str) and approval.isascii()
                                 and len(approval) <= 6)):
        problems.append(f"approval code {approval!r}")
    if not (response.reference.psp_id is None or isinstance(response.reference.psp_id, str)):
        problems.append("psp_id")
    try:  # what the store writes: SQLite refuses lone surrogates
        json.dumps(response.reference.as_dict(), ensure_ascii=False).encode("utf-8")
        (response.code + response.message).encode("utf-8")
    except UnicodeEncodeError:
        problems.append("not storable")
    return problems


# --- item 5: the search after an unknown outcome ---------------------------------------

def _timeout_then(search_path: str, search_answer: dict[str, Any]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == search_path:
            return httpx.Response(200, json=search_answer)
        raise httpx.ReadTimeout("no answer", request=request)  # the charge may have happened

    return handle


@pytest.mark.parametrize(
    ("kind",     "search_path",                    "answer"),
    [
        ("stripe",   "/v1/payment_intents/search",     {"data": [{"object": "payment_intent"}]}),
        ("stripe",   "/v1/payment_intents/search",     {"data": ["pi_123"]}),
        ("paypal",   "/v2/checkout/orders",            {"orders": [{"id": "5O190127TN364715T"}]}),
        ("paypal",   "/v2/checkout/orders",            {"orders": {"purchase_units": []}}),
        ("paypal",   "/v2/checkout/orders",            {"orders": [{"purchase_units": [
                                                            {"payments": "none"}]}]}),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 10 else "answer",
)
def test_odd_search_answer_keeps_the_reversal(kind: str, search_path: str,
                                              answer: dict[str, Any]) -> None:
    """An unknown authorisation whose search answer has an odd shape is ReversalPendingError, with
    the reversal to queue — not a KeyError that drops it (issue #17 item 5)."""
    request = _request()

    async def run() -> None:
        router = _router(kind, _timeout_then(search_path, answer))
        try:
            await router.authorise(request, KEY)
        finally:
            await router.aclose()

    with pytest.raises(ReversalPendingError) as info:
        asyncio.run(run())
    reversal = info.value.reversal
    assert reversal["connector"] == kind
    assert reversal["original"]["transaction_id"] == request.idempotency_key
    assert reversal["amount"]["minor"] == MAD.minor


# --- item 6: wrong types in normal answers ----------------------------------------------

def _answer(status: int, body: Any) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content,
                              headers={"Content-Type": "application/json"})

    return handle


_NESTED = b"[" * 5000 + b"]" * 5000
_STRIPE_OK = {"id": "pi_1", "status": "succeeded"}


def _stripe_charge(**card_present: Any) -> dict[str, Any]:
    return {**_STRIPE_OK, "latest_charge": {"payment_method_details": {
        "card_present": card_present}}}


def _paypal_order(**capture: Any) -> dict[str, Any]:
    return {"id": "O1", "status": "COMPLETED", "purchase_units": [
        {"payments": {"captures": [{"id": "C1", "status": "COMPLETED", **capture}]}}]}


@pytest.mark.parametrize(
    ("kind",     "status",  "body"),
    [
        ("stripe",   200,       _stripe_charge(authorization_code=123456)),
        ("stripe",   200,       _stripe_charge(authorization_code="12345é")),
        ("stripe",   200,       {**_STRIPE_OK, "latest_charge": {"payment_method_details": "x"}}),
        ("stripe",   200,       {"id": 7, "status": ["succeeded"]}),
        ("stripe",   402,       {"error": {"decline_code": {"nested": "x"}}}),
        ("stripe",   402,       {"error": {"decline_code": "refusé"}}),
        ("stripe",   200,       {"data": _NESTED.decode()}),
        ("stripe",   200,       _NESTED),
        ("paypal",   201,       _paypal_order(processor_response="0000")),
        ("paypal",   201,       _paypal_order(processor_response={"response_code": 0})),
        ("paypal",   201,       _paypal_order(processor_response={"response_code": "0000",
                                                                  "authorization_code": 42})),
        ("paypal",   201,       _paypal_order(processor_response={"response_code": "0000",
                                                                  "authorization_code": "٤٢"})),
        ("paypal",   201,       {"purchase_units": [{"payments": {"captures": [
                                     {"id": {"x": 1}, "status": "COMPLETED"}]}}]}),
        ("paypal",   201,       _NESTED),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 10 else str(v)[:0] or "body",
)
def test_wrong_types_are_psp_errors(kind: str, status: int, body: Any) -> None:
    """Wrong types, non-ASCII codes and deep nesting in an answer end as a PspError or a
    well-typed answer (issue #17 item 6), never AttributeError/TypeError/RecursionError."""
    try:
        _, response = _authorise(kind, _answer(status, body))
    except PspError as exc:
        assert exc.fields.get("idempotency_key")  # says which payment it is about
        return
    assert not _ill_typed(response)


def test_deeply_nested_answer_is_refused_before_decoding() -> None:
    """Nesting past the bound is an unreadable answer, so the authorisation is reversed."""
    with pytest.raises(PspError, match=r"nests deeper|reversal|reversed"):
        _authorise("stripe", _answer(200, _NESTED))


# --- bounded fuzz ------------------------------------------------------------------------

_KEYS = st.sampled_from(["id", "status", "error", "code", "decline_code", "data", "orders",
                         "purchase_units", "payments", "captures", "authorizations",
                         "processor_response", "response_code", "authorization_code",
                         "emv_auth_data", "latest_charge", "payment_method_details",
                         "card_present", "payment_intent", "name", "message",
                         "last_payment_error"])
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
            | st.sampled_from(["succeeded", "COMPLETED", "0000", "00", "canceled", "pi_1",
                               "requires_capture", "9100", "91", "\udfff", "é"])
            | st.text(max_size=8))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=12)
_STATUS = st.sampled_from([200, 201, 402, 409, 429, 500])


def _scripted(answers: list[tuple[int, Any]]) -> Handler:
    replies = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        status, body = next(replies, (500, {}))
        try:
            content = json.dumps(body).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            content = b"{"
        return httpx.Response(status, content=content)

    return handle


@pytest.mark.parametrize("kind", ["stripe", "paypal"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(st.tuples(_STATUS, st.dictionaries(_KEYS, _JSON, max_size=5)),
                        min_size=1, max_size=6))
def test_fuzzed_answers_never_escape(kind: str, answers: list[tuple[int, Any]]) -> None:
    """Any sequence of JSON answers to an authorisation and its follow-ups (search, reversal)
    gives a PspError or a well-typed answer."""
    try:
        _, response = _authorise(kind, _scripted(answers))
    except PspError as exc:
        assert exc.fields.get("idempotency_key")  # says which payment it is about
        return
    assert not _ill_typed(response)


# --- bounds and issuer data ---------------------------------------------------------------

def test_an_oversized_answer_is_not_read_on() -> None:
    """An answer past 1 MiB is refused as unreadable (unknown outcome) after reading just
    past the bound, never decoded; the router then queues the reversal."""
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):  # 4 MiB in all, if read to the end
            sent.append(65536)
            yield b" " * 65536

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, content=body())

    with pytest.raises(ReversalPendingError, match="more than 1048576 bytes"):
        _authorise("stripe", handle)
    assert sum(sent) < 2 * 1048576 * 3  # three attempts, each stopped just past the bound


@pytest.mark.parametrize(
    ("kind",     "status", "body"),
    [
        ("stripe",   200,      _stripe_charge(emv_auth_data="ZZ")),
        ("stripe",   200,      _stripe_charge(emv_auth_data="91" * 300)),
        ("stripe",   200,      _stripe_charge(emv_auth_data=["91"])),
        ("paypal",   201,      _paypal_order(processor_response={"response_code": "0000",
                                                                 "emv_auth_data": "9"})),
    ],
    ids=["not-hex", "too-long", "a-list", "odd-length"],
)
def test_unreadable_issuer_data_keeps_the_approval(kind: str, status: int, body: Any) -> None:
    """Issuer data that cannot be read does not void an approval: it is flagged, and the
    kernel fails issuer authentication (#17 item 7, EMV Book 3 §10.9)."""
    _, response = _authorise(kind, _answer(status, body))
    assert response.approved and response.issuer_data_malformed
    assert response.emv_data == b""


@pytest.mark.parametrize(
    ("kind",     "status", "body"),
    [
        ("stripe",   200,      {"id": "pi_1/../refunds", "status": "succeeded"}),
        ("stripe",   200,      {"id": "pi_1", "status": "succeeded\u0000"}),
        ("paypal",   201,      {"purchase_units": [{"payments": {"captures": [
                                    {"id": "C1#x", "status": "COMPLETED"}]}}]}),
    ],
    ids=["stripe-path-id", "stripe-odd-status", "paypal-fragment-id"],
)
def test_ids_that_would_steer_a_url_are_refused(kind: str, status: int, body: Any) -> None:
    """An id that is not path-safe is an unreadable answer (reversed), never kept as the
    reference a later capture, reversal or refund would put in its URL (#17 item 6)."""
    with pytest.raises(PspError) as info:
        _authorise(kind, _answer(status, body))
    assert info.value.fields.get("idempotency_key")


@pytest.mark.parametrize("kind", ["stripe", "paypal"])
@pytest.mark.parametrize("status", [301, 302, 405, 410, 418])
def test_an_approval_under_an_odd_status_is_no_approval(kind: str, status: int) -> None:
    """A body that looks like an approval under a status the API never answers with (a
    redirect, another 4xx) is an unreadable answer — unknown outcome, reversal queued —
    not an approval."""
    body = (_STRIPE_OK if kind == "stripe"
            else _paypal_order(processor_response={"response_code": "0000"}))
    with pytest.raises(ReversalPendingError, match=f"HTTP {status}"):
        _authorise(kind, _answer(status, body))


def test_latest_charge_as_an_id_keeps_the_approval() -> None:
    """Stripe sends latest_charge as the charge's id unless expanded: the approval stands,
    without an approval code or issuer data."""
    _, response = _authorise("stripe", _answer(200, {**_STRIPE_OK, "latest_charge": "ch_1"}))
    assert response.approved and response.reference.approval_code is None
    assert (response.emv_data, response.issuer_data_malformed) == (b"", False)


@pytest.mark.parametrize(
    "body",
    [b'"' + b'\\"' * 131072, b'"\\' * 131072, b'"' * 262144, b'[' * 33 + b']' * 33],
    ids=["escaped-quotes", "open-escapes", "quotes", "deep"],
)
def test_the_nesting_check_is_one_pass(body: bytes) -> None:
    """The nesting bound is checked in one pass over the answer: 256 KiB of escaped or
    unclosed quotes is refused as unreadable at once (the pattern that restarted at every
    quote took minutes over it — a hostile PSP could stall the terminal's event loop)."""
    with pytest.raises(MalformedResponseError):
        decode_json(body, name="stripe", where={"connector": "stripe"})


# --- a lagging search is no proof that nothing was charged ------------------------------

@pytest.mark.parametrize(
    ("kind",     "search_path",                    "empty"),
    [
        ("stripe",   "/v1/payment_intents/search",     {"data": []}),
        ("paypal",   "/v2/checkout/orders",            {"orders": []}),
    ],
)
def test_a_search_that_finds_nothing_queues_the_reversal_and_tries_no_other_psp(
        kind: str, search_path: str, empty: dict[str, Any]) -> None:
    """An unanswered authorisation that the PSP's search does not show is ReversalPendingError:
    Stripe's search lags behind its charges, so a second PSP could charge the card twice."""
    seen_by_backup: list[str] = []

    def backup(request: httpx.Request) -> httpx.Response:
        seen_by_backup.append(f"{request.method} {request.url.path}")
        return httpx.Response(500)

    request = _request()

    async def run() -> None:
        first = _router(kind, _timeout_then(search_path, empty)).connectors[kind]
        other = StripeConnector(RestSettings(name="backup", url="https://backup.test",
                                             p2pe_public_key=b"pem", api_key="sk_test"),
                                transport=httpx.MockTransport(backup))
        router = Router([RouteRule("all", (kind, "backup"))], {kind: first, "backup": other},
                        {}, breakers={kind: BreakerSettings(failures=100, reset_s=60),
                                      "backup": BreakerSettings(failures=100, reset_s=60)},
                        sleep=_no_sleep)
        try:
            await router.authorise(request, KEY)
        finally:
            await router.aclose()

    with pytest.raises(ReversalPendingError, match="search") as info:
        asyncio.run(run())
    assert info.value.reversal["original"]["transaction_id"] == request.idempotency_key
    assert seen_by_backup == []
