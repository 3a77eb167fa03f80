"""What the counter asks of the terminal: one Protocol, the values it returns.

The screens call :class:`CounterServices` from Textual workers and never touch a store, a
reader or a socket themselves (DESIGN §7 item 8). Two implementations keep the same
contract (``tests/ui/test_facade_contract.py``): :class:`ui.services.TerminalCounterServices`
over the terminal's services, and :class:`ui.fake.FakeCounterServices`, in memory, for the
Pilot tests and the screenshots.

Errors the screens show are the project's own (:class:`etika_errors.EtikaError`): a bad
amount, a stale FX rate, a refused refund. Anything else is a defect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from terminal.money import Amount
from terminal.payments.model import PaymentEvent, PaymentOutcome, RefundOutcome
from terminal.services.cards import ReaderState, ReaderStatus

__all__ = [
    "ApplicationChooser",
    "CounterInfo",
    "CounterServices",
    "DiagnosticRow",
    "EndOfDayReport",
    "EndOfDayTotal",
    "Health",
    "HistoryQuery",
    "HistoryRow",
    "PaymentDetailView",
    "PrintResult",
    "Quote",
    "StatusSnapshot",
    "describe_breaker",
    "reader_health",
]

#: Asks the cashier (and customer) which card application to use: display names in, the
#: chosen index out.
ApplicationChooser = Callable[[Sequence[str]], Awaitable[int]]
EventCallback = Callable[[PaymentEvent], None]


@dataclass(frozen=True)
class CounterInfo:
    """Who the counter is: shown in the header and on every receipt."""

    merchant_name: str
    terminal_id: str
    locale: str
    default_currency: str
    currencies: tuple[str, ...]


@dataclass(frozen=True)
class Quote:
    """The amount typed, and what the card is charged (converted when the currencies differ)."""

    typed: Amount
    charged: Amount
    rate: Decimal | None = None
    rate_as_of: dt.datetime | None = None
    rate_age_s: float | None = None


@dataclass(frozen=True)
class Health:
    """One device or link as the status bar shows it: ``ok`` None means not known yet;
    ``state`` is a word the bar translates (the reader's ``no_reader`` / ``waiting`` /
    ``card_in``), empty for the others."""

    ok: bool | None
    detail: str = ""
    state: str = ""


def reader_health(statuses: Sequence[ReaderStatus]) -> Health:
    """The readers in one status-bar item: a card in any reader, else waiting, else none
    (red: a counter without a reader takes no card)."""
    for wanted in (ReaderState.CARD_IN, ReaderState.WAITING):
        names = [s.reader or "" for s in statuses if s.state is wanted]
        if names:
            return Health(True, ", ".join(names), wanted.value)
    why = next((s.detail for s in statuses if s.detail), "no card reader")
    return Health(False, why, ReaderState.NO_READER.value)


def describe_breaker(state: str, retry_in_s: float | None) -> tuple[str, bool | None]:
    """A PSP's circuit breaker as the diagnostics screen shows it, and its mark (half-open
    is neither: the next payment's call to that PSP is the probe that decides)."""
    if state == "open":
        return f"breaker open · retry in {max(0, round(retry_in_s or 0))} s", False
    if state == "half_open":
        return "breaker half-open · the next payment probes it", None
    return "breaker closed", True


@dataclass(frozen=True)
class StatusSnapshot:
    """The terminal's health at a glance (the status bar)."""

    online: bool | None
    outbox_depth: int
    oldest_pending_age_s: float | None
    last_sync_at: dt.datetime | None
    key_store: Health
    reader: Health
    pinpad: Health
    printer: Health


@dataclass(frozen=True)
class DiagnosticRow:
    """One line of the diagnostics screen."""

    section: str
    name: str
    value: str
    ok: bool | None = None


@dataclass(frozen=True)
class HistoryQuery:
    """The history screen's filters; ``None`` means any."""

    state: str | None = None
    last4: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    min_minor: int | None = None
    max_minor: int | None = None
    limit: int = 200


@dataclass(frozen=True)
class HistoryRow:
    """One payment in the history list (no card data but the masked number)."""

    payment_id: str
    created_at: str
    state: str
    amount: Amount
    masked_pan: str = ""
    network: str = ""
    offline: bool = False


@dataclass(frozen=True)
class PaymentDetailView:
    """One payment as the detail screen shows it."""

    row: HistoryRow
    reason: str = ""
    auth_code: str | None = None
    attempts: tuple[str, ...] = ()
    fraud: str = ""
    pop: str = ""
    refunds: tuple[str, ...] = ()
    journal: tuple[str, ...] = ()
    receipts: Mapping[str, str] = field(default_factory=dict)
    refundable_minor: int = 0
    voidable: bool = False


@dataclass(frozen=True)
class PrintResult:
    """Whether a receipt came out; ``reason`` says why not (off, out of paper)."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class EndOfDayTotal:
    currency: str
    network: str
    count: int
    amount_minor: int


@dataclass(frozen=True)
class EndOfDayReport:
    """The day's totals per currency and card network, queued for the platform, printed."""

    day: dt.date
    totals: tuple[EndOfDayTotal, ...]
    queued: bool
    printed: PrintResult
    text: str = ""


class CounterServices(Protocol):
    """Everything the counter's screens need; each call may wait on a device or a host."""

    @property
    def info(self) -> CounterInfo: ...

    def quote(self, text: str, currency: str, *, now: dt.datetime | None = None) -> Quote:
        """Parse what the cashier typed and convert it; raises ``MoneyError`` (bad amount)
        or ``StaleRateError`` (rate too old) with the reason in words."""
        ...

    async def sale(self, amount: Amount, *, contactless: bool, on_event: EventCallback,
                   choose_application: ApplicationChooser) -> PaymentOutcome: ...

    async def refund(self, payment_id: str, amount: Amount | None) -> RefundOutcome: ...

    async def void(self, payment_id: str) -> RefundOutcome: ...

    async def history(self, query: HistoryQuery) -> list[HistoryRow]: ...

    async def detail(self, payment_id: str) -> PaymentDetailView: ...

    async def status(self) -> StatusSnapshot: ...

    async def readers(self) -> list[ReaderStatus]:
        """What each card reader holds now (polled every second or so by the app)."""
        ...

    async def diagnostics(self) -> list[DiagnosticRow]: ...

    async def end_of_day(self, day: dt.date) -> EndOfDayReport: ...

    async def print_receipt(self, text: str, *, copy: str) -> PrintResult: ...
