"""ISO 9564-1 PIN blocks enciphered under a DUKPT PIN key: format 0 (TDES) and 4 (AES).

The block layouts come from ``psec.pinblock`` (format 0: ISO 9564-1 §9.4.2.1; format 4:
§9.4.2.5 with its two-step AES encipherment binding the PAN). TDES encipherment of the
format 0 block is ANSI X9.24-1 "Request PIN Entry" (TDES-ECB under the PIN key).

psec's decoders put the digits they found into their ``ValueError`` messages; callers
here never let such a message out (see :mod:`simulators.pinpad.host`).
"""

from __future__ import annotations

from psec.pinblock import (
    decipher_pinblock_iso_4,
    decode_pinblock_iso_0,
    encipher_pinblock_iso_4,
    encode_pinblock_iso_0,
)

from simulators.pinpad.dukpt import tdes_decrypt, tdes_encrypt

__all__ = ["decipher_pin_block", "encipher_pin_block"]


def encipher_pin_block(pin_format: int, pin_key: bytes, pin: str, pan: str) -> bytes:
    """Build and encipher the PIN block of ``pin_format`` (0 or 4) under ``pin_key``."""
    if pin_format == 0:
        return tdes_encrypt(pin_key, encode_pinblock_iso_0(pin, pan))
    if pin_format == 4:
        return encipher_pinblock_iso_4(pin_key, pin, pan)
    raise ValueError(f"PIN block format must be 0 or 4, not {pin_format}")


def decipher_pin_block(pin_format: int, pin_key: bytes, pin_block: bytes, pan: str) -> str:
    """Decipher and decode; ``ValueError`` (whose text may hold digits) when invalid."""
    if pin_format == 0:
        return decode_pinblock_iso_0(tdes_decrypt(pin_key, pin_block), pan)
    if pin_format == 4:
        return decipher_pinblock_iso_4(pin_key, pin_block, pan)
    raise ValueError(f"PIN block format must be 0 or 4, not {pin_format}")
