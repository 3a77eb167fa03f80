"""History: the terminal's payments, searched by state, date, amount and card last 4."""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Select, Static

from etika_errors import EtikaError
from terminal.money import parse_amount
from ui.errors import BadFilterError
from ui.facade import HistoryQuery
from ui.i18n import format_amount, state_label
from ui.messages import HistoryLoaded, ServiceFailed
from ui.screens.base import CounterScreen, error_text

__all__ = ["STATES", "HistoryScreen"]

#: The states a cashier filters on (DESIGN §6).
STATES = ("completed", "pop_deferred", "financial_declined", "offline_declined", "cancelled",
          "reversed", "voided", "needs_reconciliation")


class HistoryScreen(CounterScreen):
    """Search with F5 or Entrée in a filter; Entrée on a row opens it."""

    BINDINGS = [
        Binding("f5", "search", "search"),
        Binding("escape", "back", "back"),
    ]

    def __init__(self, *, state: str | None = None) -> None:
        super().__init__(id="history")
        self.initial_state = state
        self.row_ids: list[str] = []

    def compose(self) -> ComposeResult:
        say = self.labels
        with Vertical(id="history-body"):
            with Horizontal(id="filters"):
                yield Select([(state_label(say, s), s) for s in STATES], prompt=say("state"),
                             id="f-state",
                             value=self.initial_state or Select.NULL)
                yield Input(placeholder=say("last4"), id="f-last4", restrict=r"[0-9]{0,4}",
                            max_length=4)
                yield Input(placeholder=say("since_date"), id="f-since")
                yield Input(placeholder=say("until_date"), id="f-until")
                yield Input(placeholder=say("min_amount"), id="f-min")
                yield Input(placeholder=say("max_amount"), id="f-max")
            yield Static("", id="history-error")
            yield DataTable(id="payments", cursor_type="row", zebra_stripes=True)
        yield from self.chrome()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        say = self.labels
        table.add_columns(say("date"), say("state"), say("amount"), say("card"), "id")
        self.action_search()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.row_ids:  # back from a detail: a refund or void may have changed a row
            self.action_search()

    def query_from_filters(self) -> HistoryQuery:
        """The filters as a query; a date or amount that does not parse is refused."""
        state = self.query_one("#f-state", Select).value
        last4 = self.query_one("#f-last4", Input).value.strip() or None

        def day(field: str) -> dt.date | None:
            text = self.query_one(field, Input).value.strip()
            if not text:
                return None
            try:
                return dt.date.fromisoformat(text)
            except ValueError as exc:
                raise BadFilterError(f"{text!r} is not a date: type it as 2026-12-03") from exc

        def minor(field: str) -> int | None:
            text = self.query_one(field, Input).value.strip()
            return parse_amount(text, self.services.info.default_currency).minor \
                if text else None

        return HistoryQuery(state=state if isinstance(state, str) else None, last4=last4,
                            since=day("#f-since"), until=day("#f-until"),
                            min_minor=minor("#f-min"), max_minor=minor("#f-max"))

    def action_search(self) -> None:
        error = self.query_one("#history-error", Static)
        try:
            query = self.query_from_filters()
        except EtikaError as exc:
            error.update(f"[b red]{error_text(exc)}[/]")
            return
        error.update("")
        self.call_service(lambda: self.services.history(query),
                          lambda rows: self.post_message(HistoryLoaded(rows)), group="history")

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.row_ids = []
        locale = self.services.info.locale
        for row in message.rows:
            state = state_label(self.labels, row.state) + (" ⚡" if row.offline else "")
            table.add_row(row.created_at[:19].replace("T", " "), state,
                          format_amount(row.amount, locale),
                          f"{row.network} {row.masked_pan}".strip(), row.payment_id[:8],
                          key=row.payment_id)
            self.row_ids.append(row.payment_id)
        if message.rows and not isinstance(self.focused, Input):
            table.focus()
        if not message.rows:
            self.query_one("#history-error", Static).update(self.labels("no_payments"))

    def on_service_failed(self, message: ServiceFailed) -> None:
        self.query_one("#history-error", Static).update(f"[b red]{message.reason}[/]")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_search()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted and self.row_ids is not None:
            self.action_search()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from ui.screens.detail import DetailScreen

        if event.row_key.value:
            self.app.push_screen(DetailScreen(event.row_key.value))

    def action_back(self) -> None:
        self.app.pop_screen()
