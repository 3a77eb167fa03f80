"""Errors of the receipt printer (every leaf carries ``port``)::

    DriverError
    └── PrinterError
        ├── PrinterPortError     the port cannot be opened: check the path, cable, permissions
        ├── PrinterOffline       the printer does not answer its status: switched off, cover open
        └── PrinterOutOfPaper    the paper sensor says the roll is empty: change it, reprint
"""

from __future__ import annotations

from drivers.errors import DriverError

__all__ = ["PrinterError", "PrinterOffline", "PrinterOutOfPaper", "PrinterPortError"]


class PrinterError(DriverError):
    """The receipt could not be printed; the sale it belongs to is not affected."""


class PrinterPortError(PrinterError):
    pass


class PrinterOffline(PrinterError):
    pass


class PrinterOutOfPaper(PrinterError):
    pass
