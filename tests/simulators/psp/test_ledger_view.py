"""Every simulated PSP serves its ledger read-only for reconciliation: the REST gateways on
their own port, as the ISO 8583 host does on its control port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from simulators.psp.acquirer import Acquirer
from simulators.psp.keys import private_key_path
from simulators.psp.paypal_gateway import paypal_app
from simulators.psp.stripe_gateway import stripe_app


@pytest.mark.parametrize(("kind", "app"), [("stripe", stripe_app), ("paypal", paypal_app)])
async def test_rest_gateway_serves_its_ledger(kind: str, app: Callable[[Acquirer], Any]) -> None:
    """GET /ledger/summary on a REST gateway lists what its acquirer booked, by key."""
    acquirer = Acquirer(private_key_path(kind).read_bytes())
    acquirer.reverse("k-1")  # a reversal before its original: a tombstone entry
    transport = httpx.ASGITransport(app=app(acquirer))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        summary = (await client.get("/ledger/summary")).json()
    assert [(e["key"], e["state"]) for e in summary["entries"]] == [("k-1", "reversed")]


def test_numeric_currencies_are_shown_alphabetic() -> None:
    """ISO 8583 carries ISO 4217 numeric codes (DE 49); the ledger shows the alphabetic one
    so that every PSP's ledger compares with the platform's."""
    from simulators.psp.acquirer import Decision, EntryKind, LedgerEntry
    from simulators.psp.ledger_view import ledger_summary

    acquirer = Acquirer(private_key_path("iso8583").read_bytes())
    for key, currency in (("a", "504"), ("b", "eur")):
        acquirer.ledger[key] = LedgerEntry(key, EntryKind.SALE, 100, currency,
                                           Decision("00", "APPROVED"), state="captured",
                                           captured=100)
    summary = ledger_summary(acquirer)
    assert [e["currency"] for e in summary["entries"]] == ["MAD", "EUR"]
    assert set(summary["by_currency"]) == {"MAD", "EUR"}
