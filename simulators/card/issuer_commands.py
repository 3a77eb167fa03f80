"""What the issuer sends the simulated card through the terminal (Book 3 §6.5.4, §10.10).

EXTERNAL AUTHENTICATE checks an ARPC (method 1); issuer scripts (APPLICATION BLOCK and
UNBLOCK, PIN UNBLOCK, PUT DATA of the offline limits) run only with a valid MAC, keys
and formulas of :mod:`simulators.card.issuer`.
"""

from __future__ import annotations

from simulators.card import issuer
from simulators.card.card_core import CardCore
from simulators.card.card_state import AC_ARQC
from simulators.card.command_values import atc_bytes
from simulators.card.profiles import ArpcMode
from simulators.card.status_words import (
    SW_AUTH_FAILED,
    SW_CONDITIONS,
    SW_INS,
    SW_MAC_FAILED,
    SW_OK,
    SW_WRONG_LENGTH,
)

__all__ = ["IssuerCommands"]


class IssuerCommands(CardCore):
    """EXTERNAL AUTHENTICATE (00 82) and issuer script commands (84 1E/18/24, 04 DA)."""

    def _external_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        tx = self._tx
        if tx.first_ac != AC_ARQC or tx.external_auth is not None or tx.second_done:
            return SW_CONDITIONS
        if state.personalised.app.arpc is not ArpcMode.METHOD1_EXTERNAL:
            return SW_INS
        try:
            issuer.verify_arpc_method_1(
                state.personalised.card_keys, atc_bytes(state), tx.arqc, data
            )
        except issuer.CryptogramMismatchError:
            tx.external_auth = False
            return SW_AUTH_FAILED
        tx.external_auth = True
        return SW_OK

    def _script(self, apdu: bytes, data: bytes) -> bytes:
        state = self._tx.app
        if state is None or not self._tx.arqc:
            return SW_CONDITIONS
        if len(data) < 4:
            return SW_WRONG_LENGTH
        header = apdu[:5]
        payload, mac = data[:-4], data[-4:]
        expected = issuer.script_mac(
            state.personalised.card_keys, header, atc_bytes(state), self._tx.arqc, payload
        )
        if mac != expected:
            self._tx.cvr2 |= 0x04
            return SW_MAC_FAILED
        self._tx.scripts += 1
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if cla == 0x84 and ins == 0x1E:
            state.blocked = True
        elif cla == 0x84 and ins == 0x18:
            state.blocked = False
        elif cla == 0x84 and ins == 0x24 and not payload:
            state.pin_tries = state.personalised.app.pin_try_limit
        elif cla == 0x04 and ins == 0xDA and (p1, p2) in ((0x9F, 0x14), (0x9F, 0x23)) and payload:
            if p2 == 0x14:
                state.lcol = payload[0]
            else:
                state.ucol = payload[0]
        else:
            self._tx.scripts -= 1
            return SW_INS
        return SW_OK
