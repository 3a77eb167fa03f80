"""Errors of the receipt printer (every leaf carries ``port``)::

    DriverError
    └── PrinterError
        ├── PrinterPortError     the port cannot be opened: check the path, cable, permissions
        ├── PrinterOfflineError  the printer does not answer its status: switched off, cover open
        └── PrinterOutOfPaperError the paper sensor says the roll is empty: change it, reprint
"""

from __future__ import annotations

from drivers.errors import DriverError

__all__ = ["PrinterError", "PrinterOfflineError", "PrinterOutOfPaperError", "PrinterPortError"]


class PrinterError(DriverError):
    """The receipt could not be printed; the sale it belongs to is not affected."""


class PrinterPortError(PrinterError):
    pass


class PrinterOfflineError(PrinterError):
    pass


class PrinterOutOfPaperError(PrinterError):
    pass
