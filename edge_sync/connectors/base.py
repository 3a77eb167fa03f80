"""What every PSP connector takes and gives: requests, responses, the Connector Protocol.

A connector speaks one acquirer's protocol (ISO 8583 over TCP, a REST API). The terminal
hands it values only: amounts in minor units, the EMV data for DE 55, the encrypted PIN
block and its KSN, and a :class:`CardEncryptor` that seals the card data for *this* PSP's
public key (P2PE) — the connector never holds a clear PAN. Every request carries the
transaction UUID as its idempotency key; every answer is a :class:`PspResponse` whose
:class:`Outcome` is derived from the PSP's own code, which is kept verbatim.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "SEARCH_SETTLE_S",
    "Amount",
    "AuthorisationRequest",
    "CardEncryptor",
    "CardInput",
    "Connector",
    "EntryMode",
    "Operation",
    "Outcome",
    "PspReference",
    "PspResponse",
    "RefundRequest",
]


#: Seconds after a transaction from which a search that still finds no payment for it is
#: believed (see :attr:`PspResponse.not_found_by_search`): five times Stripe's documented lag.
SEARCH_SETTLE_S = 300.0


class Operation(StrEnum):
    AUTHORISE = "authorise"
    COMPLETE = "complete"
    REVERSE = "reverse"
    REFUND = "refund"
    ADVICE = "advice"
    STATUS = "status"
    ECHO = "echo"


class Outcome(StrEnum):
    """How the terminal acts on an answer; the PSP's code stays in ``PspResponse.code``."""

    APPROVE = "approve"  # the operation happened
    DECLINE = "decline"  # it did not and will not: do not retry it
    RETRY = "retry"  # the PSP could not decide now (issuer down, system error): may retry
    REFER = "refer"  # call the issuer (voice referral): the terminal declines or asks


class EntryMode(StrEnum):
    """How the card was read (drives ISO 8583 DE 22 and the REST ``read_method``)."""

    CHIP = "chip"
    CONTACTLESS = "contactless"
    OFFLINE_ADVICE = "offline"  # an advice for a payment approved offline by the card


@dataclass(frozen=True)
class Amount:
    """An amount in minor units of an ISO 4217 currency (alpha, numeric and exponent)."""

    minor: int
    currency: str
    numeric: int
    exponent: int

    def __post_init__(self) -> None:
        if not 0 <= self.minor <= 999_999_999_999:
            raise ValueError("an amount is 0 to 999999999999 minor units (12 digits)")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"{self.currency!r} is not an ISO 4217 alphabetic code")
        if not 1 <= self.numeric <= 999:
            raise ValueError("an ISO 4217 numeric code is 1 to 999")

    def decimal_text(self) -> str:
        """``"12.34"``: the major-unit text PayPal expects."""
        if self.exponent == 0:
            return str(self.minor)
        text = f"{self.minor:0{self.exponent + 1}d}"
        return f"{text[: -self.exponent]}.{text[-self.exponent :]}"


@runtime_checkable
class CardEncryptor(Protocol):
    """Seals the card's PAN and expiry for one PSP (``hsm.p2pe`` format).

    ``context`` binds the envelope to the transaction (its UUID as text): the PSP opens it
    with the same context, so an envelope cannot be replayed into another payment.
    """

    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes: ...


@dataclass(frozen=True)
class CardInput:
    """What the terminal knows of the card for an online request; no clear card data."""

    encryptor: CardEncryptor = field(repr=False)
    entry_mode: EntryMode = EntryMode.CHIP
    #: ICC data for ISO 8583 DE 55: BER-TLV, never tags 5A/57/5F20/9F1F/56/9F6B.
    emv_data: bytes = b""
    pan_sequence: str | None = None
    #: Enciphered PIN block (ISO 9564 format 0 or 4) and the DUKPT KSN it was made under.
    pin_block: bytes | None = field(default=None, repr=False)
    ksn: bytes | None = None
    masked_pan: str = ""

    def __post_init__(self) -> None:
        if (self.pin_block is None) != (self.ksn is None):
            raise ValueError("a PIN block travels with its KSN: give both or neither")
        if self.pan_sequence is not None and not (
            len(self.pan_sequence) <= 3 and self.pan_sequence.isdigit()
        ):
            raise ValueError("a PAN sequence number is up to 3 digits")


