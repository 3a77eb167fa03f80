"""Errors of the EMV kernel.

::

    EtikaError
    └── TerminalError
        └── EmvError                  the EMV kernel could not finish a step
            ├── TlvError              BER-TLV input is malformed (``offset``, ``tag``)
            ├── DolError              a DOL is malformed or cannot be built (``offset``)
            ├── CardError             the card answered an unusable status word (``sw``)
            │   ├── ApplicationBlockedError SELECT answered 6283: the application is blocked
            │   └── CardBlockedError      SELECT of the PSE/PPSE answered 6A81: card blocked
            ├── CardDataError         card data missing/contradictory (``tag``): abort
            │   └── CommandTooLongError the data a card's DOL asks for does not fit a command
            ├── NoApplicationError    no application supported by both card and terminal
            ├── CardRemovedMidTransactionError the card left the reader mid-transaction
            ├── ReaderFailureError    the reader failed (from ``drivers.errors.ReaderError``)
            ├── OdaError              an offline data authentication check failed (``step``);
            │   │                     kept inside the kernel: it sets TVR bits, flow goes on
            │   └── IccDataMissingError a data object ODA needs is missing (TVR "ICC data missing")
            ├── PinEntryError         the PIN entry device failed or was cancelled
            └── TransactionNotAllowedError the card does not allow this transaction

One leaf per distinct recovery action: a ``CardError`` means "try again / another card",
``CardRemovedMidTransactionError`` means "ask the cardholder to reinsert",
``NoApplicationError`` means "card not supported here", ``ReaderFailureError`` means "check
the reader". Messages and fields never carry clear card data (PAN, track 2, PIN); PANs are
masked ``first6…last4``.
"""

from __future__ import annotations

from typing import Any

from terminal.errors import TerminalError

__all__ = [
    "ApplicationBlockedError",
    "CardBlockedError",
    "CardDataError",
    "CardError",
    "CardRemovedMidTransactionError",
    "CommandTooLongError",
    "DolError",
    "EmvError",
    "IccDataMissingError",
    "NoApplicationError",
    "OdaError",
    "PinEntryError",
    "ReaderFailureError",
    "TlvError",
    "TransactionNotAllowedError",
]


class EmvError(TerminalError):
    """Root of the EMV kernel's errors."""


class TlvError(EmvError, ValueError):
    """BER-TLV data is malformed at ``offset`` (EMV 4.4 Book 3 Annex B)."""

    def __init__(self, message: str, *, offset: int, tag: int | None = None, **fields: Any) -> None:
        where = f" at offset {offset}" + (f" (tag {tag:X})" if tag is not None else "")
        super().__init__(f"malformed TLV{where}: {message}", offset=offset, tag=tag, **fields)
        self.offset = offset
        self.tag = tag


class DolError(EmvError, ValueError):
    """A data object list is malformed or cannot be built (EMV 4.4 Book 3 §5.4)."""

    def __init__(self, message: str, *, offset: int | None = None, **fields: Any) -> None:
        super().__init__(message, offset=offset, **fields)
        self.offset = offset


class CardError(EmvError):
    """The card answered status word ``sw`` to ``command``; the step cannot go on."""

    def __init__(self, message: str, *, sw: int, command: str = "", **fields: Any) -> None:
        super().__init__(f"{message} (SW {sw:04X})", sw=sw, command=command, **fields)
        self.sw = sw
        self.command = command


class ApplicationBlockedError(CardError):
    """SELECT answered 6283: the application is blocked; choose another or another card."""


class CardBlockedError(CardError):
    """SELECT answered 6A81: the card (or function) is blocked; the card cannot be used."""


class CardDataError(EmvError):
    """Card data is missing, duplicated or inconsistent (EMV 4.4 Book 3 §10.2): abort."""

    def __init__(self, message: str, *, tag: int | None = None, **fields: Any) -> None:
        super().__init__(message, tag=tag, **fields)
        self.tag = tag


class CommandTooLongError(CardDataError, ValueError):
    """Command data over the 255 bytes of a short APDU (EMV 4.4 Book 1 §9.4, Book 3 Annex B).

    A card's PDOL, CDOL or DDOL can ask for more; that is the card's data error, not a bug.
    """


class NoApplicationError(EmvError):
    """No application is supported by both the card and the terminal."""


class CardRemovedMidTransactionError(EmvError):
    """The card was removed before the transaction ended; ask for it again."""


class ReaderFailureError(EmvError):
    """The reader failed while the kernel used it; check the reader and retry."""


class OdaError(EmvError):
    """An offline data authentication step failed; ``step`` names which check."""

    def __init__(self, message: str, *, step: str, **fields: Any) -> None:
        super().__init__(message, step=step, **fields)
        self.step = step


class IccDataMissingError(OdaError):
    """A data object offline data authentication needs is missing (Book 3 §10.3).

    Like every ``OdaError`` it stays inside the kernel: ODA fails and TVR byte 1 b6
    "ICC data missing" is set as well.
    """

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message, step="icc_data_missing", **fields)


class PinEntryError(EmvError):
    """The PIN entry device failed or the cardholder cancelled."""


class TransactionNotAllowedError(EmvError):
    """The card or its data does not allow this transaction."""
