"""One payment: attempts, fraud check, PoP record, refunds, journal; refund, void, reprint."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from etika_errors import EtikaError
from terminal.money import Amount, parse_amount
from terminal.payments.model import RefundOutcome
from ui.facade import PaymentDetailView
from ui.i18n import format_amount, state_label
from ui.messages import DetailLoaded, Printed, RefundDone, ServiceFailed
from ui.screens.base import CounterScreen, error_text
from ui.screens.confirm import Confirmation, ConfirmDialog

__all__ = ["DetailScreen"]


class DetailScreen(CounterScreen):
    """Opened from the history; F4 refunds, F8 voids (each after a confirmation)."""

    BINDINGS = [
        Binding("f4", "refund", "refund"),
        Binding("f8", "void", "void"),
        Binding("p", "reprint", "reprint"),
        Binding("escape", "back", "back"),
    ]

    def __init__(self, payment_id: str) -> None:
        super().__init__(id="detail")
        self.payment_id = payment_id
        self.detail: PaymentDetailView | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="detail-main"):
                yield Static(self.labels("working"), id="detail-text")
                yield Static("", id="detail-message")
            with VerticalScroll(id="receipt-box"):
                yield Static("", id="receipt")
        yield from self.chrome()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        self.call_service(lambda: self.services.detail(self.payment_id),
                          lambda detail: self.post_message(DetailLoaded(detail)),
                          group="detail")

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        self.detail = d = message.detail
        say = self.labels
        locale = self.services.info.locale
        row = d.row
        lines = [
            f"[b]{format_amount(row.amount, locale)}[/]  {state_label(say, row.state)}"
            + ("  (offline)" if row.offline else ""),
            f"{row.payment_id}  ·  {row.created_at[:19].replace('T', ' ')}",
            f"{say('card')}: {row.network} {row.masked_pan}".rstrip(),
            d.reason,
        ]
        if d.auth_code:
            lines.append(say("auth_code", code=d.auth_code))
        lines.append(f"\n[b]{say('attempts')}[/]")
        lines += [f"  {a}" for a in d.attempts] or ["  -"]
        lines.append(f"[b]{say('fraud')}[/]  {d.fraud or '-'}")
        lines.append(f"[b]{say('pop')}[/]  {d.pop or '-'}")
        lines.append(f"[b]{say('refunds')}[/]")
        lines += [f"  {r}" for r in d.refunds] or ["  -"]
        lines.append(f"[b]{say('journal')}[/]")
        lines += [f"  {j}" for j in d.journal]
        self.query_one("#detail-text", Static).update("\n".join(lines))
        self.query_one("#receipt", Static).update(
            d.receipts.get("merchant") or d.receipts.get("customer") or "")

    def _say(self, text: str, *, error: bool = False) -> None:
        self.query_one("#detail-message", Static).update(
            f"[b red]{text}[/]" if error else f"[b]{text}[/]")

    def action_refund(self) -> None:
        d = self.detail
        if d is None or d.refundable_minor <= 0:
            self._say(self.labels("error", message="nothing left to refund"), error=True)
            return
        left = Amount(d.refundable_minor, d.row.amount.currency)
        question = self.labels("confirm_refund", amount=format_amount(left,
                               self.services.info.locale), payment=d.row.payment_id[:8])
        default = f"{left.decimal}".replace(".", ",")
        self.app.push_screen(ConfirmDialog(question, self.labels, amount=default),
                             callback=self._refund_confirmed)

    def _refund_confirmed(self, answer: Confirmation | None) -> None:
        if answer is None or not answer.yes or self.detail is None:
            return
        currency = self.detail.row.amount.currency
        try:
            amount = parse_amount(answer.amount_text, currency) \
                if answer.amount_text.strip() else None
        except EtikaError as exc:
            self._say(error_text(exc), error=True)
            return
        self._say(self.labels("working"))
        self.call_service(lambda: self.services.refund(self.payment_id, amount),
                          lambda outcome: self.post_message(RefundDone(outcome)),
                          group="refund")

    def action_void(self) -> None:
        d = self.detail
        if d is None or not d.voidable:
            self._say(self.labels("error", message="this payment cannot be voided"),
                      error=True)
            return
        question = self.labels("confirm_void", payment=d.row.payment_id[:8],
                               amount=format_amount(d.row.amount, self.services.info.locale))
        self.app.push_screen(ConfirmDialog(question, self.labels),
                             callback=self._void_confirmed)

    def _void_confirmed(self, answer: Confirmation | None) -> None:
        if answer is None or not answer.yes:
            return
        self._say(self.labels("working"))
        self.call_service(lambda: self.services.void(self.payment_id),
                          lambda outcome: self.post_message(RefundDone(outcome)),
                          group="refund")

    def on_refund_done(self, message: RefundDone) -> None:
        o: RefundOutcome = message.outcome
        ok = o.state in ("approved", "pending_sync")
        self._say(self.labels("refund_done", kind=o.kind, state=o.state,
                              amount=format_amount(o.amount, self.services.info.locale),
                              reason=o.reason), error=not ok)
        receipt = o.receipts.get("customer")
        if receipt:
            self._print(receipt, "customer")
        self.load()

    def action_reprint(self) -> None:
        d = self.detail
        if d is None:
            return
        for copy in ("customer", "merchant"):
            text = d.receipts.get(copy)
            if text:
                self._print(text, copy)

    def _print(self, text: str, copy: str) -> None:
        self.call_service(lambda: self.services.print_receipt(text, copy=copy),
                          lambda result: self.post_message(Printed(copy, result)),
                          group=f"print-{copy}")

    def on_printed(self, message: Printed) -> None:
        label = self.labels(f"{message.copy}_receipt")
        self._say(f"{label}: {self.labels('printed')}" if message.result.ok
                  else f"{label}: {self.labels('print_failed', reason=message.result.reason)}",
                  error=not message.result.ok)

    def on_service_failed(self, message: ServiceFailed) -> None:
        self._say(message.reason, error=True)

    def action_back(self) -> None:
        self.app.pop_screen()
