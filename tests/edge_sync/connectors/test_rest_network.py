"""The Stripe- and PayPal-like connectors against the simulated gateways, on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from edge_sync.connectors import (
    Amount,
    BreakerSettings,
    Outcome,
    RefundRequest,
    Router,
    RouteRule,
    RoutingKey,
)
from edge_sync.connectors.errors import (
    ConnectorsExhaustedError,
    MalformedResponseError,
    OutcomeUnknownError,
    PspRejectedError,
    PspTimeoutError,
)
from simulators.psp.acquirer import LOST_PAN, LOW_BALANCE_PAN
from tests.fixtures.psp import EUR, VISA_PAN, authorisation

pytestmark = [pytest.mark.network, pytest.mark.filterwarnings("ignore:.*TripleDES")]

KEY = RoutingKey(network="visa", currency="EUR", amount_minor=EUR.minor)
KINDS = ["stripe", "paypal"]
RestFactory = Callable[..., Any]


async def no_sleep(_: float) -> None:
    return None


def router(*connectors: Any, failures: int = 5) -> Router:
    return Router([RouteRule("all", tuple(c.name for c in connectors))],
                  {c.name: c for c in connectors}, {},
                  breakers={c.name: BreakerSettings(failures=failures, reset_s=60)
                            for c in connectors},
                  sleep=no_sleep)


@pytest.mark.parametrize("kind", KINDS)
async def test_sale_refund_status(rest_gateway: RestFactory, kind: str) -> None:
    """A sale is approved with the ARPC, refunded in part, and its status read back."""
    with rest_gateway(kind) as sim:
        sale = await sim.connector.authorise(authorisation(EUR))
        assert sale.approved and sale.reference.psp_id
        assert sale.emv_data[:1] == b"\x91"
        refund = await sim.connector.refund(
            RefundRequest(uuid.uuid4(), Amount(1000, "EUR", 978, 2), sale.reference))
        assert refund.approved
        assert (await sim.connector.status(sale.reference)).approved
        assert (await sim.connector.echo()).approved
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000 - 2500 + 1000
        await sim.connector.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_authorise_then_capture(rest_gateway: RestFactory, kind: str) -> None:
    """An authorisation only holds; completion captures the final amount."""
    with rest_gateway(kind) as sim:
        auth = await sim.connector.authorise(authorisation(EUR, capture=False))
        assert auth.approved
        done = await sim.connector.complete(auth.reference, Amount(2000, "EUR", 978, 2))
        assert done.approved
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000 - 2000
        await sim.connector.aclose()


@pytest.mark.parametrize(
    ("kind",    "card",                     "code"),
    [
        ("stripe",  {"pan": LOW_BALANCE_PAN},   "insufficient_funds"),
        ("stripe",  {"pan": LOST_PAN},          "lost_card"),
        ("stripe",  {"tamper": True},           "do_not_honor"),
        ("paypal",  {"pan": LOW_BALANCE_PAN},   "5120"),
        ("paypal",  {"expiry": "2301"},         "5400"),
        ("paypal",  {"tamper": True},           "0500"),
    ],
)
async def test_declines_keep_the_gateway_code(rest_gateway: RestFactory, kind: str,
                                             card: dict[str, Any], code: str) -> None:
    """Declines are classified and carry the gateway's own code."""
    with rest_gateway(kind) as sim:
        answer = await sim.connector.authorise(authorisation(EUR, **card))
        assert (answer.outcome, answer.code) == (Outcome.DECLINE, code)
        assert sim.acquirer.postings == 0
        await sim.connector.aclose()


@pytest.mark.parametrize(
    ("kind",    "fault"),
    [
        ("stripe",  "timeout=1"),
        ("stripe",  "drop-after=1"),
        ("stripe",  "malformed=1"),
        ("paypal",  "timeout=1"),
        ("paypal",  "truncated=1"),
        ("paypal",  "drop=1"),
    ],
)
async def test_retried_request_is_charged_once(rest_gateway: RestFactory, kind: str,
                                               fault: str) -> None:
    """Whatever broke the first exchange, the resend under the same key charges once."""
    with rest_gateway(kind, fault, timeout_s=0.5) as sim:
        answer = await router(sim.connector).authorise(authorisation(EUR), KEY)
        assert answer.approved
        assert sim.acquirer.postings == 1
        await sim.connector.aclose()


@pytest.mark.parametrize(
    ("fault",         "error"),
    [
        ("timeout=1",     PspTimeoutError),
        ("malformed=1",   MalformedResponseError),
        ("truncated=1",   OutcomeUnknownError),
    ],
)
async def test_broken_answers_are_clear_errors(rest_gateway: RestFactory, fault: str,
                                               error: type[Exception]) -> None:
    """Each broken answer is its own error, naming the transaction."""
    with rest_gateway("stripe", fault, timeout_s=0.5) as sim:
        request = authorisation(EUR)
        with pytest.raises(error) as info:
            await sim.connector.authorise(request)
        assert info.value.fields["idempotency_key"] == str(request.transaction_id)  # type: ignore[attr-defined]
        await sim.connector.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_timeouts_exhausted_send_a_reversal(rest_gateway: RestFactory, kind: str) -> None:
    """When every resend times out, the payment is found by its key and undone (a captured
    sale is refunded in full, as the gateways cannot cancel it)."""
    with rest_gateway(kind, "timeout=3", timeout_s=0.3) as sim:
        request = authorisation(EUR)
        with pytest.raises(ConnectorsExhaustedError) as info:
            await router(sim.connector).authorise(request, KEY)
        assert info.value.fields["attempts"][0]["reason"] == "AuthorisationReversedError"
        assert sim.acquirer.entry(str(request.transaction_id)).state == "refunded"
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000
        await sim.connector.aclose()


async def test_wrong_credentials_are_rejected(rest_gateway: RestFactory) -> None:
    """A bad API key is a PspRejectedError that says to fix the credentials."""
    with rest_gateway("stripe", api_key="pk_live_nope") as sim:
        with pytest.raises(PspRejectedError, match="credentials"):
            await sim.connector.authorise(authorisation(EUR))
        await sim.connector.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_card_data_tags_in_icc_data_are_refused_before_sending(
    rest_gateway: RestFactory, kind: str
) -> None:
    """ICC data carrying 5A/57 is refused (tags named, values not) and nothing reaches the PSP."""
    request = authorisation(EUR)
    track2 = bytes.fromhex(f"{VISA_PAN}D30122010000000000")
    leaky = replace(request.card, emv_data=request.card.emv_data
                    + bytes.fromhex(f"5A08{VISA_PAN}") + b"\x57" + bytes([len(track2)]) + track2)
    with rest_gateway(kind) as sim:
        with pytest.raises(ValueError, match=r"\['57', '5A'\].*P2PE") as caught:
            await sim.connector.authorise(replace(request, card=leaky))
        assert VISA_PAN not in str(caught.value) and VISA_PAN[6:12] not in str(caught.value)
        assert sim.acquirer.account(VISA_PAN).balance == 10_000_000
        await sim.connector.aclose()
