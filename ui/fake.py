"""An in-memory :class:`~ui.facade.CounterServices` for Pilot tests and screenshots.

It keeps payments in a list and plays each sale from a :class:`ScriptedSale`: the events a
real sale emits (card in, PIN, bank), an application choice when the card offers several,
and how it ends. ``ScriptedSale.hold`` makes a sale wait (a slow PSP) until the test sets
it, so nothing in a test depends on time. Like the real services it refuses what the
terminal refuses (an unknown payment, a refund above what is left, a stale rate).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from terminal.money import Amount, FxRate, convert, currency, parse_amount
from terminal.payments.model import (
    APPROVED_STATES,
    InvalidAmountError,
    PaymentEvent,
    PaymentOutcome,
    RefundOutcome,
    RefundRefusedError,
    UnknownPaymentError,
)
from terminal.services.cards import ReaderStatus
from terminal.services.fake import ScriptedReaderProbe
from ui.facade import (
    ApplicationChooser,
    CounterInfo,
    DiagnosticRow,
    EndOfDayReport,
    EndOfDayTotal,
    EventCallback,
    Health,
    HistoryQuery,
    HistoryRow,
    PaymentDetailView,
    PrintResult,
    Quote,
    StatusSnapshot,
    describe_breaker,
    reader_health,
)

__all__ = ["FIXED_NOW", "FakeCounterServices", "ScriptedSale"]

#: The fake's clock: screenshots and tests see the same times on every run.
FIXED_NOW = dt.datetime(2026, 12, 3, 14, 32, 7, tzinfo=dt.UTC)


_ID_NAMESPACE = uuid.UUID("6f9c1d2e-0000-4000-8000-000000000014")


@dataclass
class ScriptedSale:
    """How the next sale goes."""

    state: str = "completed"
    reason: str = "approved by the issuer"
    offline: bool = False
    network: str = "VISA"
    masked_pan: str = "476173******0010"
    pop_status: str | None = "confirmed"
    events: tuple[tuple[str, str], ...] = (
        ("card_in", "Virtual PCD 00 00"), ("reading", ""), ("pin", "prompt"),
        ("online", "cih-iso"), ("finalising", ""))
    applications: tuple[str, ...] = ()
    hold: asyncio.Event | None = None
    #: The application the customer chose, once the sale has asked.
    chosen: str | None = None


@dataclass
class _Payment:
    outcome: PaymentOutcome
    created_at: dt.datetime
    refunded_minor: int = 0
    refunds: list[RefundOutcome] = field(default_factory=list)


class FakeCounterServices:
    """See the module docstring."""

    def __init__(self, *, sales: list[ScriptedSale] | None = None, locale: str = "fr",
                 printer_fault: str | None = None, now: dt.datetime = FIXED_NOW,
                 rates: list[FxRate] | None = None,
                 reader_probe: ScriptedReaderProbe | None = None) -> None:
        self._info = CounterInfo(merchant_name="Boulangerie Atlas", terminal_id="ETK00001",
                                 locale=locale, default_currency="MAD",
                                 currencies=("MAD", "EUR", "USD"))
        self.sales = list(sales or [])
        self.printer_fault = printer_fault
        self.now = now
        self.rates = rates if rates is not None else [
            FxRate(currency("EUR"), currency("MAD"), Decimal("10.8350"),
                   now - dt.timedelta(hours=5), dt.timedelta(days=1)),
            FxRate(currency("USD"), currency("MAD"), Decimal("9.9820"),
                   now - dt.timedelta(days=3), dt.timedelta(days=1)),
        ]
        #: The counter's readers: a test inserts a card or unplugs a reader here.
        self.reader_probe = reader_probe or ScriptedReaderProbe("Virtual PCD 00 00",
                                                                "Virtual PCD 00 01")
        #: PSP breakers as ``(name, state, retry_in_s)``; a test opens one.
        self.breakers: list[tuple[str, str, float | None]] = [
            ("cih", "closed", None), ("attijariwafa", "open", 12.0),
            ("bmce", "half_open", None)]
        self.payments: list[_Payment] = []
        self.printed: list[tuple[str, str]] = []
        self.end_of_days: list[dt.date] = []
        self.online = True
        self._ids = 0

    def _next_id(self) -> uuid.UUID:
        # Deterministic ids: screenshots and tests see the same ones on every run.
        self._ids += 1
        return uuid.uuid5(_ID_NAMESPACE, str(self._ids))

    @property
    def info(self) -> CounterInfo:
        return self._info

    def quote(self, text: str, currency_code: str, *, now: dt.datetime | None = None) -> Quote:
        typed = parse_amount(text, currency_code)
        home = currency(self._info.default_currency)
        if typed.currency == home:
            return Quote(typed, typed)
        moment = now or self.now
        charged = convert(typed, home, self.rates, now=moment)
        rate = next(r for r in self.rates if {r.base, r.quote} == {typed.currency, home})
        return Quote(typed, charged, rate.rate, rate.as_of, rate.age(moment).total_seconds())

    async def sale(self, amount: Amount, *, contactless: bool, on_event: EventCallback,
                   choose_application: ApplicationChooser) -> PaymentOutcome:
        if amount.minor <= 0:
            raise InvalidAmountError(f"a sale of {amount} is refused: the amount must be "
                                     "above zero")
        script = self.sales.pop(0) if self.sales else ScriptedSale()
        payment_id = self._next_id()
        on_event(PaymentEvent("waiting_card", "present the card", payment_id))
        state = script.state
        reason = script.reason
        try:
            for kind, detail in script.events:
                if kind == "card_in" and len(script.applications) > 1:
                    on_event(PaymentEvent(kind, detail, payment_id))
                    index = await choose_application(list(script.applications))
                    script.chosen = script.applications[index]
                    continue
                on_event(PaymentEvent(kind, detail, payment_id))
                await asyncio.sleep(0)
            if script.hold is not None:
                await script.hold.wait()
        except asyncio.CancelledError:
            self._keep(payment_id, amount, "cancelled", "cancelled by the cashier", script)
            raise
        outcome = self._keep(payment_id, amount, state, reason, script)
        on_event(PaymentEvent("done", state, payment_id))
        return outcome

    def _keep(self, payment_id: uuid.UUID, amount: Amount, state: str, reason: str,
              script: ScriptedSale) -> PaymentOutcome:
        approved = state in APPROVED_STATES
        receipts = {copy: self._receipt(copy, amount, state, script)
                    for copy in ("merchant", "customer")}
        outcome = PaymentOutcome(
            payment_id=payment_id, state=state, approved=approved, reason=reason,
            amount=amount, offline=script.offline, masked_pan=script.masked_pan,
            network=script.network, auth_code="123456" if approved and not script.offline
            else None, pop_status=script.pop_status if approved else None,
            pop_reference="7f3a2c91" if approved and script.pop_status == "confirmed"
            else None, receipts=receipts)
        self.payments.append(_Payment(outcome, self.now))
        return outcome

    def _receipt(self, copy: str, amount: Amount, state: str, script: ScriptedSale) -> str:
        lines = [self._info.merchant_name.upper(), f"TPE {self._info.terminal_id}",
                 self.now.strftime("%d/%m/%Y %H:%M:%S"), f"VENTE {amount}",
                 f"{script.network} {script.masked_pan}", state.upper(),
                 "TICKET CLIENT" if copy == "customer" else "TICKET COMMERCANT"]
        return "\n".join(lines)

    def _find(self, payment_id: str) -> _Payment:
        for payment in self.payments:
            if str(payment.outcome.payment_id) == payment_id:
                return payment
        raise UnknownPaymentError(f"no payment {payment_id} in this terminal's store")

    async def refund(self, payment_id: str, amount: Amount | None) -> RefundOutcome:
        payment = self._find(payment_id)
        if payment.outcome.state not in APPROVED_STATES:
            raise RefundRefusedError(f"payment {payment_id} is {payment.outcome.state}: "
                                     "only an approved payment can be refunded")
        left = payment.outcome.amount.minor - payment.refunded_minor
        wanted = amount or Amount(left, payment.outcome.amount.currency)
        if wanted.minor > left or wanted.minor == 0:
            raise RefundRefusedError(f"{wanted} is more than the "
                                     f"{Amount(left, wanted.currency)} left to refund")
        payment.refunded_minor += wanted.minor
        outcome = RefundOutcome(self._next_id(), payment.outcome.payment_id, "refund",
                                "approved",
                                wanted, "approved by the acquirer")
        payment.refunds.append(outcome)
        return outcome

    async def void(self, payment_id: str) -> RefundOutcome:
        payment = self._find(payment_id)
        if payment.outcome.state not in APPROVED_STATES or payment.refunded_minor:
            raise RefundRefusedError(f"payment {payment_id} cannot be voided")
        payment.refunded_minor = payment.outcome.amount.minor
        outcome = RefundOutcome(self._next_id(), payment.outcome.payment_id, "void", "approved",
                                payment.outcome.amount, "voided")
        payment.refunds.append(outcome)
        payment.outcome = _with_state(payment.outcome, "voided")
        return outcome

    def _row(self, payment: _Payment) -> HistoryRow:
        o = payment.outcome
        return HistoryRow(str(o.payment_id), payment.created_at.isoformat(), o.state, o.amount,
                          o.masked_pan, o.network, o.offline)

    async def history(self, query: HistoryQuery) -> list[HistoryRow]:
        rows = []
        for payment in reversed(self.payments):
            o = payment.outcome
            day = payment.created_at.date()
            if ((query.state and o.state != query.state)
                    or (query.last4 and not o.masked_pan.endswith(query.last4))
                    or (query.since and day < query.since)
                    or (query.until and day > query.until)
                    or (query.min_minor is not None and o.amount.minor < query.min_minor)
                    or (query.max_minor is not None and o.amount.minor > query.max_minor)):
                continue
            rows.append(self._row(payment))
        return rows[:query.limit]

    async def detail(self, payment_id: str) -> PaymentDetailView:
        payment = self._find(payment_id)
        o = payment.outcome
        return PaymentDetailView(
            row=self._row(payment), reason=o.reason, auth_code=o.auth_code,
            attempts=("1 cih-iso: approved",) if o.approved else ("1 cih-iso: declined",),
            fraud="0.05 low → allow", pop=f"{o.pop_status or '-'} {o.pop_reference or ''}",
            refunds=tuple(f"{r.kind} {r.state} {r.amount}" for r in payment.refunds),
            journal=("created", "authorising", o.state), receipts=o.receipts,
            refundable_minor=o.amount.minor - payment.refunded_minor
            if o.state in APPROVED_STATES else 0,
            voidable=o.state in APPROVED_STATES and not payment.refunded_minor)

    async def status(self) -> StatusSnapshot:
        printer = (Health(False, self.printer_fault) if self.printer_fault
                   else Health(True, "ready"))
        return StatusSnapshot(
            online=self.online, outbox_depth=0, oldest_pending_age_s=None,
            last_sync_at=self.now - dt.timedelta(minutes=1), key_store=Health(True, "token"),
            reader=reader_health(await self.readers()), pinpad=Health(True, "/dev/pts/9"),
            printer=printer)

    async def readers(self) -> list[ReaderStatus]:
        return await self.reader_probe.probe()

    async def diagnostics(self) -> list[DiagnosticRow]:
        rows = [DiagnosticRow("reader", r.reader or "card reader",
                              r.state.value.replace("_", " "), r.state.value != "no_reader")
                for r in await self.readers()]
        rows += [
            DiagnosticRow("pinpad", "/dev/pts/9", "answers", True),
            DiagnosticRow("key store", "signing key v1", "KCV 1A2B3C", True),
            DiagnosticRow("broker", "mqtts://127.0.0.1:8883", "connected", True),
        ]
        for name, state, retry in self.breakers:
            value, ok = describe_breaker(state, retry)
            rows.append(DiagnosticRow("psp", name, value, ok))
        rows += [
            DiagnosticRow("pop", "https://127.0.0.1:8443", "reachable", True),
            DiagnosticRow("profile", "version", "default 2026-11-22", None),
        ]
        return rows

    async def end_of_day(self, day: dt.date) -> EndOfDayReport:
        sums: dict[tuple[str, str], list[int]] = {}
        for payment in self.payments:
            o = payment.outcome
            if o.state in APPROVED_STATES and payment.created_at.date() == day:
                entry = sums.setdefault((o.amount.currency.code, o.network), [0, 0])
                entry[0] += 1
                entry[1] += o.amount.minor - payment.refunded_minor
        totals = tuple(EndOfDayTotal(c, n, count, minor)
                       for (c, n), (count, minor) in sorted(sums.items()))
        text = "\n".join([f"CLOTURE {day.isoformat()}"]
                         + [f"{t.currency} {t.network} {t.count} {t.amount_minor}"
                            for t in totals])
        self.end_of_days.append(day)
        printed = await self.print_receipt(text, copy="merchant")
        return EndOfDayReport(day, totals, True, printed, text)

    async def print_receipt(self, text: str, *, copy: str) -> PrintResult:
        if self.printer_fault:
            return PrintResult(False, self.printer_fault)
        self.printed.append((copy, text))
        return PrintResult(True)


def _with_state(outcome: PaymentOutcome, state: str) -> PaymentOutcome:
    from dataclasses import replace

    return replace(outcome, state=state, approved=False)
