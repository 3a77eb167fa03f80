"""PIN pad errors: the tree, the port in every leaf, and every pyserial exception mapped."""

from __future__ import annotations

import errno
import inspect

import pytest
import serial

from drivers import errors
from drivers.errors import (
    DriverError,
    PinEntryCancelledError,
    PinEntryTimeoutError,
    PinPadDeviceError,
    PinPadDisconnectedError,
    PinPadError,
    PinPadFrameError,
    PinPadNoAnswerError,
    PinPadPortError,
)
from drivers.pinpad import SerialPinPad, map_serial_error
from etika_errors import EtikaError

PORT = "/dev/ttyUSB7"

LEAVES = [
    PinPadPortError,
    PinPadDisconnectedError,
    PinPadNoAnswerError,
    PinPadFrameError,
    PinPadDeviceError,
    PinEntryCancelledError,
    PinEntryTimeoutError,
]


def _serial_exception_classes() -> list[type[BaseException]]:
    return sorted(
        {
            obj
            for module in (serial, serial.serialutil)
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__.startswith("serial")
        },
        key=lambda cls: cls.__name__,
    )


def test_pyserial_exceptions_are_known() -> None:
    """The mapping below covers exactly the exceptions pyserial defines."""
    names = {cls.__name__ for cls in _serial_exception_classes()}
    assert names == {"SerialException", "SerialTimeoutException", "PortNotOpenError"}


@pytest.mark.parametrize("exc_class", _serial_exception_classes())
@pytest.mark.parametrize("opening", [False, True])
def test_every_pyserial_exception_is_mapped(exc_class: type[Exception], opening: bool) -> None:
    """Every pyserial exception becomes a PinPadError leaf naming the port."""
    try:
        exc = exc_class("boom")
    except TypeError:
        exc = exc_class()  # PortNotOpenError takes no message
    mapped = map_serial_error(exc, PORT, opening=opening)
    assert isinstance(mapped, PinPadError)
    assert type(mapped) is not PinPadError
    assert mapped.fields["port"] == PORT
    assert PORT in str(mapped)


@pytest.mark.parametrize(
    ("exc",                                            "opening", "leaf"),
    [
        (serial.SerialException("could not open port"), True,      PinPadPortError),
        (FileNotFoundError(errno.ENOENT, "no such"),    True,      PinPadPortError),
        (serial.SerialTimeoutException("write"),        False,     PinPadNoAnswerError),
        (serial.PortNotOpenError(),                     False,     PinPadDisconnectedError),
        (serial.SerialException("read failed: EIO"),    False,     PinPadDisconnectedError),
        (OSError(errno.EIO, "I/O error"),               False,     PinPadDisconnectedError),
    ],
)  # fmt: skip
def test_mapping_table(exc: BaseException, opening: bool, leaf: type[PinPadError]) -> None:
    """Each library failure maps to the leaf whose recovery action fits it."""
    assert type(map_serial_error(exc, PORT, opening=opening)) is leaf


def test_non_serial_errors_are_not_swallowed() -> None:
    """Mapping something that is not a serial error is a programming mistake."""
    with pytest.raises(TypeError):
        map_serial_error(KeyError("x"), PORT)


@pytest.mark.parametrize("leaf", LEAVES)
def test_tree(leaf: type[PinPadError]) -> None:
    """Every leaf sits under PinPadError, DriverError and EtikaError and needs a port."""
    assert issubclass(leaf, PinPadError)
    assert issubclass(leaf, DriverError)
    assert issubclass(leaf, EtikaError)
    assert leaf("x", port=PORT).port == PORT
    with pytest.raises(TypeError):
        leaf("x")  # type: ignore[call-arg]


def test_tree_is_drawn_in_the_docstring() -> None:
    """The module docstring draws every leaf (the tree is the documentation)."""
    assert errors.__doc__ is not None
    for leaf in LEAVES:
        assert leaf.__name__ in errors.__doc__


async def test_port_that_cannot_be_opened() -> None:
    """Opening a missing device node raises PinPadPortError naming the path."""
    pad = SerialPinPad("/dev/etika-no-such-pinpad")
    with pytest.raises(PinPadPortError) as caught:
        await pad.open()
    assert caught.value.port == "/dev/etika-no-such-pinpad"
    assert isinstance(caught.value.__cause__, serial.SerialException)
