"""Result: approved, declined with the reason, approved offline, PoP pending, cancelled.

Each ending has its own colour and one line saying what happens next. Both copies of the
receipt are printed as the screen opens; a printer that is off or out of paper is said
here, and the sale stays what it is (the receipt can be reprinted from the history).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from terminal.money import Amount
from terminal.payments.model import PaymentOutcome
from ui.i18n import format_amount
from ui.messages import Printed
from ui.screens.base import CounterScreen

__all__ = ["ResultScreen", "ResultView", "verdict_of"]


@dataclass(frozen=True)
class ResultView:
    """What the result screen shows, whatever produced it."""

    verdict: str  # approved | approved_offline | pop_pending | to_reconcile | declined | cancelled
    amount: Amount
    reason: str = ""
    payment_id: str | None = None
    auth_code: str | None = None
    card: str = ""
    pop: str = ""
    receipts: dict[str, str] = field(default_factory=dict)


def verdict_of(outcome: PaymentOutcome) -> str:
    if outcome.approved and outcome.offline:
        return "approved_offline"
    if outcome.approved and outcome.state == "pop_deferred":
        return "pop_pending"
    if outcome.approved:
        return "approved"
    if outcome.state == "needs_reconciliation":
        return "to_reconcile"  # the money was taken; the PoP back end refused its record
    if outcome.state in ("cancelled", "reversed", "reversal_pending"):
        return "cancelled"
    return "declined"


_NEXT = {"approved_offline": "approved_offline_next", "pop_pending": "pop_pending_next",
         "cancelled": "cancelled_next", "to_reconcile": "to_reconcile_next"}


class ResultScreen(CounterScreen):
    """How the sale ended, with its receipt."""

    BINDINGS = [
        Binding("enter", "new_sale", "new_sale", key_display="⏎"),
        Binding("escape", "new_sale", "new_sale", show=False),
        Binding("r", "print('customer')", "customer_receipt"),
        Binding("m", "print('merchant')", "merchant_receipt"),
    ]

    def __init__(self, view: ResultView) -> None:
        super().__init__(id="result")
        self.view = view
        self.print_lines: dict[str, str] = {}

    @classmethod
    def for_outcome(cls, outcome: PaymentOutcome) -> ResultScreen:
        card = f"{outcome.network} {outcome.masked_pan}".strip()
        pop = f"PoP {outcome.pop_status or '-'} {outcome.pop_reference or ''}".strip() \
            if outcome.pop_status else ""
        return cls(ResultView(verdict_of(outcome), outcome.amount, outcome.reason,
                              str(outcome.payment_id), outcome.auth_code, card, pop,
                              dict(outcome.receipts)))

    @classmethod
    def cancelled(cls, amount: Amount, payment_id: str | None) -> ResultScreen:
        return cls(ResultView("cancelled", amount, "", payment_id))

    @classmethod
    def failed(cls, amount: Amount, reason: str) -> ResultScreen:
        return cls(ResultView("declined", amount, reason))

    def compose(self) -> ComposeResult:
        view = self.view
        locale = self.services.info.locale
        mark = "✔" if view.verdict.startswith("approved") \
            or view.verdict in ("pop_pending", "to_reconcile") else "✘"
        with Horizontal(id="result-body"):
            with Vertical(id="result-main"):
                yield Static(f"{mark} {self.labels(view.verdict)}  "
                             f"{format_amount(view.amount, locale)}",
                             id="verdict", classes=f"verdict {view.verdict}")
                if view.reason:
                    yield Static(view.reason, id="reason")
                if view.verdict in _NEXT:
                    yield Static(self.labels(_NEXT[view.verdict]), id="next-step")
                details = [d for d in (
                    view.card,
                    self.labels("auth_code", code=view.auth_code) if view.auth_code else "",
                    view.pop) if d]
                yield Static("  ·  ".join(details), id="details")
                yield Static("", id="print-status")
            with VerticalScroll(id="receipt-box"):
                yield Static(view.receipts.get("customer", ""), id="receipt")
        yield from self.chrome()

    def on_mount(self) -> None:
        for copy in ("customer", "merchant"):
            if copy in self.view.receipts:
                self.action_print(copy)

    def action_print(self, copy: str) -> None:
        text = self.view.receipts.get(copy)
        if not text:
            return
        self.call_service(lambda: self.services.print_receipt(text, copy=copy),
                          lambda result: self.post_message(Printed(copy, result)),
                          group=f"print-{copy}")

    def on_printed(self, message: Printed) -> None:
        label = self.labels(f"{message.copy}_receipt")
        self.print_lines[message.copy] = (
            f"[green]{label}: {self.labels('printed')}[/]" if message.result.ok
            else f"[b red]{label}: "
                 f"{self.labels('print_failed', reason=message.result.reason)}[/]")
        self.query_one("#print-status", Static).update("\n".join(self.print_lines.values()))

    def action_new_sale(self) -> None:
        from ui.screens.sale import SaleScreen

        self.app.pop_screen()
        if isinstance(self.app.screen, SaleScreen):
            self.app.screen.clear()
