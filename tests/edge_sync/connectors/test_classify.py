"""How PSP codes become outcomes (the code itself is always kept)."""

from __future__ import annotations

import pytest

from edge_sync.connectors import Outcome
from edge_sync.connectors.classify import classify_iso, classify_paypal, classify_stripe


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("00",   Outcome.APPROVE),
        ("10",   Outcome.APPROVE),
        ("01",   Outcome.REFER),
        ("05",   Outcome.DECLINE),
        ("51",   Outcome.DECLINE),
        ("55",   Outcome.DECLINE),
        ("91",   Outcome.RETRY),
        ("96",   Outcome.RETRY),
        ("Z9",   Outcome.DECLINE),
    ],
)
def test_iso_codes(code: str, outcome: Outcome) -> None:
    """ISO 8583 DE 39 codes map to outcomes; an unknown code never approves."""
    assert classify_iso(code) is outcome


@pytest.mark.parametrize(
    ("status",                  "code",                  "outcome"),
    [
        ("succeeded",               None,                    Outcome.APPROVE),
        ("requires_capture",        None,                    Outcome.APPROVE),
        ("requires_payment_method", "insufficient_funds",    Outcome.DECLINE),
        (None,                      "issuer_not_available",  Outcome.RETRY),
        (None,                      "call_issuer",           Outcome.REFER),
    ],
)
def test_stripe(status: str | None, code: str | None, outcome: Outcome) -> None:
    """Stripe statuses and decline codes map to outcomes."""
    assert classify_stripe(status, code) is outcome


@pytest.mark.parametrize(
    ("status",      "code",                 "outcome"),
    [
        ("COMPLETED",   "0000",                 Outcome.APPROVE),
        ("CREATED",     "0000",                 Outcome.APPROVE),
        ("DECLINED",    "5120",                 Outcome.DECLINE),
        ("COMPLETED",   "5120",                 Outcome.DECLINE),
        (None,          "SERVICE_UNAVAILABLE",  Outcome.RETRY),
    ],
)
def test_paypal(status: str | None, code: str | None, outcome: Outcome) -> None:
    """PayPal statuses with processor codes map to outcomes; a bad code wins over status."""
    assert classify_paypal(status, code) is outcome
