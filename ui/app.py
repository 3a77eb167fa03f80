"""The counter's Textual app, built by :func:`build_app` from the services it calls.

The app owns no device and opens no socket: screens call :class:`~ui.facade.
CounterServices` in workers and get the answers back as messages. The status bar is
refreshed every few seconds in a worker too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from ui.facade import CounterServices, StatusSnapshot
from ui.i18n import Labels, labels_for
from ui.messages import StatusUpdated
from ui.widgets import StatusBar

__all__ = ["CounterApp", "build_app"]


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class CounterApp(App[None]):
    """See the module docstring."""

    # Absolute, so subclasses elsewhere (the demo's) find it too.
    CSS_PATH = str(Path(__file__).with_name("counter.tcss"))
    TITLE = "Étika"
    BINDINGS = [Binding("ctrl+q", "quit", "quit", show=False, priority=True)]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, services: CounterServices, *, locale: str | None = None,
                 clock: Callable[[], dt.datetime] = _now,
                 status_every_s: float = 5.0) -> None:
        super().__init__()
        self.services = services
        self.labels: Labels = labels_for(locale or services.info.locale)
        self.clock = clock
        self.status_every_s = status_every_s
        self.status_snapshot: StatusSnapshot | None = None

    def get_default_screen(self) -> Screen[None]:
        from ui.screens.sale import SaleScreen

        return SaleScreen()

    def on_mount(self) -> None:
        self.refresh_status()
        if self.status_every_s > 0:
            self.set_interval(self.status_every_s, self.refresh_status)

    def refresh_status(self) -> None:
        async def job() -> None:
            snapshot = await self.services.status()
            self.post_message(StatusUpdated(snapshot))

        self.run_worker(job(), group="status", exclusive=True, exit_on_error=False)

    def on_status_updated(self, message: StatusUpdated) -> None:
        self.status_snapshot = message.snapshot
        for bar in self.screen.query(StatusBar):
            bar.show(message.snapshot, self.clock())


def build_app(services: CounterServices, *, locale: str | None = None,
              clock: Callable[[], dt.datetime] = _now, status_every_s: float = 5.0
              ) -> CounterApp:
    """The counter over ``services`` (real ones, or :class:`ui.fake.FakeCounterServices`)."""
    return CounterApp(services, locale=locale, clock=clock, status_every_s=status_every_s)
