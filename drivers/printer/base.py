"""What the terminal needs of a receipt printer: its state, and printing a receipt."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

__all__ = ["PaperLevel", "PrinterState", "ReceiptPrinter"]


class PaperLevel(IntEnum):
    """The paper sensor as ESC/POS reports it (``DLE EOT 4``)."""

    OUT = 0
    LOW = 1
    OK = 2


@dataclass(frozen=True)
class PrinterState:
    online: bool
    paper: PaperLevel

    @property
    def ready(self) -> bool:
        return self.online and self.paper != PaperLevel.OUT

    def describe(self) -> str:
        if not self.online:
            return "off or not answering"
        return {PaperLevel.OUT: "out of paper", PaperLevel.LOW: "paper low",
                PaperLevel.OK: "ready"}[self.paper]


class ReceiptPrinter(Protocol):
    """A receipt printer; every failure is a :class:`~drivers.printer.PrinterError`."""

    async def status(self) -> PrinterState: ...

    async def print_text(self, text: str) -> None:
        """Print ``text`` (lines of at most the roll's width) and cut; refuses with
        :class:`PrinterOfflineError` or :class:`PrinterOutOfPaperError` before sending anything."""
        ...

    async def aclose(self) -> None: ...
