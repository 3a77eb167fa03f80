"""Present card: the running sale, step by step, until it ends; Échap cancels safely.

The sale runs in a worker; each step (waiting for the card, card in, PIN on the pad, the
bank) comes back as a :class:`~ui.messages.SaleProgress` and is one line on screen with how
long it has been waiting. A cancel after the request left is a reversal: the services take
care of it and the result screen says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from etika_errors import EtikaError
from terminal.money import Amount
from terminal.payments.model import PaymentEvent
from ui.i18n import format_amount
from ui.messages import SaleCancelled, SaleFailed, SaleFinished, SaleProgress
from ui.screens.base import CounterScreen, error_text
from ui.screens.choose_application import ChooseApplicationDialog

__all__ = ["PresentCardScreen", "describe_event"]

#: What the cashier reads for each kind of step (``PaymentEvent.kind``).
_STEP_LABELS = {"waiting_card": "waiting_reader", "reading": "reading",
                "finalising": "finalising"}


def describe_event(event: PaymentEvent, labels: object) -> str:
    """One line for a sale step, in the cashier's language."""
    say = labels  # a ui.i18n.Labels
    assert callable(say)
    kind, detail = event.kind, event.detail
    if kind == "card_in":
        return str(say("card_in", detail=detail))
    if kind == "pin":
        return str({"prompt": say("pin"), "cancelled": say("pin_cancelled"),
                    "timeout": say("pin_timeout")}.get(detail)
                   or say("pin_wrong", detail=detail))
    if kind == "online":
        return str(say("online_wait", detail=detail))
    if kind == "removed":
        return str(say("removed_early"))
    if kind == "tap_again":
        return str(say("tap_again"))
    if kind in _STEP_LABELS:
        return str(say(_STEP_LABELS[kind]))
    return f"{kind} {detail}".strip()


class PresentCardScreen(CounterScreen):
    """Runs one sale of ``amount``."""

    BINDINGS = [Binding("escape", "cancel_sale", "cancel")]

    def __init__(self, amount: Amount, *, contactless: bool = False) -> None:
        super().__init__(id="present-card")
        self.amount = amount
        self.contactless = contactless
        self.steps: list[str] = []
        self.payment_id: str | None = None
        self._step_started = time.monotonic()
        self._cancelling = False

    def compose(self) -> ComposeResult:
        locale = self.services.info.locale
        with Vertical(id="present-body"):
            yield Static(f"[b]{self.labels('present_card')}[/]    "
                         f"[b]{format_amount(self.amount, locale)}[/]", id="present-title")
            yield Static(f"◌ {self.labels('waiting_reader')}", id="step")
            yield Static("", id="steps")
        yield from self.chrome()

    def on_mount(self) -> None:
        self.run_worker(self._sale(), name="sale", group="sale", exclusive=True,
                        exit_on_error=False)
        self.set_interval(1.0, self._tick)

    async def _sale(self) -> None:
        def on_event(event: PaymentEvent) -> None:
            # May be called from the services' own thread: post_message is thread safe.
            self.post_message(SaleProgress(event))

        try:
            outcome = await self.services.sale(
                self.amount, contactless=self.contactless, on_event=on_event,
                choose_application=self._choose)
        except asyncio.CancelledError:
            self.post_message(SaleCancelled())
            raise
        except EtikaError as exc:
            self.post_message(SaleFailed(error_text(exc)))
            return
        self.post_message(SaleFinished(outcome))

    async def _choose(self, names: Sequence[str]) -> int:
        """Asks on the UI's loop, whichever loop the services run on."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def chosen(index: int | None) -> None:
            if not answer.done():
                answer.set_result(index or 0)

        self.app.push_screen(ChooseApplicationDialog(names, self.labels), callback=chosen)
        return await answer

    def _tick(self) -> None:
        waited = int(time.monotonic() - self._step_started)
        if waited >= 2 and self.steps:
            self.query_one("#step", Static).update(
                f"◌ {self.steps[-1]}  [dim]{self.labels('since', seconds=waited)}[/]")

    def on_sale_progress(self, message: SaleProgress) -> None:
        event = message.event
        if event.payment_id is not None:
            self.payment_id = str(event.payment_id)
        line = describe_event(event, self.labels)
        self.steps.append(line)
        self._step_started = time.monotonic()
        style = "b yellow" if event.kind in ("removed", "tap_again") or (
            event.kind == "pin" and event.detail != "prompt") else "b"
        self.query_one("#step", Static).update(f"◌ [{style}]{line}[/]")
        self.query_one("#steps", Static).update("\n".join(f"  · {s}" for s in self.steps[-6:]))

    def on_sale_finished(self, message: SaleFinished) -> None:
        from ui.screens.result import ResultScreen

        self.app.switch_screen(ResultScreen.for_outcome(message.outcome))

    def on_sale_cancelled(self, message: SaleCancelled) -> None:
        from ui.screens.result import ResultScreen

        self.app.switch_screen(ResultScreen.cancelled(self.amount, self.payment_id))

    def on_sale_failed(self, message: SaleFailed) -> None:
        from ui.screens.result import ResultScreen

        self.app.switch_screen(ResultScreen.failed(self.amount, message.reason))

    def action_cancel_sale(self) -> None:
        if self._cancelling:
            return
        self._cancelling = True
        self.query_one("#step", Static).update(f"◌ {self.labels('cancel')}…")
        self.workers.cancel_group(self, "sale")
