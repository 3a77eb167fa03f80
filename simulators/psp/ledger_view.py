"""The acquirer's ledger as a read-only JSON document, for reconciliation.

Every simulated PSP serves it on loopback: the ISO 8583 host on its control port
(:mod:`simulators.psp.control`), the REST gateways on their own port, both as
``GET /ledger/summary``. ``etika platform reconcile --psp-url`` reads it and compares it,
payment by payment, with the platform's mirror of the terminals' payments.

One entry per idempotency key (the terminal's payment UUID; an offline approval's advice
and a refund under keys of their own)::

    {"key", "kind": "sale|auth|advice|refund", "state": "declined|held|captured|reversed|
     refunded", "amount_minor", "currency": "MAD", "captured", "refunded", "original_key",
     "code"}

No card data: the acquirer keeps accounts by PAN, the ledger only by key. Currencies are
ISO 4217 alphabetic codes whatever the PSP's wire carried (ISO 8583 DE 49 is numeric).
"""

from __future__ import annotations

from typing import Any

from simulators.psp.acquirer import Acquirer
from terminal.money import CURRENCIES

__all__ = ["LEDGER_PATH", "ledger_summary"]

LEDGER_PATH = "/ledger/summary"

_BY_NUMERIC = {str(c.numeric).zfill(3): c.code for c in CURRENCIES.values()}


def _alpha(currency: str) -> str:
    text = str(currency).strip()
    if text.isdigit():
        return _BY_NUMERIC.get(text.zfill(3), text)
    return text.upper()


def ledger_summary(acquirer: Acquirer) -> dict[str, Any]:
    """The acquirer's ledger as JSON: entries and per-currency, per-state counts and sums."""
    entries, postings = acquirer.snapshot()
    by_currency: dict[str, dict[str, dict[str, int]]] = {}
    rows = []
    for entry in entries:
        currency = _alpha(entry.currency)
        rows.append({"key": entry.key, "kind": str(entry.kind), "state": entry.state,
                     "amount_minor": entry.amount, "currency": currency,
                     "captured": entry.captured, "refunded": entry.refunded,
                     "original_key": entry.original_key, "code": entry.decision.code})
        cell = by_currency.setdefault(currency, {}).setdefault(
            entry.state, {"count": 0, "amount_minor": 0})
        cell["count"] += 1
        cell["amount_minor"] += entry.amount
    return {"entries": rows, "by_currency": by_currency, "postings": postings}
