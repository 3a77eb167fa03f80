"""Errors of the hardware links.

::

    EtikaError
    └── DriverError
        ├── ReaderError           (card reader; leaves in drivers.reader_errors, every one
        │   │                      carries ``reader`` and, from PC/SC, ``hresult``)
        │   ├── PcscServiceError     pcscd not running / restarted: the driver reconnects
        │   ├── NoReaderError        no reader, or no reader by that name
        │   ├── ReaderGoneError      the reader was unplugged while in use
        │   ├── NoCardError          no card in the reader
        │   ├── CardRemovedError     the card left mid-transaction: restart the transaction
        │   ├── CardProtocolError    unusable answers (bad ATR, no SW, endless 61xx/6Cxx)
        │   ├── ReaderBusyError      another process holds the reader
        │   ├── ReaderTimeoutError   no card before the caller's timeout
        │   └── ReaderFaultError     any other PC/SC failure
        └── PinPadError           (serial PIN pad; every leaf carries ``port``)
            ├── PinPadPortError          the port cannot be opened: check the path/cable/permissions
            ├── PinPadDisconnectedError  the device went away mid-exchange (unplugged, hang-up)
            ├── PinPadNoAnswerError      no ACK or answer after three tries: check power/baud rate
            ├── PinPadFrameError         the device keeps sending frames we cannot decode
            ├── PinPadDeviceError        the device refused the request (no key, key exhausted)
            ├── PinEntryCancelledError   the cardholder (or the terminal) cancelled PIN entry
            └── PinEntryTimeoutError     the cardholder did not finish the PIN in time

Each driver maps its library's exceptions (pyscard, pyserial) to these at its edge with
``raise ... from exc``. No leaf ever carries a PAN or PIN: the PIN never reaches the
terminal, and the PAN stays out of messages and fields.
"""

from __future__ import annotations

from typing import Any

from etika_errors import EtikaError

__all__ = [
    "DriverError",
    "PinEntryCancelledError",
    "PinEntryTimeoutError",
    "PinPadDeviceError",
    "PinPadDisconnectedError",
    "PinPadError",
    "PinPadFrameError",
    "PinPadNoAnswerError",
    "PinPadPortError",
    "ReaderError",
]


class DriverError(EtikaError):
    """Root of the hardware links' errors."""


class ReaderError(DriverError):
    """A PC/SC card reader or the card in it failed."""


class PinPadError(DriverError):
    """The serial PIN pad failed; ``fields["port"]`` names the serial port."""

    def __init__(self, message: str, *, port: str, **fields: Any) -> None:
        super().__init__(message, port=port, **fields)
        self.port = port


class PinPadPortError(PinPadError):
    """The serial port cannot be opened (missing device node, permissions, busy)."""


class PinPadDisconnectedError(PinPadError):
    """The PIN pad went away during an exchange (unplugged, line hung up)."""


class PinPadNoAnswerError(PinPadError):
    """The PIN pad did not acknowledge or answer after every retransmission."""


class PinPadFrameError(PinPadError):
    """The PIN pad's frames stayed corrupt (bad LRC, bad layout) after every retry."""


class PinPadDeviceError(PinPadError):
    """The PIN pad answered but refused the request (no key loaded, KSN exhausted...)."""


class PinEntryCancelledError(PinPadError):
    """PIN entry was cancelled: the cardholder pressed CANCEL or the terminal asked."""


class PinEntryTimeoutError(PinPadError):
    """The cardholder did not complete the PIN before the PIN pad's entry timeout."""
