"""The counter's Textual app, built by :func:`build_app` from the services it calls.

The app owns no device and opens no socket: screens call :class:`~ui.facade.
CounterServices` in workers and get the answers back as messages. The status bar is
refreshed every few seconds in a worker too, and the card readers are probed every second
in a worker of their own (a probe that hangs on a dead pcscd never freezes the screen).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker

from ui.facade import CounterServices, Health, StatusSnapshot, reader_health
from ui.i18n import Labels, labels_for
from ui.messages import ReaderUpdated, StatusUpdated
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
                 status_every_s: float = 5.0, reader_every_s: float = 1.0) -> None:
        super().__init__()
        self.services = services
        self.labels: Labels = labels_for(locale or services.info.locale)
        self.clock = clock
        self.status_every_s = status_every_s
        self.reader_every_s = reader_every_s
        self.status_snapshot: StatusSnapshot | None = None
        #: The readers as the latest probe saw them (newer than the snapshot's).
        self.reader: Health | None = None
        self.status_worker: Worker[None] | None = None
        self.reader_worker: Worker[None] | None = None

    def get_default_screen(self) -> Screen[None]:
        from ui.screens.sale import SaleScreen

        return SaleScreen()

    def on_mount(self) -> None:
        self.refresh_status()
        if self.status_every_s > 0:
            self.set_interval(self.status_every_s, self.refresh_status)
        if self.reader_every_s > 0:
            self.set_interval(self.reader_every_s, self.probe_readers)

    def refresh_status(self) -> None:
        async def job() -> None:
            snapshot = await self.services.status()
            self.post_message(StatusUpdated(snapshot))

        # The function, not a coroutine: a tick while the app stops leaves no coroutine
        # unawaited behind (an unraisable warning at exit).
        self.status_worker = self.run_worker(job, group="status", exclusive=True,
                                             exit_on_error=False)

    def probe_readers(self) -> None:
        async def job() -> None:
            self.post_message(ReaderUpdated(reader_health(await self.services.readers())))

        self.reader_worker = self.run_worker(job, group="reader", exclusive=True,
                                             exit_on_error=False)

    def on_status_updated(self, message: StatusUpdated) -> None:
        self.status_snapshot = message.snapshot
        self.reader = message.snapshot.reader
        self._show_status()

    def on_reader_updated(self, message: ReaderUpdated) -> None:
        self.reader = message.reader
        if self.status_snapshot is not None:
            self.status_snapshot = dataclasses.replace(self.status_snapshot,
                                                       reader=message.reader)
            self._show_status()

    def _show_status(self) -> None:
        if not self.screen_stack:
            return  # a probe that answers while the app starts or stops
        for bar in self.screen.query(StatusBar):
            bar.show(self.status_snapshot, self.clock())


def build_app(services: CounterServices, *, locale: str | None = None,
              clock: Callable[[], dt.datetime] = _now, status_every_s: float = 5.0,
              reader_every_s: float = 1.0) -> CounterApp:
    """The counter over ``services`` (real ones, or :class:`ui.fake.FakeCounterServices`);
    ``*_every_s`` 0: refreshed only when asked (F5 on diagnostics, a test's call)."""
    return CounterApp(services, locale=locale, clock=clock, status_every_s=status_every_s,
                      reader_every_s=reader_every_s)
