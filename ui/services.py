""":class:`~ui.facade.CounterServices` over the terminal's services (the real counter).

The payments manager, the key store, the store and the sync come from
:class:`terminal.services.TerminalServices`; the PIN pad and the receipt printer are
opened here from the profile (or injected). Store reads run in a thread so a slow disk
never freezes the screen; the sale awaits the card, the PIN pad and the hosts.

A sale the cashier cancels is handed to recovery before the cancel completes: whatever
the acquirer may have approved is reversed (queued in the outbox), as ``etika pay`` does
on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import Any

from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError
from drivers.printer import PrinterError, ReceiptPrinter
from edge_sync.outbox import DestinationStatusRow
from terminal.emv.cvm import OnlinePinRequest, PinCallback
from terminal.emv.offline_pin import OfflinePinCallback
from terminal.emv.selection import Candidate
from terminal.money import Amount, convert, currency, parse_amount
from terminal.payments.model import (
    APPROVED_STATES,
    PaymentEvent,
    PaymentOutcome,
    RefundOutcome,
    SaleRequest,
    UnknownPaymentError,
)
from terminal.payments.rows import PaymentSummary, connector_of
from terminal.services import TerminalServices
from terminal.services.cards import ReaderStatus
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

__all__ = ["TerminalCounterServices"]


class TerminalCounterServices:
    """The counter over one terminal's services; see the module docstring."""

    def __init__(self, services: TerminalServices, *,
                 pinpad_port: str | Callable[[], str | None] | None = None,
                 printer: ReceiptPrinter | None = None, locale: str | None = None) -> None:
        self._services = services
        profile = services.profile
        self._pinpad_port = pinpad_port
        self._printer = printer
        self._recovered = False
        self._info = CounterInfo(
            merchant_name=profile.terminal.merchant_name,
            terminal_id=profile.terminal.terminal_id,
            locale=locale or profile.terminal.locale,
            default_currency=profile.default_currency.code,
            currencies=tuple(profile.currencies.currencies),
        )

    @property
    def info(self) -> CounterInfo:
        return self._info

    # --- amounts ---------------------------------------------------------------------

    def quote(self, text: str, currency_code: str, *, now: dt.datetime | None = None) -> Quote:
        typed = parse_amount(text, currency_code)
        home = self._services.profile.default_currency
        if typed.currency == home:
            return Quote(typed, typed)
        moment = now or dt.datetime.now(dt.UTC)
        rates = self._services.profile.currencies.rates()
        charged = convert(typed, home, rates, now=moment)
        rate = next(r for r in rates if {r.base, r.quote} == {typed.currency, home})
        return Quote(typed, charged, rate.rate, rate.as_of, rate.age(moment).total_seconds())

    # --- the sale --------------------------------------------------------------------

    async def sale(self, amount: Amount, *, contactless: bool, on_event: EventCallback,
                   choose_application: ApplicationChooser) -> PaymentOutcome:
        from terminal.payments.recovery import recover

        services = self._services
        async with contextlib.AsyncExitStack() as stack:
            reader = services.card_reader
            if reader is None:
                from terminal.services.cards import open_pcsc_reader

                reader = open_pcsc_reader()
                closer = getattr(reader, "aclose", None)
                if closer is not None:
                    stack.push_async_callback(closer)
            pin_entry: PinCallback | None = None
            offline_pin: OfflinePinCallback | None = None
            port = self._pinpad()
            if port:
                from terminal.services.cards import pinpad_entry

                settings = services.profile.pinpad
                pad = await stack.enter_async_context(
                    pinpad_entry(port, settings.baud, settings.pin_timeout_s))
                pin_entry = _mirrored(pad.online, on_event)
                offline_pin = pad.offline
            manager = await stack.enter_async_context(
                services.payments(pin_entry=pin_entry, offline_pin=offline_pin,
                                  locale=self._info.locale))
            if not self._recovered:
                await recover(manager)  # a crash's leftovers are finished first
                self._recovered = True

            async def chooser(candidates: Sequence[Candidate]) -> Candidate:
                if len(candidates) < 2:
                    return candidates[0]
                index = await choose_application([c.display_name for c in candidates])
                return candidates[max(0, min(index, len(candidates) - 1))]

            request = SaleRequest(amount=amount, contactless=contactless,
                                  card_timeout_s=services.profile.payments.card_timeout_s)
            try:
                return await manager.sale(request, reader, chooser=chooser,
                                          on_event=on_event)
            except asyncio.CancelledError:
                await recover(manager)
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the block returns

    async def _manager_call(self, job: Any) -> Any:
        async with self._services.payments(locale=self._info.locale) as manager:
            return await job(manager)

    async def refund(self, payment_id: str, amount: Amount | None) -> RefundOutcome:
        from terminal.payments.refunds import refund_payment

        result: RefundOutcome = await self._manager_call(
            lambda manager: refund_payment(manager, payment_id, amount))
        return result

    async def void(self, payment_id: str) -> RefundOutcome:
        from terminal.payments.refunds import void_payment

        result: RefundOutcome = await self._manager_call(
            lambda manager: void_payment(manager, payment_id))
        return result

    # --- history ---------------------------------------------------------------------

    async def history(self, query: HistoryQuery) -> list[HistoryRow]:
        from terminal.payments.ledger import list_payments

        rows = await asyncio.to_thread(
            list_payments, self._services.store, state=query.state, last4=query.last4,
            since=query.since.isoformat() if query.since else None,
            until=(query.until + dt.timedelta(days=1)).isoformat() if query.until else None,
            min_minor=query.min_minor, max_minor=query.max_minor, limit=query.limit)
        return [_history_row(row) for row in rows]

    async def detail(self, payment_id: str) -> PaymentDetailView:
        return await asyncio.to_thread(self._detail, payment_id)

    def _detail(self, payment_id: str) -> PaymentDetailView:
        from terminal.payments.ledger import payment_detail
        from terminal.payments.manager import outcome_from_row

        store = self._services.store
        detail = payment_detail(store, payment_id)
        if detail is None:
            raise UnknownPaymentError(f"no payment {payment_id} in this terminal's store")
        outcome = outcome_from_row(store, detail, self._info.locale)
        attempts = tuple(
            f"{a['attempt_number']} {connector_of(a)}: "
            f"{a['status']} {a['error_code'] or ''}".rstrip() for a in detail["attempts"])
        fraud = detail["fraud_check"]
        pop = detail["pop"]
        refunds = detail["refunds"]
        taken = sum(int(r["amount_minor"]) for r in refunds
                    if r["status"] in ("approved", "pending_sync", "requested"))
        approved = detail["status"] in APPROVED_STATES
        return PaymentDetailView(
            row=_history_row(detail), reason=outcome.reason, auth_code=outcome.auth_code,
            attempts=attempts,
            fraud=(f"{fraud['risk_score']:.2f} {fraud['risk_level']} → {fraud['decision']}"
                   if fraud else ""),
            pop=(f"{pop['status']} {pop['pop_reference'] or ''}".strip() if pop else ""),
            refunds=tuple(f"{r['kind']} {r['status']} "
                          f"{Amount(int(r['amount_minor']), currency(r['currency']))}"
                          for r in refunds),
            journal=tuple(f"#{j['id']} {str(j['at'])[:19]} {j['entity']} "
                          f"{j['from'] or ''}→{j['to'] or j['action']}"
                          for j in detail["journal"]),
            receipts=dict(outcome.receipts),
            refundable_minor=max(0, int(detail["amount_minor"]) - taken) if approved else 0,
            voidable=approved and taken == 0)

    # --- health ----------------------------------------------------------------------

    async def status(self) -> StatusSnapshot:
        rows = await asyncio.to_thread(self._services.sync.status_rows)
        printer = await self._printer_health()
        return StatusSnapshot(
            online=_online(rows), outbox_depth=sum(r["depth"] for r in rows),
            oldest_pending_age_s=max((age for r in rows
                                      if (age := r["oldest_pending_age_s"]) is not None),
                                     default=None),
            last_sync_at=_last_success(rows), key_store=await self._key_store_health(),
            reader=reader_health(await self.readers()), pinpad=self._pinpad_health(),
            printer=printer)

    async def _key_store_health(self) -> Health:
        try:
            keys = await asyncio.to_thread(self._services.key_store)
            return Health(True, f"signing key v{keys.signing_key_version}")
        except Exception as exc:  # every key-store failure is shown, none stops the UI
            return Health(False, str(exc)[:80])

    async def readers(self) -> list[ReaderStatus]:
        return await self._services.reader_probe().probe()

    def _pinpad(self) -> str | None:
        """The PIN pad's port now (a demo's card shelf may switch PIN pads)."""
        return self._pinpad_port() if callable(self._pinpad_port) else self._pinpad_port

    def _pinpad_health(self) -> Health:
        port = self._pinpad()
        if not port:
            return Health(None, "no PIN pad configured")
        return Health(os.path.exists(port), port)

    async def _printer_health(self) -> Health:
        if self._printer is None:
            return Health(None, "no printer configured")
        try:
            state = await self._printer.status()
        except PrinterError as exc:
            return Health(False, exc.message)
        return Health(state.ready, state.describe())

    async def diagnostics(self) -> list[DiagnosticRow]:
        snapshot = await self.status()
        profile = self._services.profile
        rows = [
            DiagnosticRow("profile", "directory", str(profile.directory), None),
            DiagnosticRow("profile", "terminal", profile.terminal.terminal_id, None),
        ]
        for reader in await self.readers():
            rows.append(DiagnosticRow(
                "reader", reader.reader or "card reader",
                reader.state.value.replace("_", " ") + (f": {reader.detail}"
                                                        if reader.detail else ""),
                reader.state.value != "no_reader"))
        rows += [
            DiagnosticRow("pinpad", "PIN pad", snapshot.pinpad.detail, snapshot.pinpad.ok),
            DiagnosticRow("key store", "token", snapshot.key_store.detail,
                          snapshot.key_store.ok),
            DiagnosticRow("printer", "receipt printer", snapshot.printer.detail,
                          snapshot.printer.ok),
        ]
        rows += await asyncio.to_thread(self._key_check_values)
        for row in await asyncio.to_thread(self._services.sync.status_rows):
            healthy = not row.get("dead") and not row.get("last_error")
            rows.append(DiagnosticRow(
                "link", str(row["destination"]),
                f"depth {row.get('depth', 0)}, dead {row.get('dead', 0)}"
                + (f", last error: {row['last_error']}" if row.get("last_error") else ""),
                healthy))
        sync = profile.sync
        broker = (f"mqtt{'s' if sync.mqtt_tls else ''}://{sync.mqtt_host}:{sync.mqtt_port}"
                  if not sync.https_url else sync.https_url)
        rows.append(DiagnosticRow("link", "platform", broker, None))
        rows.append(DiagnosticRow("link", "PoP", sync.pop_url or "not configured", None))
        breakers = {b.name: b for b in self._services.breaker_states()}
        for psp in profile.psps:
            where = psp.url or f"{psp.host}:{psp.port}"
            breaker = breakers.get(psp.name)
            state, ok = describe_breaker(breaker.state if breaker else "closed",
                                       breaker.retry_in_s if breaker else None)
            rows.append(DiagnosticRow("psp", psp.name, f"{psp.kind} {where} · {state}", ok))
        return rows

    def _key_check_values(self) -> list[DiagnosticRow]:
        try:
            keys = self._services.key_store()
        except Exception as exc:  # shown as a red row
            return [DiagnosticRow("key store", "open", str(exc)[:80], False)]
        rows = []
        for name in ("key_check_values", "kcvs"):
            kcvs = getattr(keys, name, None)
            if callable(kcvs):
                for label, value in dict(kcvs()).items():
                    rows.append(DiagnosticRow("key store", str(label), f"KCV {value}", True))
                break
        return rows

    # --- end of day, printing ---------------------------------------------------------

    async def end_of_day(self, day: dt.date) -> EndOfDayReport:
        totals = await asyncio.to_thread(self._end_of_day, day)
        text = _end_of_day_text(self._info, day, totals)
        printed = await self.print_receipt(text, copy="merchant")
        return EndOfDayReport(day, totals, True, printed, text)

    def _end_of_day(self, day: dt.date) -> tuple[EndOfDayTotal, ...]:
        self._services.end_of_day(day)  # queued for the platform, journalled
        rows = self._services.store.connection.execute(
            "SELECT currency, coalesce(network, ''), count(*), sum(amount_minor - coalesce("
            " (SELECT sum(r.amount_minor) FROM refunds r WHERE r.payment_id = p.id"
            "  AND r.status IN ('approved', 'pending_sync')), 0))"
            " FROM payments p WHERE status IN ('completed', 'pop_deferred')"
            " AND substr(created_at, 1, 10) = ? GROUP BY 1, 2 ORDER BY 1, 2",
            (day.isoformat(),)).fetchall()
        return tuple(EndOfDayTotal(r[0], r[1], int(r[2]), int(r[3] or 0)) for r in rows)

    async def print_receipt(self, text: str, *, copy: str) -> PrintResult:
        if self._printer is None:
            return PrintResult(False, "no printer configured")
        try:
            await self._printer.print_text(text)
        except PrinterError as exc:
            return PrintResult(False, exc.message)
        return PrintResult(True)


