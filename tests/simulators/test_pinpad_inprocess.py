"""The in-process simulated PIN pad: a PinPad with real DUKPT blocks and no serial line."""

from __future__ import annotations

import pytest

from drivers.base import PinPad
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError, PinPadDeviceError
from simulators.pinpad.device import DEFAULT_AES_BDK, DEFAULT_AES_KSN, PinPadDevice
from simulators.pinpad.faults import parse_faults
from simulators.pinpad.host import verify_pin
from simulators.pinpad.inprocess import SimulatedPinPad

PAN = "4761739001010119"


def _pad(faults: str = "") -> SimulatedPinPad:
    return SimulatedPinPad(
        PinPadDevice.from_bdk(DEFAULT_AES_BDK, DEFAULT_AES_KSN, pin="2468"), parse_faults(faults)
    )


async def test_blocks_verify_on_the_host() -> None:
    """get_pin returns a format 4 block the host verifies, with a fresh KSN each time."""
    pad = _pad()
    assert isinstance(pad, PinPad)
    first = await pad.get_pin(PAN, 500, 504)
    second = await pad.get_pin(PAN, 500, 504)
    for block in (first, second):
        verify_pin(DEFAULT_AES_BDK, block.ksn, block.pin_block, PAN, "2468", block.format)
    assert first.ksn != second.ksn
    assert (await pad.ping())["ksn"] == second.ksn.hex().upper()


@pytest.mark.parametrize(
    ("faults",     "error"),
    [
        ("cancel",     PinEntryCancelledError),
        ("timeout",    PinEntryTimeoutError),
    ],
)  # fmt: skip
async def test_cardholder_faults(faults: str, error: type[Exception]) -> None:
    """Scripted cancel and timeout end the entry with the driver's own errors."""
    with pytest.raises(error):
        await _pad(faults).get_pin(PAN, 500, 504, timeout_s=0.01)


async def test_no_key_is_a_device_error() -> None:
    """A pad without a key refuses PIN entry."""
    with pytest.raises(PinPadDeviceError):
        await SimulatedPinPad(PinPadDevice(None)).get_pin(PAN, 500, 504)
