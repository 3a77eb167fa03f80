"""The acquirer's side: from BDK, KSN and PIN block back to the PIN, and verify()."""

from __future__ import annotations

import pytest

from drivers.pinpad.messages import PinEntryRequest, PinResult
from simulators.pinpad.device import (
    DEFAULT_AES_BDK,
    DEFAULT_AES_KSN,
    DEFAULT_TDES_BDK,
    DEFAULT_TDES_KSN,
    PinPadDevice,
)
from simulators.pinpad.errors import IncorrectPinError, PinBlockUnreadableError
from simulators.pinpad.host import derive_pin_key, pin_block_format, recover_pin, verify_pin

PAN = "4761739001010119"
PIN = "739184625017"
AES256_BDK = DEFAULT_AES_BDK * 2
SCHEMES = [
    (DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, 0),
    (DEFAULT_AES_BDK,  DEFAULT_AES_KSN,  4),
    (AES256_BDK,       DEFAULT_AES_KSN,  4),
]  # fmt: skip


def _entry(bdk: bytes, ksn: bytes, pin: str = PIN) -> tuple[bytes, bytes, int]:
    answer = PinPadDevice.from_bdk(bdk, ksn, pin=pin).encipher_pin(
        PinEntryRequest(PAN, 1200, 504, 30)
    )
    assert answer.result is PinResult.OK and answer.pin_format is not None
    return answer.ksn, answer.pin_block, answer.pin_format


@pytest.mark.parametrize(("bdk", "ksn", "fmt"), SCHEMES, ids=["tdes", "aes128", "aes256"])
def test_host_recovers_the_pin_the_device_was_given(bdk: bytes, ksn: bytes, fmt: int) -> None:
    """The PIN typed on the simulated pad comes back out with the BDK alone."""
    used_ksn, block, pin_format = _entry(bdk, ksn)
    assert pin_format == fmt == pin_block_format(used_ksn)
    assert recover_pin(bdk, used_ksn, block, PAN) == PIN
    verify_pin(bdk, used_ksn, block, PAN, PIN, pin_format)


@pytest.mark.parametrize(("bdk", "ksn", "fmt"), SCHEMES, ids=["tdes", "aes128", "aes256"])
def test_wrong_pin_is_incorrect_pin(bdk: bytes, ksn: bytes, fmt: int) -> None:
    """A sound block holding another PIN raises IncorrectPinError, without any digits."""
    used_ksn, block, _ = _entry(bdk, ksn)
    with pytest.raises(IncorrectPinError) as caught:
        verify_pin(bdk, used_ksn, block, PAN, "1111")
    assert PIN not in str(caught.value) and "1111" not in str(caught.value)
    assert PIN not in repr(caught.value)


@pytest.mark.parametrize(("bdk", "ksn", "fmt"), SCHEMES, ids=["tdes", "aes128", "aes256"])
@pytest.mark.parametrize("damage", ["bdk", "pan", "block", "ksn"])
def test_damaged_inputs_are_unreadable(bdk: bytes, ksn: bytes, fmt: int, damage: str) -> None:
    """Wrong BDK, PAN, KSN or a flipped bit: PinBlockUnreadableError (or a mismatch), never the PIN."""
    used_ksn, block, _ = _entry(bdk, ksn)
    pan = PAN
    if damage == "bdk":
        bdk = bytes([bdk[0] ^ 0x10]) + bdk[1:]  # not bit 0: DES parity
    elif damage == "pan":
        pan = "5" + PAN[1:-2] + "00"
    elif damage == "block":
        block = bytes([block[0] ^ 0x80]) + block[1:]
    else:
        used_ksn = used_ksn[:-1] + bytes([used_ksn[-1] + 1])
    with pytest.raises((PinBlockUnreadableError, IncorrectPinError)) as caught:
        verify_pin(bdk, used_ksn, block, pan, PIN)
    assert PIN not in str(caught.value)


def test_unreadable_error_does_not_chain_psec_message() -> None:
    """psec's ValueError (which may quote digits) is suppressed, not chained."""
    used_ksn, _block, _ = _entry(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN)
    bad_block = bytes(8)
    with pytest.raises(PinBlockUnreadableError) as caught:
        recover_pin(DEFAULT_TDES_BDK, used_ksn, bad_block, PAN)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("ksn_len", "block_len", "fmt"),
    [
        (10,        16,         None),
        (12,        8,          None),
        (10,        8,          4),
    ],
)  # fmt: skip
def test_shape_mismatch_is_unreadable(ksn_len: int, block_len: int, fmt: int | None) -> None:
    """A block whose length or format does not fit the KSN's scheme is refused."""
    with pytest.raises(PinBlockUnreadableError):
        recover_pin(DEFAULT_TDES_BDK, bytes(ksn_len), bytes(block_len), PAN, fmt)


def test_derive_pin_key_matches_the_published_first_key() -> None:
    """Host derivation for E00001 gives the A.4 key XOR the PIN variant."""
    key = derive_pin_key(DEFAULT_TDES_BDK, bytes.fromhex("FFFF9876543210E00001"))
    assert key.hex().upper() == "042666B49184CF5C68DE9628D0397B36"


def test_ksn_length_decides_the_scheme() -> None:
    """A KSN that is neither 10 nor 12 bytes is a caller mistake."""
    with pytest.raises(ValueError):
        pin_block_format(bytes(11))
