"""The acquirer's side of DUKPT: from BDK and KSN to the PIN, for the PSP simulator.

Public API (what a PSP host calls with fields 52/53 of an authorisation)::

    from simulators.pinpad.host import derive_pin_key, recover_pin, verify_pin

    verify_pin(bdk, ksn, pin_block, pan, expected_pin)   # raises, never returns a bool
    pin = recover_pin(bdk, ksn, pin_block, pan)          # when the host compares itself

The scheme follows the KSN: 10 bytes means TDES DUKPT (ANSI X9.24-1) and an ISO 9564
format 0 block of 8 bytes; 12 bytes means AES DUKPT (ANSI X9.24-3) and a format 4
block of 16 bytes, with a PIN key of the BDK's AES length (16, 24 or 32 bytes).
Errors are :class:`~simulators.pinpad.errors.PinVerificationError` leaves; their
messages carry the KSN, never a PIN.

This module lives in ``simulators`` on purpose: the terminal never holds a BDK, so it can
never recover a PIN (import-linter forbids ``terminal``/``drivers`` from importing it).
"""

from __future__ import annotations

import hmac

from simulators.pinpad.dukpt import (
    AES_KSN_LENGTH,
    TDES_KSN_LENGTH,
    aes_initial_key,
    aes_pin_key,
    tdes_initial_key,
    tdes_pin_key,
)
from simulators.pinpad.errors import IncorrectPinError, PinBlockUnreadableError
from simulators.pinpad.pinblock import decipher_pin_block

__all__ = ["derive_pin_key", "pin_block_format", "recover_pin", "verify_pin"]


def pin_block_format(ksn: bytes) -> int:
    """0 for a 10-byte (TDES DUKPT) KSN, 4 for a 12-byte (AES DUKPT) KSN."""
    if len(ksn) == TDES_KSN_LENGTH:
        return 0
    if len(ksn) == AES_KSN_LENGTH:
        return 4
    raise ValueError("a KSN is 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT)")


def derive_pin_key(bdk: bytes, ksn: bytes) -> bytes:
    """The PIN encryption key the PIN pad used for ``ksn``, derived from the BDK."""
    if pin_block_format(ksn) == 0:
        return tdes_pin_key(tdes_initial_key(bdk, ksn), ksn)
    return aes_pin_key(aes_initial_key(bdk, ksn), ksn)


def recover_pin(
    bdk: bytes, ksn: bytes, pin_block: bytes, pan: str, pin_format: int | None = None
) -> str:
    """Decipher ``pin_block`` and return the clear PIN; ``PinBlockUnreadableError`` if invalid."""
    expected_format = pin_block_format(ksn)
    if pin_format is not None and pin_format != expected_format:
        raise PinBlockUnreadableError(
            f"PIN block format {pin_format} does not match a {len(ksn)}-byte KSN",
            ksn=ksn.hex().upper(),
        )
    expected_length = 8 if expected_format == 0 else 16
    if len(pin_block) != expected_length:
        raise PinBlockUnreadableError(
            f"a format {expected_format} PIN block is {expected_length} bytes, "
            f"got {len(pin_block)}",
            ksn=ksn.hex().upper(),
        )
    key = derive_pin_key(bdk, ksn)
    try:
        return decipher_pin_block(expected_format, key, pin_block, pan)
    except ValueError:
        # psec's message may hold the deciphered digits: never chain or repeat it.
        raise PinBlockUnreadableError(
            f"PIN block under KSN {ksn.hex().upper()} is not a valid format "
            f"{expected_format} block for this card (wrong BDK, KSN or PAN, or corrupt)",
            ksn=ksn.hex().upper(),
        ) from None


def verify_pin(
    bdk: bytes,
    ksn: bytes,
    pin_block: bytes,
    pan: str,
    expected_pin: str,
    pin_format: int | None = None,
) -> None:
    """Return if the block holds ``expected_pin``; raise ``IncorrectPinError`` or
    ``PinBlockUnreadableError`` otherwise."""
    pin = recover_pin(bdk, ksn, pin_block, pan, pin_format)
    if not hmac.compare_digest(pin.encode(), expected_pin.encode()):
        raise IncorrectPinError(
            f"PIN under KSN {ksn.hex().upper()} does not match the card's PIN",
            ksn=ksn.hex().upper(),
        )