def _mirrored(pin_entry: PinCallback, on_event: EventCallback) -> PinCallback:
    """The PIN pad's callback, telling the counter when it asks and how it ended."""

    async def entry(request: OnlinePinRequest) -> Any:
        on_event(PaymentEvent("pin", "prompt"))
        try:
            return await pin_entry(request)
        except PinEntryCancelledError:
            on_event(PaymentEvent("pin", "cancelled"))
            raise
        except PinEntryTimeoutError:
            on_event(PaymentEvent("pin", "timeout"))
            raise

    return entry


def _history_row(row: PaymentSummary) -> HistoryRow:
    return HistoryRow(
        payment_id=str(row["id"]), created_at=str(row["created_at"]), state=str(row["status"]),
        amount=Amount(int(row["amount_minor"]), currency(row["currency"])),
        masked_pan=row["pan_masked"] or "", network=row["network"] or "",
        offline=bool(row["offline"]))


def _online(rows: list[DestinationStatusRow]) -> bool | None:
    if not rows:
        return None
    for row in rows:
        error, success = row["last_error_at"], row["last_success_at"]
        if error and (not success or error > success):
            return False
    return True


def _last_success(rows: list[DestinationStatusRow]) -> dt.datetime | None:
    stamps = [stamp for r in rows if (stamp := r["last_success_at"])]
    return dt.datetime.fromtimestamp(max(stamps), dt.UTC) if stamps else None


def _end_of_day_text(info: CounterInfo, day: dt.date,
                     totals: tuple[EndOfDayTotal, ...]) -> str:
    lines = [info.merchant_name.upper(), f"TPE {info.terminal_id}",
             f"CLOTURE {day.isoformat()}", ""]
    for total in totals:
        amount = Amount(total.amount_minor, currency(total.currency))
        lines.append(f"{total.network or '-':<10} {total.count:>4}  {amount}")
    if not totals:
        lines.append("(aucune vente)")
    return "\n".join(lines)
