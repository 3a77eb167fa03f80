"""GET PROCESSING OPTIONS and INTERNAL AUTHENTICATE on the simulated card.

GPO answers in format 1 or 2 (Book 3 §6.5.8), refuses an M/Chip reader that cannot do EMV
mode (Book C-2, 9F1D), and for qVSDC decides the cryptogram in the GPO answer itself, with
fDDA. INTERNAL AUTHENTICATE signs the DDOL data for DDA (Book 2 §6.5).
"""

from __future__ import annotations

from simulators.card import certs
from simulators.card.card_core import CardCore
from simulators.card.card_state import AC_AAC, AC_ARQC, AC_TC, AppState
from simulators.card.command_values import amount_of, dol_values
from simulators.card.personalise import track2
from simulators.card.profiles import Oda
from simulators.card.status_words import SW_CONDITIONS, SW_INS, SW_OK, SW_WRONG_LENGTH
from terminal.emv import dol, tlv

__all__ = ["ProcessingCommands"]


class ProcessingCommands(CardCore):
    """GET PROCESSING OPTIONS (80 A8) and INTERNAL AUTHENTICATE (00 88)."""

    def _gpo(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        if self._tx.gpo_done:
            return SW_CONDITIONS
        pers = state.personalised
        if not data or data[0] != 0x83:
            return SW_WRONG_LENGTH
        try:
            (template,) = tlv.decode(data)
        except Exception:
            return SW_WRONG_LENGTH
        if len(template.value) != dol.dol_length(pers.pdol):
            return SW_WRONG_LENGTH
        if state.atc >= 0xFFFF:
            return SW_CONDITIONS
        state.atc += 1
        self._tx.gpo_done = True
        self._tx.pdol_data = template.value
        if pers.mchip:
            # Book C-2: 9F1D byte 3 b7 "EMV mode contactless not supported" — we have
            # only EMV mode, so such a reader is refused.
            trm = dol_values(pers.pdol, template.value).get(0x9F1D, bytes(8))
            if trm[2] & 0x40:
                return SW_CONDITIONS
            return tlv.encode(0x77, tlv.encode(0x82, pers.aip) + tlv.encode(0x94, pers.afl)) + SW_OK
        if pers.contactless:
            return self._qvsdc(state, template.value)
        if pers.app.gpo_format == 1:
            return tlv.encode(0x80, pers.aip + pers.afl) + SW_OK
        return tlv.encode(0x77, tlv.encode(0x82, pers.aip) + tlv.encode(0x94, pers.afl)) + SW_OK

    def _qvsdc(self, state: AppState, pdol_data: bytes) -> bytes:
        pers = state.personalised
        app = pers.app
        assert app.contactless is not None
        values = dol_values(pers.pdol, pdol_data)
        ttq = values.get(0x9F66, bytes(4))
        if not ttq[0] & 0x20:
            return SW_CONDITIONS  # only the qVSDC path is modelled (no MSD)
        amount = amount_of(values)
        online = bool(ttq[1] & 0x80) or amount > app.contactless.offline_limit
        if online and ttq[0] & 0x08:
            ac_type = AC_AAC  # offline-only reader and the card wants to go online
        elif online:
            ac_type = AC_ARQC
        else:
            ac_type = AC_TC
        ctq1 = 0
        if amount > app.contactless.cvm_limit:
            if ac_type == AC_ARQC and ttq[0] & 0x04:
                ctq1 = 0x80  # online PIN required
            elif ttq[0] & 0x02:
                ctq1 = 0x40  # signature required
        ctq = bytes([ctq1, 0x00])
        card_un = self._random(4)
        tag_9f69 = b"\x01" + card_un + ctq
        self._tx.cvr1 = 0x80 | (ac_type >> 2)
        iad = self._iad(state)
        ac = self._cryptogram(state, values, iad)
        self._record_first_ac(state, ac_type, ac)
        body = b"".join(
            [
                tlv.encode(0x82, pers.aip),
                tlv.encode(0x94, pers.afl),
                tlv.encode(0x57, track2(pers.app)),
                tlv.encode(0x5F34, bytes.fromhex(f"{app.psn:02d}")),
                tlv.encode(0x9F10, iad),
                tlv.encode(0x9F26, ac),
                tlv.encode(0x9F27, bytes([ac_type])),
                tlv.encode(0x9F36, state.atc.to_bytes(2, "big")),
                tlv.encode(0x9F6C, ctq),
                tlv.encode(0x9F69, tag_9f69),
            ]
        )
        if ac_type == AC_TC and pers.icc is not None:
            # fDDA (VCPS): ICC dynamic number = the card's UN; the terminal data hashed are
            # UN ‖ amount authorised ‖ transaction currency ‖ card authentication data.
            terminal = (
                values.get(0x9F37, bytes(4))
                + values.get(0x9F02, bytes(6))
                + values.get(0x5F2A, bytes(2))
                + tag_9f69
            )
            sdad = certs.signed_dynamic_data(pers.icc, b"\x04" + card_un, terminal)
            body += tlv.encode(0x9F4B, self._maybe_tamper(sdad))
        return tlv.encode(0x77, body) + SW_OK


    def _internal_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        pers = state.personalised
        if pers.icc is None or pers.app.oda not in (Oda.DDA, Oda.CDA):
            return SW_INS
        if not self._tx.gpo_done:
            return SW_CONDITIONS
        number = self._random(8)
        sdad = self._maybe_tamper(certs.signed_dynamic_data(pers.icc, b"\x08" + number, data))
        if pers.app.internal_auth_format == 1:
            return tlv.encode(0x80, sdad) + SW_OK
        return tlv.encode(0x77, tlv.encode(0x9F4B, sdad)) + SW_OK
