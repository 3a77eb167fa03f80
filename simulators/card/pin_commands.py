"""GET CHALLENGE and VERIFY on the simulated card: offline PIN, plaintext or enciphered.

VERIFY P2 80 takes a plaintext PIN block, P2 88 an RSA-enciphered one (Book 2 §7.2) bound
to the card's last challenge. The PIN try counter (9F17) counts down, ``63Cx`` tells the
tries left and ``6983`` a blocked PIN.
"""

from __future__ import annotations

from psec.pinblock import decode_pinblock_iso_2

from simulators.card.card_core import CardCore
from simulators.card.card_state import AppState
from simulators.card.status_words import SW_OK, SW_PIN_BLOCKED, SW_WRONG_LENGTH, SW_WRONG_P1P2

__all__ = ["PinCommands"]


class PinCommands(CardCore):
    """GET CHALLENGE (00 84) and VERIFY (00 20)."""

    def _get_challenge(self, p1: int, p2: int, _data: bytes) -> bytes:
        challenge = self._random(8)
        self._tx.extra["challenge"] = challenge  # for an enciphered PIN (Book 2 §7.2)
        return challenge + SW_OK

    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        if p2 == 0x88:
            return self._verify_enciphered(state, data)
        if p2 != 0x80:
            return SW_WRONG_P1P2
        if len(data) != 8 or data[0] >> 4 != 0x2:
            return SW_WRONG_LENGTH
        if state.pin_tries == 0:
            return SW_PIN_BLOCKED
        return self._check_pin(state, data.hex()[2 : 2 + (data[0] & 0x0F)])

    def _verify_enciphered(self, state: AppState, data: bytes) -> bytes:
        """VERIFY P2 ``88`` (Book 3 §6.5.12, Book 2 §7.2): RSA-decipher with the ICC private
        key, then ``7F ‖ PIN block ‖ our challenge ‖ padding``; anything else is a wrong PIN."""
        icc = state.personalised.icc
        if icc is None:
            return SW_WRONG_P1P2  # no ICC key: this card cannot take an enciphered PIN
        if len(data) != icc.size:
            return SW_WRONG_LENGTH
        if state.pin_tries == 0:
            return SW_PIN_BLOCKED
        challenge = self._tx.extra.pop("challenge", None)  # one VERIFY per challenge
        value = int.from_bytes(data, "big")
        plain = pow(value, icc.d, icc.n).to_bytes(icc.size, "big") if value < icc.n else b""
        digits = ""
        if plain[:1] == b"\x7f" and challenge is not None and plain[9:17] == challenge:
            try:
                digits = decode_pinblock_iso_2(plain[1:9])
            except ValueError:
                digits = ""
        return self._check_pin(state, digits)

    def _check_pin(self, state: AppState, digits: str) -> bytes:
        if digits and digits == state.personalised.app.pin:
            state.pin_tries = state.personalised.app.pin_try_limit
            self._tx.offline_pin_ok = True
            return SW_OK
        state.pin_tries -= 1
        self._tx.offline_pin_failed = True
        return bytes([0x63, 0xC0 | state.pin_tries])
