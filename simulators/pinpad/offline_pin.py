"""Offline enciphered PIN, pad side: the block a PIN pad enciphers for the card.

EMV 4.4 Book 2 §7.2 (Table 23, "Data to be enciphered for PIN encipherment"): as long as
the ICC key's modulus N,

    7F ‖ PIN block (8 bytes) ‖ ICC unpredictable number (8 bytes) ‖ random pad (N − 17)

enciphered with the RSA public key (``m^e mod n``, no other padding). The PIN block is
the plaintext offline PIN block of Book 3 §6.5.12, ISO 9564-1 format 2 (``2 N P… F…``,
built by ``psec``). Only the card, holding the private key, can read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from psec.pinblock import encode_pinblock_iso_2

__all__ = ["encipher_pin_for_card"]


def encipher_pin_for_card(
    pin: str,
    modulus: bytes,
    exponent: bytes,
    challenge: bytes,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """The RSA-enciphered PIN data for VERIFY P2 ``88`` (as long as ``modulus``)."""
    if len(challenge) != 8:
        raise ValueError("the ICC challenge is 8 bytes")
    if len(modulus) < 17 + 8 or not modulus[0]:
        raise ValueError("the ICC key modulus is too short or has a leading zero byte")
    data = b"\x7f" + encode_pinblock_iso_2(pin) + challenge + random_bytes(len(modulus) - 17)
    n = int.from_bytes(modulus, "big")
    value = pow(int.from_bytes(data, "big"), int.from_bytes(exponent, "big"), n)
    return value.to_bytes(len(modulus), "big")
