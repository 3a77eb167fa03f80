"""The card reader's error leaves, one per recovery action the terminal takes.

::

    drivers.errors.ReaderError
    ├── PcscServiceError     pcscd is not running or restarted: start it; the driver reconnects
    ├── NoReaderError        no such reader / none attached: plug one in or fix the name
    ├── ReaderGoneError      the reader went away while in use: replug it, start over
    ├── NoCardError          no card in the reader: ask for the card
    ├── CardRemovedError     the card left (or was reset) mid-transaction: restart the transaction
    ├── CardProtocolError    the card does not speak a usable protocol: fall back / decline
    ├── ReaderBusyError      another process holds the card or reader: retry later
    ├── ReaderTimeoutError   nothing happened before the caller's timeout: prompt again
    └── ReaderFaultError     any other PC/SC failure: restart the reader stack, report it

Every leaf carries ``reader`` (the reader's name or ``None``) and, when the failure came from
PC/SC, ``hresult`` (the ``SCARD_*`` code as an unsigned integer). The mapping from pyscard's
codes and exceptions is :mod:`drivers.pcsc_errors`. No leaf carries card data.
"""

from __future__ import annotations

from typing import Any

from drivers.errors import ReaderError

__all__ = [
    "CardProtocolError",
    "CardRemovedError",
    "NoCardError",
    "NoReaderError",
    "PcscServiceError",
    "ReaderBusyError",
    "ReaderFaultError",
    "ReaderGoneError",
    "ReaderTimeoutError",
]


class _ReaderLeaf(ReaderError):
    def __init__(self, message: str, *, reader: str | None = None, **fields: Any) -> None:
        super().__init__(message, reader=reader, **fields)
        self.reader = reader


class PcscServiceError(_ReaderLeaf):
    """pcscd is not running, or restarted under us (our handles went stale)."""


class NoReaderError(_ReaderLeaf):
    """No card reader is attached, or the named reader does not exist."""


class ReaderGoneError(_ReaderLeaf):
    """The reader disappeared (unplugged) while it was in use."""


class NoCardError(_ReaderLeaf):
    """The reader holds no card (or the card is not powered)."""


class CardRemovedError(_ReaderLeaf):
    """The card was removed or reset during the session; the transaction cannot go on."""


class CardProtocolError(_ReaderLeaf):
    """The card answered in a way no protocol allows (bad ATR, short response, T=0 loop)."""


class ReaderBusyError(_ReaderLeaf):
    """Another process holds the card exclusively, or pcscd is overloaded."""


class ReaderTimeoutError(_ReaderLeaf):
    """The wait the caller asked for ended before a card came."""


class ReaderFaultError(_ReaderLeaf):
    """A PC/SC failure with no better recovery than restarting the reader stack."""
