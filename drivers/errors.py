"""Errors of the hardware links.

::

    EtikaError
    └── DriverError
        ├── ReaderError           (card reader; leaves added by the reader driver)
        └── PinPadError           (serial PIN pad; leaves added by the PIN pad driver)

Each driver maps its library's exceptions (pyscard, pyserial) to these at its edge with
``raise ... from exc``.
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["DriverError", "PinPadError", "ReaderError"]


class DriverError(EtikaError):
    """Root of the hardware links' errors."""


class ReaderError(DriverError):
    """A PC/SC card reader or the card in it failed."""


class PinPadError(DriverError):
    """The serial PIN pad failed."""
