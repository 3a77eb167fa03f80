"""Routing: rule matching, fall-through, breakers, retries only when safe, reversals."""

from __future__ import annotations

import uuid

import pytest

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    BreakerSettings,
    CardInput,
    Connector,
    ConnectorScope,
    HostContext,
    Iso8583Connector,
    Iso8583Settings,
    Operation,
    Outcome,
    PayPalConnector,
    PspReference,
    RefundRequest,
    RestSettings,
    Router,
    RouteRule,
    RoutingKey,
    StripeConnector,
)
from edge_sync.connectors.errors import (
    AuthorisationReversedError,
    ConnectorsExhaustedError,
    NoRouteError,
    PspRejectedError,
    PspTimeoutError,
    PspUnreachableError,
    ReversalPendingError,
)
from edge_sync.connectors.fake import ScriptedConnector, response

MAD = Amount(2500, "MAD", 504, 2)
KEY = RoutingKey(network="visa", currency="MAD", amount_minor=2500, aid="A0000000031010",
                 bin="47617390")


class _Encryptor:
    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return b"\x01"


def request() -> AuthorisationRequest:
    return AuthorisationRequest(uuid.uuid4(), MAD, CardInput(encryptor=_Encryptor()))


async def no_sleep(_: float) -> None:
    return None


def router(*connectors: ScriptedConnector, failures: int = 5) -> Router:
    return Router([RouteRule("all", tuple(c.name for c in connectors))],
                  {c.name: c for c in connectors}, {},
                  breakers={c.name: BreakerSettings(failures=failures) for c in connectors},
                  sleep=no_sleep)


def unknown(connector: str = "a") -> PspTimeoutError:
    return PspTimeoutError("no answer", connector=connector, reference=PspReference(
        connector=connector, transaction_id="x", mti="0200", stan="000001",
        transmitted_at="1122100000"))


@pytest.mark.parametrize(
    ("rule",                                                       "matches"),
    [
        (RouteRule("r", ("a",)),                                        True),
        (RouteRule("r", ("a",), networks=frozenset({"visa"})),          True),
        (RouteRule("r", ("a",), networks=frozenset({"domestic"})),      False),
        (RouteRule("r", ("a",), currencies=frozenset({"EUR"})),         False),
        (RouteRule("r", ("a",), aid_prefixes=("A000000003",)),          True),
        (RouteRule("r", ("a",), aid_prefixes=("A000000004",)),          False),
        (RouteRule("r", ("a",), bin_ranges=(("476173", "476173"),)),    True),
        (RouteRule("r", ("a",), bin_ranges=(("40000000", "45999999"),)), False),
        (RouteRule("r", ("a",), min_amount=2500),                       True),
        (RouteRule("r", ("a",), min_amount=2501),                       False),
        (RouteRule("r", ("a",), max_amount=2499),                       False),
    ],
)
def test_rule_matching(rule: RouteRule, matches: bool) -> None:
    """Every condition of a rule must hold; empty conditions match everything."""
    assert rule.matches(KEY) is matches


def test_first_matching_route_and_connector_scopes() -> None:
    """The first matching route wins; connectors not accepting the currency are left out."""
    a, b = ScriptedConnector("a"), ScriptedConnector("b")
    r = Router([RouteRule("eur", ("a",), currencies=frozenset({"EUR"})),
                RouteRule("mad", ("a", "b"))],
               {"a": a, "b": b},
               {"a": ConnectorScope(frozenset({"visa"}), frozenset({"EUR"})),
                "b": ConnectorScope(frozenset({"visa"}), frozenset({"MAD"}))})
    assert r.candidates(KEY) == ["b"]


def test_no_route_is_an_error() -> None:
    """A payment no route accepts raises NoRouteError naming network and currency."""
    r = Router([RouteRule("eur", ("a",), currencies=frozenset({"EUR"}))],
               {"a": ScriptedConnector("a")}, {})
    with pytest.raises(NoRouteError, match="MAD"):
        r.candidates(KEY)


async def test_unreachable_falls_through_to_the_next() -> None:
    """A connector that cannot be reached is skipped; the next one answers."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [PspUnreachableError("down", connector="a")]})
    b = ScriptedConnector("b")
    answer = await router(a, b).authorise(request(), KEY)
    assert answer.reference.connector == "b"


async def test_decline_is_final() -> None:
    """A decline is an answer: routing does not try the next connector."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [response(Outcome.DECLINE, "51")]})
    b = ScriptedConnector("b")
    answer = await router(a, b).authorise(request(), KEY)
    assert (answer.outcome, answer.code, b.calls) == (Outcome.DECLINE, "51", [])


