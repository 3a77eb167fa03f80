"""The card offers several applications: the customer picks one (EMV Book 1 §12.4)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList

from ui.i18n import Labels

__all__ = ["ChooseApplicationDialog"]


class ChooseApplicationDialog(ModalScreen[int]):
    """Dismisses with the chosen index; a digit key picks directly, Échap takes the first
    (the card's highest priority, as a terminal without a display would)."""

    BINDINGS = [Binding("escape", "first", "first", show=False)]

    def __init__(self, names: Sequence[str], labels: Labels) -> None:
        super().__init__(id="choose-application")
        self.names = list(names)
        self.labels = labels

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.labels("choose_app"), classes="dialog-title")
            yield OptionList(*[f"{i + 1}  {name}" for i, name in enumerate(self.names)],
                             id="applications")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index)

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if key.isdigit() and 1 <= int(key) <= len(self.names):
            self.dismiss(int(key) - 1)

    def action_first(self) -> None:
        self.dismiss(0)
