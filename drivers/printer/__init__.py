"""The receipt printer: ESC/POS over a serial port (python-escpos), behind a Protocol.

Imports nothing of ours but the error root.
"""

from drivers.printer.base import PaperLevel, PrinterState, ReceiptPrinter
from drivers.printer.errors import (
    PrinterError,
    PrinterOfflineError,
    PrinterOutOfPaperError,
    PrinterPortError,
)
from drivers.printer.escpos_serial import EscposSerialPrinter
from drivers.printer.fake import FakePrinter

__all__ = [
    "EscposSerialPrinter",
    "FakePrinter",
    "PaperLevel",
    "PrinterError",
    "PrinterOfflineError",
    "PrinterOutOfPaperError",
    "PrinterPortError",
    "PrinterState",
    "ReceiptPrinter",
]
