"""Diagnostics: readers, PIN pad, key store with key check values, broker link, PSP
breakers, PoP link, profile version. F9 from anywhere a status item is red."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ui.messages import DiagnosticsLoaded, ServiceFailed
from ui.screens.base import CounterScreen

__all__ = ["DiagnosticsScreen"]


class DiagnosticsScreen(CounterScreen):
    BINDINGS = [Binding("f5", "refresh_rows", "refresh"), Binding("escape", "back", "back")]

    def __init__(self) -> None:
        super().__init__(id="diagnostics")

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{self.labels('diag_title')}[/]", id="diag-title")
        yield DataTable(id="diag", cursor_type="row", zebra_stripes=True)
        yield Static("", id="diag-error")
        yield from self.chrome()

    def on_mount(self) -> None:
        say = self.labels
        self.query_one(DataTable).add_columns("", say("section"), say("name"), say("value"))
        self.action_refresh_rows()

    def action_refresh_rows(self) -> None:
        self.call_service(self.services.diagnostics,
                          lambda rows: self.post_message(DiagnosticsLoaded(rows)),
                          group="diagnostics")
        self.counter.refresh_status()

    def on_diagnostics_loaded(self, message: DiagnosticsLoaded) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in message.rows:
            mark = "[dim]·[/]" if row.ok is None else "[green]✓[/]" if row.ok else "[b red]✗[/]"
            table.add_row(mark, row.section, row.name, row.value)

    def on_service_failed(self, message: ServiceFailed) -> None:
        self.query_one("#diag-error", Static).update(f"[b red]{message.reason}[/]")

    def action_back(self) -> None:
        self.app.pop_screen()
