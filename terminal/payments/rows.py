"""The shapes of the payment rows the ledger reads back (seed 000's schema, migrations 0001
and 0007), one ``TypedDict`` per query.

These cross into the CLI (``etika tx list/show``) and the UI (history and detail screens),
so they are typed column by column instead of ``dict[str, Any]``: a typo in a column name,
or a nullable column used as if it were set, is a mypy error at the call site. SQLite's
``INTEGER``/``REAL``/``TEXT`` become ``int``/``float``/``str`` (``| None`` when nullable);
the JSON columns are decoded and typed :data:`~edge_sync.json_types.JsonValue` (a value that
is not valid JSON is kept as the stored string, so ``str`` is one of its cases).

No card data: ``vault_blob`` (sealed card data) is not a key of :class:`PaymentRow`, so it
is never read back, shown or exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from edge_sync.json_types import JsonValue

__all__ = [
    "AttemptRow",
    "FraudCheckRow",
    "JournalEntry",
    "PaymentDetail",
    "PaymentRow",
    "PaymentSummary",
    "PopRow",
    "RefundRow",
    "connector_of",
]


class PaymentSummary(TypedDict):
    """One line of the history (:func:`~terminal.payments.ledger.list_payments`)."""

    id: str
    created_at: str
    status: str
    amount_minor: int
    currency: str
    pan_masked: str | None
    network: str | None
    offline: int  # 0 | 1: SQLite has no boolean, and ``tx list --json`` shows it as stored
    reason: str | None


class PaymentRow(PaymentSummary):
    """Every column of ``payments`` but ``vault_blob``
    (:func:`~terminal.payments.ledger.payment_row`)."""

    order_ref: str | None
    payment_method: str
    gateway_provider: str | None
    gateway_transaction_id: str | None
    card_token: str | None
    key_version: int | None
    updated_at: str
    card_fingerprint: str | None
    entry_mode: str | None
    auth_code: str | None
    emv: JsonValue
    route_connectors: JsonValue
    psp_reference: JsonValue
    receipt: JsonValue
    captured_minor: int | None


class AttemptRow(TypedDict):
    """One try at a PSP (``payment_attempts``)."""

    attempt_number: int
    status: str
    error_code: str | None
    error_message: str | None
    gateway_response: JsonValue
    created_at: str


class FraudCheckRow(TypedDict):
    """The fraud check of a payment (``fraud_checks``)."""

    risk_score: float | None
    risk_level: str | None
    decision: str | None
    checks_performed: JsonValue
    created_at: str


class PopRow(TypedDict):
    """The payment's proof-of-participation record (``pop_transactions``)."""

    id: str
    status: str
    pop_reference: str | None
    sequence: int | None
    reason: str | None
    updated_at: str


class RefundRow(TypedDict):
    """A refund or a void of the payment (``refunds``)."""

    id: str
    kind: str  # refund | void
    amount_minor: int
    currency: str
    status: str
    reason: str | None
    pop_record_id: str | None
    created_at: str


# Functional syntax: ``from`` is a keyword, so it cannot be a class-syntax field.
JournalEntry = TypedDict("JournalEntry", {
    "id": int, "at": str, "entity": str, "action": str, "from": str | None, "to": str | None,
})
"""One ``audit_journal`` entry of the payment, its refunds or its PoP record."""


class PaymentDetail(PaymentRow):
    """A payment with what hangs off it (:func:`~terminal.payments.ledger.payment_detail`)."""

    attempts: list[AttemptRow]
    fraud_check: FraudCheckRow | None
    pop: PopRow | None
    refunds: list[RefundRow]
    journal: list[JournalEntry]


def connector_of(attempt: AttemptRow) -> str:
    """The PSP an attempt went to, as its stored response names it (``-`` when it does not)."""
    response = attempt["gateway_response"]
    connector = response.get("connector") if isinstance(response, Mapping) else None
    return connector if isinstance(connector, str) else "-"
