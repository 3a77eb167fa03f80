"""What a payment is to its callers: the request, the outcome, the events, the errors.

Errors (rooted in :class:`terminal.errors.TerminalError`)::

    PaymentError                 the payment could not be taken or changed (exit 1)
    ├── InvalidAmountError       zero, negative or too large an amount (exit 2)
    ├── UnknownPaymentError      no payment with that id in the store
    └── RefundRefusedError       the refund or void is not allowed for this payment

A decline is not an error: it is an outcome with a reason in words.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edge_sync.json_types import JsonObject, JsonValue
from terminal.errors import TerminalError
from terminal.money import Amount

__all__ = [
    "APPROVED_STATES",
    "FINAL_STATES",
    "EventSink",
    "InvalidAmountError",
    "PaymentError",
    "PaymentEvent",
    "PaymentOutcome",
    "RefundOutcome",
    "RefundRefusedError",
    "SaleRequest",
    "UnknownPaymentError",
]

#: States in which the customer's money is taken (DESIGN §6).
APPROVED_STATES = frozenset({"completed", "pop_deferred"})
#: States nothing moves out of without a person (or the settlement of the outbox).
FINAL_STATES = frozenset({"completed", "financial_declined", "cancelled", "reversed",
                          "offline_declined", "voided"})
#: Largest amount an EMV amount field holds (n12, Book 3 Annex A, tag 9F02).
MAX_MINOR = 999_999_999_999


class PaymentError(TerminalError):
    """The payment could not be taken, refunded or voided; the message says why."""


class InvalidAmountError(PaymentError, ValueError):
    """A sale, refund or void of zero, a negative amount, or more than 12 digits."""

    exit_code = 2


class UnknownPaymentError(PaymentError):
    """No payment with that id; ``etika tx list`` shows the ids."""


class RefundRefusedError(PaymentError):
    """The refund or void is not allowed (state, amount left, end of day passed)."""


@dataclass(frozen=True)
class SaleRequest:
    """What the cashier asked for: an amount, and how the card is presented."""

    amount: Amount
    contactless: bool = False
    order_ref: str | None = None
    reader: str | None = None
    card_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.amount.minor <= 0:
            raise InvalidAmountError(
                f"a sale of {self.amount} is refused: the amount must be above zero")
        if self.amount.minor > MAX_MINOR:
            raise InvalidAmountError(f"{self.amount} is more than a card payment can carry "
                                     "(12 digits of minor units)")


@dataclass(frozen=True)
class PaymentEvent:
    """A step of a payment the counter shows as it happens (``kind`` is stable text)."""

    kind: str  # waiting_card | card_in | reading | pin | online | finalising | done
    detail: str = ""
    payment_id: uuid.UUID | None = None


EventSink = Callable[[PaymentEvent], None]


@dataclass(frozen=True)
class PaymentOutcome:
    """How a sale ended, for the cashier, the CLI's JSON and the receipt."""

    payment_id: uuid.UUID
    state: str
    approved: bool
    reason: str
    amount: Amount
    offline: bool = False
    masked_pan: str = ""
    network: str = ""
    auth_code: str | None = None
    pop_status: str | None = None
    pop_reference: str | None = None
    emv: JsonObject = field(default_factory=dict)
    fraud: JsonObject | None = None
    attempts: int = 0
    receipts: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, JsonValue]:
        return {
            "payment_id": str(self.payment_id),
            "state": self.state,
            "approved": self.approved,
            "offline": self.offline,
            "reason": self.reason,
            "amount": str(self.amount),
            "amount_minor": self.amount.minor,
            "currency": self.amount.currency.code,
            "pan_masked": self.masked_pan,
            "network": self.network,
            "auth_code": self.auth_code,
            "pop_status": self.pop_status,
            "pop_reference": self.pop_reference,
            "attempts": self.attempts,
            "fraud": dict(self.fraud) if self.fraud is not None else None,
            "emv": dict(self.emv),
        }


@dataclass(frozen=True)
class RefundOutcome:
    """How a refund or void ended."""

    refund_id: uuid.UUID
    payment_id: uuid.UUID
    kind: str  # refund | void
    state: str  # approved | declined | pending_sync
    amount: Amount
    reason: str
    receipts: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, JsonValue]:
        return {"refund_id": str(self.refund_id), "payment_id": str(self.payment_id),
                "kind": self.kind, "state": self.state, "amount": str(self.amount),
                "amount_minor": self.amount.minor, "currency": self.amount.currency.code,
                "reason": self.reason}
