"""Offline enciphered PIN over the real serial link: driver ↔ pty ↔ PIN pad simulator.

drivers/PROTOCOL.md §3.3: the ICC key in Z63 parts, Z64 PIN entry answered by 73, the
block in Z66/74 parts — every packet within the link's 240 bytes (EMV 4.4 Book 2 §7.2).
"""

from __future__ import annotations

import pytest
from psec.pinblock import decode_pinblock_iso_2

from drivers.errors import PinEntryCancelledError
from simulators.card.pki import rsa_key
from tests.fixtures.pinpad import TEST_PIN, PadFactory, SimFactory

CHALLENGE = bytes.fromhex("0102030405060708")


@pytest.mark.parametrize("bits", [1024, 1984])
async def test_pad_enciphers_the_pin_for_the_card(pinpad_sim: SimFactory,
                                                  open_pinpad: PadFactory, bits: int) -> None:
    """The block deciphers with the card's private key to 7F ‖ format-2 PIN ‖ challenge."""
    icc = rsa_key(f"test/offline-pin/{bits}", bits)
    pad = await open_pinpad(await pinpad_sim())
    block = await pad.encipher_pin_for_card(icc.modulus, icc.exponent, CHALLENGE, 2500, 504,
                                            timeout_s=5)
    assert len(block) == icc.size
    plain = pow(int.from_bytes(block, "big"), icc.d, icc.n).to_bytes(icc.size, "big")
    assert plain[0] == 0x7F and plain[9:17] == CHALLENGE
    assert decode_pinblock_iso_2(plain[1:9]) == TEST_PIN


async def test_cancel_on_the_pad_ends_offline_pin_entry(pinpad_sim: SimFactory,
                                                        open_pinpad: PadFactory) -> None:
    """The cardholder's CANCEL answers 73.1, raised as PinEntryCancelledError."""
    icc = rsa_key("test/offline-pin/1024", 1024)
    pad = await open_pinpad(await pinpad_sim(faults="cancel=1"))
    with pytest.raises(PinEntryCancelledError):
        await pad.encipher_pin_for_card(icc.modulus, icc.exponent, CHALLENGE, 2500, 504,
                                        timeout_s=5)
