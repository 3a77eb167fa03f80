"""A yes/no question before anything that moves money back (refund, void)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ui.i18n import Labels

__all__ = ["ConfirmDialog", "Confirmation"]


class Confirmation:
    """The cashier's answer: ``amount_text`` is what they typed, when the dialog asked."""

    def __init__(self, yes: bool, amount_text: str = "") -> None:
        self.yes = yes
        self.amount_text = amount_text


class ConfirmDialog(ModalScreen[Confirmation]):
    """``o``/``y`` or Entrée confirms, ``n`` or Échap refuses; optionally asks an amount."""

    BINDINGS = [Binding("escape", "answer(False)", "no", show=False)]

    def __init__(self, question: str, labels: Labels, *, amount: str | None = None) -> None:
        super().__init__(id="confirm")
        self.question = question
        self.labels = labels
        self.amount = amount

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.amount is not None:
                yield Input(self.amount, id="confirm-amount", restrict=r"[0-9 ,.]*")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.labels('yes')} (⏎)", id="yes", variant="error")
                yield Button(f"{self.labels('no')} (Échap)", id="no")

    def on_mount(self) -> None:
        if self.amount is not None:
            self.query_one("#confirm-amount", Input).focus()
        else:
            self.query_one("#yes", Button).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_answer(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "yes")

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if self.amount is None and key in ("o", "y"):
            self.action_answer(True)
        elif self.amount is None and key == "n":
            self.action_answer(False)

    def action_answer(self, yes: bool) -> None:
        text = self.query_one("#confirm-amount", Input).value if self.amount is not None else ""
        self.dismiss(Confirmation(yes, text))
