"""Widgets shared by the counter's screens."""

from ui.widgets.keypad import Keypad
from ui.widgets.status_bar import StatusBar

__all__ = ["Keypad", "StatusBar"]
