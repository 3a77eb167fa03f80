"""GENERATE AC on the simulated card: the card's own decisions and CDA (Book 3 §6.5.5, §10.8).

The first GENERATE AC follows the card's risk rules (offline limit, consecutive offline
transactions); the second verifies the issuer's ARPC when it travels in the CDOL2 (methods
1 and 2) and takes the unable-to-go-online default; a CDA request puts the cryptogram
inside the signed dynamic data with the transaction data hash (Book 2 §6.6.1).
"""

from __future__ import annotations

import hashlib

from simulators.card import certs, issuer
from simulators.card.card_core import CardCore
from simulators.card.card_state import AC_AAC, AC_ARQC, AC_TC, AppState
from simulators.card.command_values import amount_of, atc_bytes, dol_values
from simulators.card.profiles import ArpcMode, Oda
from simulators.card.status_words import SW_CONDITIONS, SW_OK, SW_WRONG_LENGTH, SW_WRONG_P1P2
from terminal.emv import dol, tlv

__all__ = ["GenerateAcCommands"]

_ONLINE_APPROVED_ARC = {b"00", b"10", b"11"}
_UNABLE_ONLINE_ARC = {b"Y3", b"Z3"}


class GenerateAcCommands(CardCore):
    """GENERATE AC (80 AE), first and second."""

    def _generate_ac(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        pers = state.personalised
        if not self._tx.gpo_done or self._tx.second_done or (pers.contactless and not pers.mchip):
            return SW_CONDITIONS
        requested = p1 & 0xC0
        cda = bool(p1 & 0x10)
        if requested == 0xC0 or p2 != 0:
            return SW_WRONG_P1P2
        app = state.personalised.app
        first = self._tx.first_ac is None
        cdol = app.cdol1 if first else app.cdol2
        if len(data) != dol.dol_length(cdol):
            return SW_WRONG_LENGTH
        values = dol_values(cdol, data)
        if first:
            self._tx.cdol1_data = data
            ac_type = self._first_decision(state, requested, values)
            self._tx.cvr1 = 0x80 | (ac_type >> 2)
        else:
            if self._tx.first_ac != AC_ARQC:
                return SW_CONDITIONS
            if requested == AC_ARQC:
                return SW_WRONG_P1P2
            ac_type = self._second_decision(state, requested, values)
            self._tx.cvr1 = (self._tx.cvr1 & 0x3F) | ac_type  # CVR: 2nd GENERATE AC type
            self._tx.second_done = True
            self._tx.extra["cdol2"] = data
        iad = self._iad(state)
        ac = self._cryptogram(state, values, iad)
        if first:
            self._record_first_ac(state, ac_type, ac)
        cid = bytes([ac_type])
        atc = state.atc.to_bytes(2, "big")
        if cda and ac_type != AC_AAC and state.personalised.icc is not None and app.oda is Oda.CDA:
            return self._cda_response(state, values, cid, atc, ac, iad) + SW_OK
        if app.genac_format == 1:
            return tlv.encode(0x80, cid + atc + ac + iad) + SW_OK
        body = (
            tlv.encode(0x9F27, cid)
            + tlv.encode(0x9F36, atc)
            + tlv.encode(0x9F26, ac)
            + tlv.encode(0x9F10, iad)
        )
        return tlv.encode(0x77, body) + SW_OK

    def _first_decision(self, state: AppState, requested: int, values: dict[int, bytes]) -> int:
        if requested == AC_AAC:
            return AC_AAC
        if requested == AC_ARQC:
            return AC_ARQC
        too_much = amount_of(values) > state.personalised.app.offline_limit
        if too_much or state.consecutive_offline >= state.ucol:
            return AC_ARQC
        return AC_TC

    def _second_decision(self, state: AppState, requested: int, values: dict[int, bytes]) -> int:
        app = state.personalised.app
        arc = values.get(0x8A, b"")
        issuer_ok: bool | None = self._tx.external_auth
        approved_by_issuer = arc in _ONLINE_APPROVED_ARC
        if app.arpc in (ArpcMode.METHOD1_GENAC2, ArpcMode.METHOD2_GENAC2):
            tag_91 = values.get(0x91, b"")
            if tag_91.strip(b"\x00"):
                try:
                    if app.arpc is ArpcMode.METHOD1_GENAC2:
                        issuer.verify_arpc_method_1(
                            state.personalised.card_keys, atc_bytes(state), self._tx.arqc, tag_91
                        )
                    else:
                        csu = issuer.verify_arpc_method_2(
                            state.personalised.card_keys, atc_bytes(state), self._tx.arqc, tag_91
                        )
                        approved_by_issuer = approved_by_issuer and bool(csu[1] & 0x80)
                    issuer_ok = True
                except issuer.CryptogramMismatchError:
                    issuer_ok = False
        if issuer_ok is False:
            self._tx.cvr1 |= 0x08  # issuer authentication performed and failed
            return AC_AAC
        if requested == AC_AAC:
            return AC_AAC
        if arc in _UNABLE_ONLINE_ARC or not arc.strip(b"\x00"):
            # Unable to go online: the card's own default decision.
            self._tx.cvr1 |= 0x01
            if amount_of(values) <= app.offline_limit and state.consecutive_offline < state.ucol:
                state.consecutive_offline += 1
                return AC_TC
            return AC_AAC
        if approved_by_issuer and issuer_ok:
            state.consecutive_offline = 0
            state.last_online_atc = state.atc
            return AC_TC
        return AC_AAC

    def _cda_response(
        self,
        state: AppState,
        values: dict[int, bytes],
        cid: bytes,
        atc: bytes,
        ac: bytes,
        iad: bytes,
    ) -> bytes:
        """Book 2 §6.6.1: the AC travels inside the signature, with the transaction hash."""
        returned = tlv.encode(0x9F27, cid) + tlv.encode(0x9F36, atc) + tlv.encode(0x9F10, iad)
        hashed = self._tx.pdol_data + self._tx.cdol1_data + self._tx.extra.get("cdol2", b"")
        tdhc = hashlib.sha1(hashed + returned).digest()  # noqa: S324 - EMV mandates SHA-1
        number = self._random(8)
        dynamic = b"\x08" + number + cid + ac + tdhc
        sdad = certs.signed_dynamic_data(
            state.personalised.icc,  # type: ignore[arg-type]
            dynamic,
            values.get(0x9F37, bytes(4)),
        )
        body = (
            tlv.encode(0x9F27, cid)
            + tlv.encode(0x9F36, atc)
            + tlv.encode(0x9F4B, self._maybe_tamper(sdad))
            + tlv.encode(0x9F10, iad)
        )
        return tlv.encode(0x77, body)
