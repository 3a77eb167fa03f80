"""Map pyscard's failures (PC/SC return codes and pyscard exceptions) to our reader errors.

pyscard reports failures two ways: its low-level ``smartcard.scard`` functions return an
``SCARD_*`` code (PC/SC Workgroup Part 5 §3, pcsc-lite's ``pcsclite.h``), and its high-level
classes raise ``smartcard.Exceptions``/``smartcard.pcsc.PCSCExceptions`` carrying one. Both
end here, so the driver raises nothing but :mod:`drivers.reader_errors` leaves
(``raise error_for_exception(exc) from exc``). ``tests/drivers/test_pcsc_errors.py`` walks
every code and exception class pyscard defines and proves each one lands on a leaf.
"""

from __future__ import annotations

from smartcard import Exceptions as _exc
from smartcard import scard as _scard
from smartcard.pcsc import PCSCExceptions as _pcsc_exc

from drivers.reader_errors import (
    CardProtocolError,
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PcscServiceError,
    ReaderBusyError,
    ReaderFaultError,
    ReaderGoneError,
    ReaderTimeoutError,
    _ReaderLeaf,
)

__all__ = [
    "LEAF_BY_CODE_NAME",
    "PYSCARD_EXCEPTION_MODULES",
    "code_name",
    "error_for_exception",
    "error_for_hresult",
]

# Each PC/SC code name, and the leaf whose recovery fits it. Codes not listed (smart-card
# file system and certificate codes that no reader driver returns) fall to ReaderFaultError.
LEAF_BY_CODE_NAME: dict[str, type[_ReaderLeaf]] = {
    # pcscd gone, restarted, or our context/handle went stale with it.
    "SCARD_E_NO_SERVICE": PcscServiceError,
    "SCARD_E_SERVICE_STOPPED": PcscServiceError,
    "SCARD_F_COMM_ERROR": PcscServiceError,
    "SCARD_E_INVALID_HANDLE": PcscServiceError,
    "SCARD_E_UNKNOWN_RES_MNG": PcscServiceError,
    "SCARD_P_SHUTDOWN": PcscServiceError,
    # Readers.
    "SCARD_E_NO_READERS_AVAILABLE": NoReaderError,
    "SCARD_E_UNKNOWN_READER": NoReaderError,
    "SCARD_E_READER_UNSUPPORTED": NoReaderError,
    "SCARD_E_DUPLICATE_READER": NoReaderError,
    "SCARD_E_READER_UNAVAILABLE": ReaderGoneError,
    "SCARD_E_SYSTEM_CANCELLED": ReaderGoneError,
    # Cards.
    "SCARD_E_NO_SMARTCARD": NoCardError,
    "SCARD_W_UNPOWERED_CARD": NoCardError,
    "SCARD_W_REMOVED_CARD": CardRemovedError,
    "SCARD_W_RESET_CARD": CardRemovedError,
    "SCARD_E_PROTO_MISMATCH": CardProtocolError,
    "SCARD_E_INVALID_ATR": CardProtocolError,
    "SCARD_E_CARD_UNSUPPORTED": CardProtocolError,
    "SCARD_W_UNSUPPORTED_CARD": CardProtocolError,
    "SCARD_W_UNRESPONSIVE_CARD": CardProtocolError,
    "SCARD_E_NOT_TRANSACTED": CardProtocolError,
    "SCARD_E_COMM_DATA_LOST": CardProtocolError,
    "SCARD_E_UNKNOWN_CARD": CardProtocolError,
    # Contention.
    "SCARD_E_SHARING_VIOLATION": ReaderBusyError,
    "SCARD_E_SERVER_TOO_BUSY": ReaderBusyError,
    "SCARD_E_NOT_READY": ReaderBusyError,
    # Waits.
    "SCARD_E_TIMEOUT": ReaderTimeoutError,
    "SCARD_F_WAITED_TOO_LONG": ReaderTimeoutError,
}

_RECOVERY: dict[type[_ReaderLeaf], str] = {
    PcscServiceError: "check that pcscd is running; the driver reconnects by itself",
    NoReaderError: "plug in a reader or check the reader name (etika card read --reader)",
    ReaderGoneError: "plug the reader back in and start again",
    NoCardError: "insert or tap the card",
    CardRemovedError: "insert the card again and restart the transaction",
    CardProtocolError: "the card cannot be used in this reader; try another interface",
    ReaderBusyError: "another program is using the reader; retry shortly",
    ReaderTimeoutError: "no card came in time; present the card again",
    ReaderFaultError: "restart pcscd and the reader; report it if it persists",
}


def _codes() -> dict[int, str]:
    codes: dict[int, str] = {}
    for name in dir(_scard):
        if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_")):
            value = getattr(_scard, name)
            if isinstance(value, int):
                codes.setdefault(value & 0xFFFFFFFF, name)
    return codes


_NAME_BY_CODE = _codes()


def code_name(hresult: int) -> str:
    """``SCARD_E_NO_SMARTCARD`` for ``0x8010000C``; ``0x........`` for codes pyscard lacks."""
    code = hresult & 0xFFFFFFFF
    return _NAME_BY_CODE.get(code, f"0x{code:08X}")


def error_for_hresult(hresult: int, *, operation: str, reader: str | None = None) -> _ReaderLeaf:
    """The leaf for a failed PC/SC call: ``operation`` says what we were doing."""
    code = hresult & 0xFFFFFFFF
    name = code_name(code)
    leaf = LEAF_BY_CODE_NAME.get(name, ReaderFaultError)
    # "in reader", not "on reader": "powering the card on on reader ..." read badly.
    where = f" in reader {reader!r}" if reader else ""
    message = f"{operation}{where} failed: {name} ({_RECOVERY[leaf]})"
    return leaf(message, reader=reader, hresult=code, operation=operation)


def error_for_exception(
    exc: BaseException, *, operation: str, reader: str | None = None
) -> _ReaderLeaf:
    """The leaf for an exception raised by pyscard's high-level or low-level layers.

    An exception carrying a PC/SC code maps as that code; the others map by class.
    """
    hresult = getattr(exc, "hresult", -1)
    if isinstance(hresult, int) and hresult not in (-1, 0):
        return error_for_hresult(hresult, operation=operation, reader=reader)
    leaf: type[_ReaderLeaf]
    if isinstance(exc, _exc.NoCardException):
        leaf = NoCardError
    elif isinstance(exc, _exc.NoReadersException | _exc.InvalidReaderException):
        leaf = NoReaderError
    elif isinstance(exc, _exc.ListReadersException | _pcsc_exc.ListReadersException):
        leaf = NoReaderError
    elif isinstance(exc, _pcsc_exc.EstablishContextException):
        leaf = PcscServiceError
    elif isinstance(exc, _exc.CardRequestTimeoutException):
        leaf = ReaderTimeoutError
    elif isinstance(exc, _exc.CardConnectionException):
        leaf = CardProtocolError
    else:
        leaf = ReaderFaultError
    # "in reader", not "on reader": "powering the card on on reader ..." read badly.
    where = f" in reader {reader!r}" if reader else ""
    message = f"{operation}{where} failed: {type(exc).__name__} ({_RECOVERY[leaf]})"
    return leaf(message, reader=reader, operation=operation)


#: Every pyscard exception class the mapping covers (the test walks these modules).
PYSCARD_EXCEPTION_MODULES = (_exc, _pcsc_exc, _scard)