async def test_retry_answer_falls_through() -> None:
    """An issuer-unavailable answer (91) moves on to the next connector."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [response(Outcome.RETRY, "91")]})
    answer = await router(a, ScriptedConnector("b")).authorise(request(), KEY)
    assert answer.reference.connector == "b"


async def test_breaker_opens_and_routing_skips_the_connector() -> None:
    """After N failures the connector is not even called; the next one takes the payment."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [
        PspUnreachableError("down", connector="a") for _ in range(5)]})
    b = ScriptedConnector("b")
    r = router(a, b, failures=2)
    for _ in range(4):
        await r.authorise(request(), KEY)
    assert len([c for c in a.calls if c[0] is Operation.AUTHORISE]) == 2
    assert len(b.calls) == 4


async def test_unknown_outcome_is_reversed_when_not_safe_to_resend() -> None:
    """An unanswered authorisation is reversed, never resent; routing then goes on."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [unknown()]}, retry_safe=[Operation.REVERSE])
    b = ScriptedConnector("b")
    answer = await router(a, b).authorise(request(), KEY)
    assert [op for op, _ in a.calls] == [Operation.AUTHORISE, Operation.REVERSE]
    assert answer.reference.connector == "b"


async def test_single_connector_reversed_gives_exhausted_with_the_reason() -> None:
    """With no other connector the error lists the reversal: the payment did not happen."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [unknown()]})
    with pytest.raises(ConnectorsExhaustedError) as info:
        await router(a).authorise(request(), KEY)
    assert info.value.fields["attempts"][0]["reason"] == AuthorisationReversedError.__name__


async def test_safe_authorisation_is_resent_with_backoff() -> None:
    """A connector with idempotency keys gets the same authorisation again."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [unknown(), unknown()]},
                          retry_safe=list(Operation))
    answer = await router(a).authorise(request(), KEY)
    assert answer.approved
    assert [op for op, _ in a.calls] == [Operation.AUTHORISE] * 3


async def test_failed_reversal_is_pending_with_a_payload_to_queue() -> None:
    """If the reversal cannot be confirmed, ReversalPendingError carries what to queue."""
    a = ScriptedConnector("a", {
        Operation.AUTHORISE: [unknown()],
        Operation.REVERSE: [unknown(), unknown(), unknown()],
    })
    b = ScriptedConnector("b")
    req = request()
    with pytest.raises(ReversalPendingError) as info:
        await router(a, b).authorise(req, KEY)
    assert b.calls == []  # never charge a second PSP while the first is in doubt
    reversal = info.value.reversal
    assert reversal["original"]["stan"] == "000001"
    assert info.value.fields["idempotency_key"] == str(req.transaction_id)
    replayed = await router(a, b).replay_reversal(reversal)
    assert replayed.approved


async def test_safe_operations_retry_unsafe_do_not() -> None:
    """Status is resent after a timeout; a refund (not retry-safe here) is not."""
    a = ScriptedConnector("a", {Operation.STATUS: [unknown()],
                                Operation.REFUND: [unknown()]})
    r = router(a)
    ref = PspReference(connector="a", transaction_id="t")
    assert (await r.status(ref)).approved
    with pytest.raises(PspTimeoutError):
        await r.refund(RefundRequest(uuid.uuid4(), MAD, ref))


async def test_rejection_falls_through_without_reversal() -> None:
    """A PSP refusing the request (bad credentials) did nothing: no reversal, next one."""
    a = ScriptedConnector("a", {Operation.AUTHORISE: [PspRejectedError("401", connector="a")]})
    answer = await router(a, ScriptedConnector("b")).authorise(request(), KEY)
    assert answer.reference.connector == "b"
    assert [op for op, _ in a.calls] == [Operation.AUTHORISE]


@pytest.mark.parametrize("kind", ["iso8583", "stripe", "paypal"])
def test_connectors_implement_the_protocol(kind: str) -> None:
    """Every real connector satisfies the Connector Protocol, like the scripted one."""
    connector: object
    if kind == "iso8583":
        connector = Iso8583Connector(Iso8583Settings(
            HostContext("c", "1", "ETK00001", "ETIKA0000000001"), "127.0.0.1", 1, b""))
    elif kind == "stripe":
        connector = StripeConnector(RestSettings("s", "http://127.0.0.1:1", b""))
    else:
        connector = PayPalConnector(RestSettings("p", "http://127.0.0.1:1", b""))
    assert isinstance(connector, Connector)
    assert isinstance(ScriptedConnector("x"), Connector)
