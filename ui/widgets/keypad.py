"""The on-screen keypad: digits, the decimal comma and backspace, one button each."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Button

__all__ = ["Keypad"]

_KEYS = ("7", "8", "9", "4", "5", "6", "1", "2", "3", ",", "0", "⌫")


class Keypad(Grid):
    """Posts :class:`Keypad.Pressed` with the key's text; it never edits the amount itself."""

    class Pressed(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def compose(self) -> ComposeResult:
        for key in _KEYS:
            name = "back" if key == "⌫" else "comma" if key == "," else key
            yield Button(key, id=f"key-{name}", classes="key")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Pressed(str(event.button.label)))
