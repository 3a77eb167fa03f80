"""Every pyscard failure (PC/SC code or exception class) maps to a reader error leaf."""

from __future__ import annotations

import inspect

import pytest
from smartcard import Exceptions as sc_exceptions
from smartcard import scard
from smartcard.pcsc import PCSCExceptions

from drivers.errors import ReaderError
from drivers.pcsc_errors import (
    LEAF_BY_CODE_NAME,
    code_name,
    error_for_exception,
    error_for_hresult,
)
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
)

ALL_CODES = sorted(
    name
    for name in dir(scard)
    if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_"))
    and isinstance(getattr(scard, name), int)
)


def _pyscard_exception_classes() -> list[type[BaseException]]:
    classes: set[type[BaseException]] = {scard.error}
    for module in (sc_exceptions, PCSCExceptions):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == module.__name__:
                classes.add(obj)
    return sorted(classes, key=lambda cls: cls.__qualname__)


def _instantiate(cls: type[BaseException]) -> BaseException:
    for args in ((), (0x8010000C,), ("x",), ("x", 0x8010000C)):
        try:
            return cls(*args)
        except (TypeError, ValueError):
            continue
    raise AssertionError(f"cannot build {cls}")


def test_every_code_name_in_the_table_exists_in_pyscard() -> None:
    """The mapping table names only codes pyscard defines (no typo hides a code)."""
    assert set(LEAF_BY_CODE_NAME) <= set(ALL_CODES)


@pytest.mark.parametrize("name", ALL_CODES)
def test_every_pcsc_code_maps_to_a_leaf(name: str) -> None:
    """Each SCARD_E/W/F/P code gives a ReaderError leaf carrying the code and the reader."""
    code = getattr(scard, name) & 0xFFFFFFFF
    error = error_for_hresult(code, operation="testing", reader="R 00")
    assert isinstance(error, ReaderError) and type(error) is not ReaderError
    assert error.fields["hresult"] == code and error.fields["reader"] == "R 00"
    assert "testing" in str(error)


@pytest.mark.parametrize(
    ("code_name_",                    "leaf"),
    [
        ("SCARD_E_NO_SERVICE",          PcscServiceError),
        ("SCARD_E_SERVICE_STOPPED",     PcscServiceError),
        ("SCARD_E_INVALID_HANDLE",      PcscServiceError),
        ("SCARD_E_NO_READERS_AVAILABLE", NoReaderError),
        ("SCARD_E_UNKNOWN_READER",      NoReaderError),
        ("SCARD_E_READER_UNAVAILABLE",  ReaderGoneError),
        ("SCARD_E_NO_SMARTCARD",        NoCardError),
        ("SCARD_W_REMOVED_CARD",        CardRemovedError),
        ("SCARD_W_RESET_CARD",          CardRemovedError),
        ("SCARD_E_PROTO_MISMATCH",      CardProtocolError),
        ("SCARD_W_UNRESPONSIVE_CARD",   CardProtocolError),
        ("SCARD_E_SHARING_VIOLATION",   ReaderBusyError),
        ("SCARD_E_TIMEOUT",             ReaderTimeoutError),
        ("SCARD_F_INTERNAL_ERROR",      ReaderFaultError),
        ("SCARD_E_NO_MEMORY",           ReaderFaultError),
    ],
)
def test_code_to_leaf(code_name_: str, leaf: type[ReaderError]) -> None:
    """The recovery-relevant codes land on the leaf whose recovery fits."""
    assert type(error_for_hresult(getattr(scard, code_name_), operation="x")) is leaf


def test_negative_and_unknown_codes() -> None:
    """Signed codes (as pyscard exceptions hold them) and unknown codes still map."""
    assert code_name(0x8010000C - 0x100000000) == "SCARD_E_NO_SMARTCARD"
    assert type(error_for_hresult(0x8010FFFF, operation="x")) is ReaderFaultError


@pytest.mark.parametrize("cls", _pyscard_exception_classes(), ids=lambda c: c.__qualname__)
def test_every_pyscard_exception_maps_to_a_leaf(cls: type[BaseException]) -> None:
    """Each exception class pyscard defines maps to a ReaderError leaf."""
    error = error_for_exception(_instantiate(cls), operation="testing", reader="R 00")
    assert isinstance(error, ReaderError) and type(error) is not ReaderError


@pytest.mark.parametrize(
    ("exc",                                                         "leaf"),
    [
        (sc_exceptions.NoCardException("no card", -1),                NoCardError),
        (sc_exceptions.NoReadersException(),                           NoReaderError),
        (sc_exceptions.InvalidReaderException("Foo"),                  NoReaderError),
        (sc_exceptions.CardRequestTimeoutException(),                  ReaderTimeoutError),
        (sc_exceptions.CardConnectionException("boom"),                CardProtocolError),
        (sc_exceptions.CardConnectionException("x", hresult=scard.SCARD_W_REMOVED_CARD),
                                                                       CardRemovedError),
        (PCSCExceptions.EstablishContextException(scard.SCARD_E_NO_SERVICE), PcscServiceError),
        (scard.error("swig"),                                          ReaderFaultError),
    ],
)
def test_exception_to_leaf(exc: BaseException, leaf: type[ReaderError]) -> None:
    """Exceptions map by their PC/SC code when they carry one, else by class."""
    assert type(error_for_exception(exc, operation="x")) is leaf
