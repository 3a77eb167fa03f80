"""What every counter screen shares: the services, the labels, the status bar, the footer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Footer

from etika_errors import EtikaError
from ui.facade import CounterServices
from ui.i18n import Labels
from ui.messages import ServiceFailed
from ui.widgets import StatusBar

if TYPE_CHECKING:
    from ui.app import CounterApp

__all__ = ["CounterScreen", "error_text", "localise_bindings"]

T = TypeVar("T")


def localise_bindings(node: DOMNode, labels: Labels) -> None:
    """Replace each binding's description (a label key) by its text in ``labels``' language."""
    table = node._bindings.key_to_bindings
    for key, bindings in table.items():
        table[key] = [replace(b, description=labels(b.description)) if b.description else b
                      for b in bindings]


def error_text(exc: BaseException) -> str:
    """The project's own message; anything else is named so a defect is visible."""
    if isinstance(exc, EtikaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class CounterScreen(Screen[Any]):
    """A full screen of the counter, with the status bar and the shortcuts at the bottom.

    A binding's description is a label key: it is shown in the profile's language.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        localise_bindings(self, self.counter.labels)

    @property
    def counter(self) -> CounterApp:
        from ui.app import CounterApp

        app = self.app
        assert isinstance(app, CounterApp)
        return app

    @property
    def services(self) -> CounterServices:
        return self.counter.services

    @property
    def labels(self) -> Labels:
        return self.counter.labels

    def chrome(self) -> tuple[StatusBar, Footer]:
        return StatusBar(self.labels, self.counter.clock()), Footer()

    def on_screen_resume(self) -> None:
        for bar in self.query(StatusBar):
            bar.show(self.counter.status_snapshot, self.counter.clock())

    def call_service(self, call: Callable[[], Awaitable[T]],
                     done: Callable[[T], object], *, group: str = "call") -> None:
        """Run ``call`` in a worker; its result comes back through ``done`` as a message
        handler would see it, and a refused request as :class:`ServiceFailed`."""

        async def job() -> None:
            try:
                result = await call()
            except EtikaError as exc:
                self.post_message(ServiceFailed(error_text(exc)))
                return
            done(result)

        self.run_worker(job(), group=group, exclusive=True, exit_on_error=False)
