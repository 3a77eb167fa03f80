"""A printer in memory, for tests: keeps each receipt, can be switched off or emptied."""

from __future__ import annotations

from drivers.printer.base import PaperLevel, PrinterState
from drivers.printer.errors import PrinterOfflineError, PrinterOutOfPaperError

__all__ = ["FakePrinter"]


class FakePrinter:
    def __init__(self, *, online: bool = True, paper: PaperLevel = PaperLevel.OK) -> None:
        self.online = online
        self.paper = paper
        self.receipts: list[str] = []

    async def status(self) -> PrinterState:
        return PrinterState(self.online, self.paper)

    async def print_text(self, text: str) -> None:
        if not self.online:
            raise PrinterOfflineError("the receipt printer does not answer", port="fake")
        if self.paper == PaperLevel.OUT:
            raise PrinterOutOfPaperError("the receipt printer is out of paper", port="fake")
        self.receipts.append(text)

    async def aclose(self) -> None:
        return None
