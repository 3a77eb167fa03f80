"""The receipt printer: ESC/POS over a serial port (python-escpos), behind a Protocol.

Imports nothing of ours but the error root.
"""

from drivers.printer.base import PaperLevel, PrinterState, ReceiptPrinter
from drivers.printer.errors import (
    PrinterError,
    PrinterOffline,
    PrinterOutOfPaper,
    PrinterPortError,
)
from drivers.printer.escpos_serial import EscposSerialPrinter
from drivers.printer.fake import FakePrinter

__all__ = [
    "EscposSerialPrinter",
    "FakePrinter",
    "PaperLevel",
    "PrinterError",
    "PrinterOffline",
    "PrinterOutOfPaper",
    "PrinterPortError",
    "PrinterState",
    "ReceiptPrinter",
]
