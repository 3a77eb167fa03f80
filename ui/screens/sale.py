"""Sale: the amount from the keyboard or the keypad, the currency, the FX line, Charge."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from etika_errors import EtikaError
from ui.i18n import format_amount
from ui.screens.base import CounterScreen, error_text
from ui.widgets import Keypad
from ui.widgets.status_bar import describe_age

__all__ = ["SaleScreen"]


class SaleScreen(CounterScreen):
    """The counter's home screen."""

    BINDINGS = [
        Binding("enter", "charge", "charge", key_display="⏎"),
        Binding("f2", "next_currency", "currency"),
        Binding("f3", "history", "history"),
        Binding("f4", "refund", "refund"),
        Binding("f6", "contactless", "contactless"),
        Binding("f9", "diagnostics", "diagnostics"),
        Binding("f10", "end_of_day", "end_of_day"),
    ]

    def __init__(self) -> None:
        super().__init__(id="sale")
        self.currency_index = 0
        self.contactless = False

    def compose(self) -> ComposeResult:
        info = self.services.info
        yield Static(f"Étika · {info.merchant_name} · T-{info.terminal_id}", id="header")
        with Horizontal(id="sale-body"):
            with Vertical(id="sale-form"):
                yield Label(self.labels("amount"), id="amount-label")
                yield Input(placeholder="0,00", id="amount", restrict=r"[0-9 ,.]*")
                yield Static("", id="currency")
                yield Static("", id="fx")
                yield Static("", id="sale-error")
                yield Button(f"{self.labels('charge')}  ⏎", id="charge", variant="success")
            yield Keypad(id="keypad")
        yield from self.chrome()

    def on_mount(self) -> None:
        self._show_currency()
        self.query_one("#amount", Input).focus()

    @property
    def currency_code(self) -> str:
        return self.services.info.currencies[self.currency_index]

    def _show_currency(self) -> None:
        codes = self.services.info.currencies
        shown = " · ".join(f"[b reverse]{c}[/]" if i == self.currency_index else c
                           for i, c in enumerate(codes))
        mode = f"  [b]{self.labels('contactless')}[/]" if self.contactless else ""
        self.query_one("#currency", Static).update(f"{shown}  (F2){mode}")
        self._quote()

    def _quote(self) -> bool:
        """Update the FX line and the error line; True when the amount can be charged."""
        text = self.query_one("#amount", Input).value
        fx = self.query_one("#fx", Static)
        error = self.query_one("#sale-error", Static)
        error.update("")
        fx.update("")
        if not text.strip():
            return False
        locale = self.services.info.locale
        try:
            quote = self.services.quote(text, self.currency_code, now=self.counter.clock())
        except EtikaError as exc:
            error.update(f"[b red]{error_text(exc)}[/]")
            return False
        if quote.charged.minor <= 0:
            error.update(f"[b red]{self.labels('zero_amount')}[/]")
            return False
        if quote.rate is not None and quote.rate_as_of is not None:
            rate = f"{quote.rate}".replace(".", ",") if locale == "fr" else f"{quote.rate}"
            fx.update(
                self.labels("rate", base=quote.typed.currency.code, rate=rate,
                            quote=quote.charged.currency.code,
                            time=quote.rate_as_of.strftime("%H:%M"),
                            age=describe_age(quote.rate_age_s or 0))
                + " · " + self.labels("charged_as",
                                      amount=format_amount(quote.charged, locale)))
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "amount":
            self._quote()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_charge()

    def on_keypad_pressed(self, event: Keypad.Pressed) -> None:
        field = self.query_one("#amount", Input)
        if event.key == "⌫":
            field.value = field.value[:-1]
        else:
            field.value += event.key
        field.cursor_position = len(field.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "charge":
            self.action_charge()

    def action_charge(self) -> None:
        if not self._quote():
            if not self.query_one("#amount", Input).value.strip():
                self.query_one("#sale-error", Static).update(
                    f"[b red]{self.labels('amount')} ?[/]")
            return
        quote = self.services.quote(self.query_one("#amount", Input).value,
                                    self.currency_code, now=self.counter.clock())
        from ui.screens.present_card import PresentCardScreen

        self.app.push_screen(PresentCardScreen(quote.charged, contactless=self.contactless))

    def clear(self) -> None:
        self.query_one("#amount", Input).value = ""
        self.contactless = False
        self._show_currency()

    def action_next_currency(self) -> None:
        self.currency_index = (self.currency_index + 1) % len(self.services.info.currencies)
        self._show_currency()

    def action_contactless(self) -> None:
        self.contactless = not self.contactless
        self._show_currency()

    def action_history(self) -> None:
        from ui.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen())

    def action_refund(self) -> None:
        # A refund starts from the payment it gives back: the history, approved ones first.
        from ui.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen(state="completed"))

    def action_diagnostics(self) -> None:
        from ui.screens.diagnostics import DiagnosticsScreen

        self.app.push_screen(DiagnosticsScreen())

    def action_end_of_day(self) -> None:
        from ui.screens.end_of_day import EndOfDayScreen

        self.app.push_screen(EndOfDayScreen())