@dataclass(frozen=True)
class AuthorisationRequest:
    """An online authorisation (``capture`` = sale) or an advice of an offline approval."""

    transaction_id: uuid.UUID
    amount: Amount
    card: CardInput
    capture: bool = True
    network: str = ""

    @property
    def idempotency_key(self) -> str:
        return str(self.transaction_id)


@dataclass(frozen=True)
class RefundRequest:
    """A refund: a transaction of its own (``transaction_id``) against an earlier payment."""

    transaction_id: uuid.UUID
    amount: Amount
    original: PspReference

    @property
    def idempotency_key(self) -> str:
        return str(self.transaction_id)


@dataclass(frozen=True)
class PspReference:
    """How a PSP knows a transaction: enough to complete, reverse, refund or query it.

    JSON-able (:meth:`as_dict` / :meth:`from_dict`) so it can be stored in outbox payloads.
    """

    connector: str
    transaction_id: str
    operation: str = Operation.AUTHORISE.value
    #: ISO 8583: MTI, STAN (DE 11), transmission date-time (DE 7), RRN (DE 37).
    mti: str | None = None
    stan: str | None = None
    transmitted_at: str | None = None
    rrn: str | None = None
    approval_code: str | None = None
    #: REST: the PSP's object id (Stripe ``pi_…``, PayPal order/authorization/capture id).
    psp_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None

    def as_dict(self) -> dict[str, str | int]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PspReference:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PSP reference fields {sorted(unknown)}")
        fields: dict[str, Any] = dict(data)
        return cls(**fields)


@dataclass(frozen=True)
class PspResponse:
    """A classified answer; ``code`` and ``message`` are the PSP's own, kept verbatim."""

    outcome: Outcome
    code: str
    message: str
    operation: Operation
    reference: PspReference
    #: ISO 8583 DE 55 of the answer (tag 91 issuer authentication data, scripts 71/72).
    emv_data: bytes = b""
    #: The answer carried issuer data that could not be read (not hex, too long): the
    #: decision stands and the kernel counts a failed issuer authentication (EMV Book 3
    #: §10.9); ``emv_data`` is then empty.
    issuer_data_malformed: bool = False
    #: The PSP answered from its idempotency cache (a replay of an earlier answer).
    replayed: bool = False
    #: The answer rests on a search that found no payment for the transaction. Stripe's and
    #: PayPal's searches are eventually consistent (Stripe documents results lagging by up
    #: to about a minute), so soon after an unanswered authorisation this is no proof that
    #: nothing was charged: the router queues the reversal instead of trying another PSP,
    #: and the outbox asks again until :data:`SEARCH_SETTLE_S` have passed.
    not_found_by_search: bool = False

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVE


@runtime_checkable
class Connector(Protocol):
    """One PSP or acquirer host. Implementations: ISO 8583, Stripe-like, PayPal-like."""

    @property
    def name(self) -> str: ...

    def retry_safe(self, operation: Operation) -> bool:
        """Whether sending ``operation`` again after an unknown outcome cannot act twice."""
        ...

    async def authorise(self, request: AuthorisationRequest) -> PspResponse: ...

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse: ...

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse: ...

    async def refund(self, request: RefundRequest) -> PspResponse: ...

    async def advice(self, request: AuthorisationRequest) -> PspResponse: ...

    async def status(self, original: PspReference) -> PspResponse: ...

    async def echo(self) -> PspResponse: ...

    async def aclose(self) -> None: ...
