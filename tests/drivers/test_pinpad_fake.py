"""The in-process fake PIN pad replays its script and satisfies the PinPad protocol."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import EncryptedPin, PinPad
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError, PinPadNoAnswerError
from drivers.pinpad import FakePinPad, SerialPinPad
from drivers.pinpad.fake import CARDHOLDER_WAITS

BLOCK = EncryptedPin(bytes.fromhex("FFFF9876543210E00001"), bytes.fromhex("1B9C1845EB993A7A"), 0)


def test_implementations_satisfy_the_protocol() -> None:
    """Both the serial driver and the fake are PinPads (runtime-checkable protocol)."""
    assert isinstance(FakePinPad(), PinPad)
    assert isinstance(SerialPinPad("/dev/null"), PinPad)


async def test_replays_outcomes_in_order() -> None:
    """Scripted blocks come back in order, scripted errors are raised, then it runs dry."""
    pad = FakePinPad([BLOCK, PinEntryTimeoutError("slow", port="fake")])
    assert await pad.get_pin("4761739001010119", 100, 504) == BLOCK
    with pytest.raises(PinEntryTimeoutError):
        await pad.get_pin("4761739001010119", 100, 504)
    with pytest.raises(PinPadNoAnswerError):
        await pad.get_pin("4761739001010119", 100, 504)
    assert [r.masked_pan for r in pad.requests] == ["476173…0119"] * 3


async def test_cancel_aborts_the_entry_in_progress_only() -> None:
    """As on the serial pad: cancel() ends a waiting entry as cancelled; on an idle pad it is
    a no-op, so the next entry gives its PIN (tests/drivers/test_pinpad_contract.py)."""
    pad = FakePinPad([BLOCK, CARDHOLDER_WAITS])
    await pad.cancel()
    assert await pad.get_pin("4761739001010119", 100, 504) == BLOCK
    entry = asyncio.create_task(pad.get_pin("4761739001010119", 100, 504))
    await asyncio.sleep(0)
    await pad.cancel()
    with pytest.raises(PinEntryCancelledError):
        await entry
    assert pad.cancelled == 2


@pytest.mark.parametrize(
    ("ksn_len", "block_len", "fmt"),
    [
        (10,        8,          4),
        (12,        16,         0),
        (10,        16,         0),
        (12,        16,         3),
    ],
)  # fmt: skip
def test_encrypted_pin_checks_its_shape(ksn_len: int, block_len: int, fmt: int) -> None:
    """An EncryptedPin must be format 0 (10-byte KSN, 8-byte block) or 4 (12, 16)."""
    with pytest.raises(ValueError):
        EncryptedPin(bytes(ksn_len), bytes(block_len), fmt)


def test_encrypted_pin_json() -> None:
    """The CLI's JSON shape: upper-case hex and the format number."""
    assert BLOCK.as_json() == {
        "ksn": "FFFF9876543210E00001",
        "pin_block": "1B9C1845EB993A7A",
        "format": 0,
    }


def test_encrypted_pin_repr_hides_the_block() -> None:
    """The enciphered PIN block goes to the acquirer only: repr shows the KSN and a length."""
    text = repr(BLOCK)
    assert "1B9C1845EB993A7A" not in text.upper()
    assert "FFFF9876543210E00001" in text and "<8 bytes>" in text
    assert BLOCK.as_json()["pin_block"] == "1B9C1845EB993A7A"
