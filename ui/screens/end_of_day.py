"""End of day: the day's totals per currency and card network, queued for the platform and
printed (a printer fault is shown; the totals are queued all the same)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from terminal.money import Amount, currency
from ui.i18n import format_amount
from ui.messages import EndOfDayDone, ServiceFailed
from ui.screens.base import CounterScreen

__all__ = ["EndOfDayScreen"]


class EndOfDayScreen(CounterScreen):
    BINDINGS = [Binding("enter", "close_day", "close_day", key_display="⏎"),
                Binding("escape", "back", "back")]

    def __init__(self) -> None:
        super().__init__(id="end-of-day")

    def compose(self) -> ComposeResult:
        day = self.counter.clock().date()
        yield Static(f"[b]{self.labels('eod_title', day=day.isoformat())}[/]  "
                     f"[dim](⏎ {self.labels('close_day')})[/]", id="eod-title")
        table: DataTable[str] = DataTable(id="eod", cursor_type="none", zebra_stripes=True)
        table.can_focus = False  # Entrée closes the day; the table is only read
        yield table
        yield Static("", id="eod-status")
        yield from self.chrome()

    def on_mount(self) -> None:
        say = self.labels
        table = self.query_one(DataTable)
        table.add_columns(say("currency"), say("network"), say("count"),
                                              say("total"))

    def action_close_day(self) -> None:
        day = self.counter.clock().date()
        self.query_one("#eod-status", Static).update(self.labels("working"))
        self.call_service(lambda: self.services.end_of_day(day),
                          lambda report: self.post_message(EndOfDayDone(report)),
                          group="eod")

    def on_end_of_day_done(self, message: EndOfDayDone) -> None:
        report = message.report
        table = self.query_one(DataTable)
        table.clear()
        locale = self.services.info.locale
        for total in report.totals:
            table.add_row(total.currency, total.network or "-", str(total.count),
                          format_amount(Amount(total.amount_minor, currency(total.currency)),
                                        locale))
        say = self.labels
        lines = [f"[green]{say('eod_queued')}[/]" if report.queued
                 else f"[b red]{say('eod_not_queued')}[/]"]
        lines.append(f"[green]{say('printed')}[/]" if report.printed.ok
                     else f"[b red]{say('print_failed', reason=report.printed.reason)}[/]")
        self.query_one("#eod-status", Static).update("\n".join(lines))

    def on_service_failed(self, message: ServiceFailed) -> None:
        self.query_one("#eod-status", Static).update(f"[b red]{message.reason}[/]")

    def action_back(self) -> None:
        self.app.pop_screen()
