"""The simulated EMV card: command APDU in, response APDU out.

It implements the card side of EMV 4.4 Book 3 (§6.5 commands, §10 transaction flow) and,
for the contactless interface, the card side of Visa qVSDC as far as this project models
it. Commands (CLA INS):

==========  ===========================================  =================================
00 A4       SELECT by name (P2 00 first / 02 next)        PSE, PPSE, DDF, AIDs (partial)
00 B2       READ RECORD                                   PSE directory or AFL records
80 A8       GET PROCESSING OPTIONS                        format 1 (80) or 2 (77); qVSDC
80 CA       GET DATA                                      9F36 ATC, 9F17 PIN try counter,
                                                          9F13 last online ATC, 9F14, 9F23
00 84       GET CHALLENGE                                 8 random bytes
00 20       VERIFY (P2 80 plaintext, 88 enciphered PIN)   PIN try counter, 63Cx, 6983
00 88       INTERNAL AUTHENTICATE                         DDA signature (9F4B)
80 AE       GENERATE AC (1st and 2nd, CDA on P1 b5)       ARQC/TC/AAC, CDA signature
00 82       EXTERNAL AUTHENTICATE                         ARPC method 1
84 1E/18/24 APPLICATION BLOCK/UNBLOCK, PIN UNBLOCK        issuer scripts, MAC checked
04 DA       PUT DATA (9F14, 9F23)                         issuer scripts, MAC checked
00 C0       GET RESPONSE                                  only in T=0 mode
==========  ===========================================  =================================

In T=0 mode (profile ``t0`` or fault ``t0``) the card answers like a T=0 card through an
APDU-level reader: data for a case 3/4 command waits behind ``61xx`` for GET RESPONSE,
and a case 2 command with the wrong Le gets ``6Cxx``.

The card decides honestly: the cryptogram type from its own risk rules (offline limit,
consecutive offline count), the issuer's ARPC verified with its keys before a TC is
given online, scripts executed only with a valid MAC. The keys and formulas are those of
:mod:`simulators.card.issuer`, so the PSP simulator can verify what the card produced.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from psec.pinblock import decode_pinblock_iso_2

from simulators.card import certs, issuer
from simulators.card.personalise import PSE_SFI, Personalised, personalise, track2
from simulators.card.profiles import (
    ATR_CONTACTLESS,
    ArpcMode,
    CardProfile,
    Interface,
    Oda,
)
from terminal.emv import dol, tlv

__all__ = ["AC_AAC", "AC_ARQC", "AC_TC", "EmvCard"]

PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"
DDF_SFI = 2  # the directory of a profile's DDF (its FCI's tag 88)
AC_AAC, AC_TC, AC_ARQC = 0x00, 0x40, 0x80

SW_OK = b"\x90\x00"
SW_BLOCKED = b"\x62\x83"
SW_WRONG_LENGTH = b"\x67\x00"
SW_CONDITIONS = b"\x69\x85"
SW_MAC_FAILED = b"\x69\x88"
SW_PIN_BLOCKED = b"\x69\x83"
SW_FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
SW_NOT_FOUND = b"\x6a\x82"
SW_NO_RECORD = b"\x6a\x83"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_NO_DATA = b"\x6a\x88"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"
SW_AUTH_FAILED = b"\x63\x00"

_TERMINAL_DEFAULT_LENGTHS = {
    0x9F02: 6, 0x9F03: 6, 0x9F1A: 2, 0x95: 5, 0x5F2A: 2, 0x9A: 3, 0x9C: 1, 0x9F37: 4,
}
_ONLINE_APPROVED_ARC = {b"00", b"10", b"11"}
_UNABLE_ONLINE_ARC = {b"Y3", b"Z3"}


@dataclass
class _AppState:
    """What survives power cycles: counters, PIN tries, the blocked flag."""

    personalised: Personalised
    atc: int = 0
    last_online_atc: int = 0
    pin_tries: int = 3
    blocked: bool = False
    consecutive_offline: int = 0
    lcol: int = 0
    ucol: int = 0


@dataclass
class _Transaction:
    """What one selection-to-GENERATE-AC run holds (reset by SELECT and power-off)."""

    app: _AppState | None = None
    directory: bytes | None = None  # PSE or PPSE selected
    gpo_done: bool = False
    pdol_data: bytes = b""
    cdol1_data: bytes = b""
    first_ac: int | None = None
    arqc: bytes = b""
    second_done: bool = False
    external_auth: bool | None = None  # None: not performed; True: ARPC ok
    cvr1: int = 0x80  # 2nd GENERATE AC not requested yet (CVR byte 2 b8-7 = 10)
    cvr2: int = 0
    scripts: int = 0
    offline_pin_ok: bool = False
    offline_pin_failed: bool = False
    selected_index: int = -1
    extra: dict[str, bytes] = field(default_factory=dict)


class EmvCard:
    """One simulated card (``profile``) seen through one ``interface``."""

    def __init__(
        self,
        profile: CardProfile,
        interface: Interface = Interface.CONTACT,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.profile = profile
        self.interface = interface
        self._random = random_bytes
        apps = profile.apps
        if interface is Interface.CONTACTLESS:
            apps = tuple(app for app in apps if app.contactless is not None)
            if not apps or not profile.ppse:
                raise ValueError(f"card profile {profile.name!r} has no contactless interface")
        self.apps = [
            _AppState(
                personalise(app, interface, profile.faults),
                pin_tries=app.pin_try_limit,
                blocked=app.blocked,
                lcol=app.lcol,
                ucol=app.ucol,
            )
            for app in apps
        ]
        self.t0 = profile.t0 or "t0" in profile.faults
        self.powered = False
        self._tx = _Transaction()
        self._pending: bytes | None = None

    # -- power ---------------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        if self.interface is Interface.CONTACTLESS:
            return ATR_CONTACTLESS
        return self.profile.atr

    def power_on(self) -> bytes:
        """Cold reset: transient state cleared, counters kept; returns the ATR."""
        self.powered = True
        self._tx = _Transaction()
        self._pending = None
        return self.atr

    def power_off(self) -> None:
        self.powered = False
        self._tx = _Transaction()
        self._pending = None

    # -- APDU entry point ----------------------------------------------------------------

    def process(self, apdu: bytes) -> bytes:
        """Execute one command APDU; returns response data ‖ SW1 SW2."""
        if not self.powered:
            raise RuntimeError("the card is not powered; call power_on() first")
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        if self.t0 and apdu[1] == 0xC0 and apdu[0] == 0x00:
            return self._get_response(apdu)
        self._pending = None
        try:
            response = self._dispatch(apdu)
        except _Answer as answer:
            response = answer.response
        return self._t0_shape(apdu, response) if self.t0 else response

    def _t0_shape(self, apdu: bytes, response: bytes) -> bytes:
        data, sw = response[:-2], response[-2:]
        if not data:
            return response
        case = 2 if len(apdu) == 5 else (1 if len(apdu) == 4 else 4)
        if case == 2:
            le = apdu[4] or 256
            if le != len(data):
                return bytes([0x6C, len(data) & 0xFF])
            return response
        if sw != SW_OK and sw[0] not in (0x62, 0x63):
            return response
        self._pending = data
        if sw != SW_OK:
            # A warning with data: T=0 sends the warning alone; GET RESPONSE fetches the data.
            return sw
        return bytes([0x61, len(data) & 0xFF])

    def _get_response(self, apdu: bytes) -> bytes:
        pending, self._pending = self._pending, None
        if pending is None:
            return SW_CONDITIONS
        le = (apdu[4] or 256) if len(apdu) >= 5 else 256
        if le != len(pending):
            self._pending = pending
            return bytes([0x6C, len(pending) & 0xFF])
        return pending + SW_OK

    def _dispatch(self, apdu: bytes) -> bytes:
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        data = _command_data(apdu)
        if cla == 0x00:
            handlers: dict[int, Callable[[int, int, bytes], bytes]] = {
                0xA4: self._select,
                0xB2: self._read_record,
                0x84: self._get_challenge,
                0x20: self._verify,
                0x88: self._internal_authenticate,
                0x82: self._external_authenticate,
            }
        elif cla == 0x80:
            handlers = {
                0xA8: self._gpo,
                0xCA: self._get_data,
                0xAE: self._generate_ac,
            }
        elif cla in (0x84, 0x04):
            return self._script(apdu, data)
        else:
            return SW_CLA
        handler = handlers.get(ins)
        if handler is None:
            return SW_INS
        return handler(p1, p2, data)

    # -- selection -----------------------------------------------------------------------

    def _visible_apps(self) -> list[int]:
        return list(range(len(self.apps)))

    def _select(self, p1: int, p2: int, name: bytes) -> bytes:
        if p1 != 0x04 or p2 not in (0x00, 0x02):
            return SW_WRONG_P1P2
        previous = self._tx
        self._tx = _Transaction()
        contactless = self.interface is Interface.CONTACTLESS
        if name == PSE_NAME:
            if not self.profile.pse or contactless:
                return SW_NOT_FOUND
            self._tx.directory = PSE_NAME
            body = tlv.encode(0x84, PSE_NAME) + tlv.encode(
                0xA5, tlv.encode(0x88, bytes([PSE_SFI])) + tlv.encode(0x5F2D, b"frenar")
            )
            return tlv.encode(0x6F, body) + SW_OK
        if self.profile.ddf and name == self.profile.ddf and not contactless:
            self._tx.directory = name
            body = tlv.encode(0x84, name) + tlv.encode(0xA5, tlv.encode(0x88, bytes([DDF_SFI])))
            return tlv.encode(0x6F, body) + SW_OK
        if name == PPSE_NAME:
            if not contactless:
                return SW_NOT_FOUND
            self._tx.directory = PPSE_NAME
            entries = b"".join(tlv.encode(0x61, self._directory_entry(s)) for s in self.apps)
            body = tlv.encode(0x84, PPSE_NAME) + tlv.encode(0xA5, tlv.encode(0xBF0C, entries))
            return tlv.encode(0x6F, body) + SW_OK
        if len(name) < 5:
            return SW_NOT_FOUND
        if self.profile.select_6a81:
            return SW_FUNCTION_NOT_SUPPORTED
        start = previous.selected_index + 1 if p2 == 0x02 else 0
        for index in range(start, len(self.apps)):
            state = self.apps[index]
            if state.personalised.aid.startswith(name):
                self._tx.app = state
                self._tx.selected_index = index
                if state.blocked:
                    # Book 1 §12.3.2: a blocked application still answers with its FCI.
                    return state.personalised.fci + SW_BLOCKED
                return state.personalised.fci + SW_OK
        return SW_NOT_FOUND

    def _directory_entry(self, state: _AppState) -> bytes:
        app = state.personalised.app
        entry = tlv.encode(0x4F, state.personalised.aid) + tlv.encode(0x50, app.label.encode())
        entry += tlv.encode(0x87, bytes([app.priority]))
        if app.preferred_name and self.interface is Interface.CONTACT:
            entry += tlv.encode(0x9F12, app.preferred_name.encode())
        return entry

    def _read_record(self, p1: int, p2: int, _data: bytes) -> bytes:
        if p2 & 0x07 != 0x04 or p1 == 0:
            return SW_WRONG_P1P2
        sfi = p2 >> 3
        if self._tx.directory == PSE_NAME:
            if sfi != PSE_SFI or p1 != 1:
                return SW_NO_RECORD
            in_ddf = self.profile.ddf_aids
            entries = b"".join(
                tlv.encode(0x61, self._directory_entry(s))
                for s in self.apps
                if s.personalised.app.aid not in in_ddf
            )
            if self.profile.ddf:
                entries += tlv.encode(0x61, tlv.encode(0x9D, self.profile.ddf))
            return tlv.encode(0x70, entries) + SW_OK
        if self.profile.ddf and self._tx.directory == self.profile.ddf:
            if sfi != DDF_SFI or p1 != 1:
                return SW_NO_RECORD
            entries = b"".join(
                tlv.encode(0x61, self._directory_entry(s))
                for s in self.apps
                if s.personalised.app.aid in self.profile.ddf_aids
            )
            return tlv.encode(0x70, entries) + SW_OK
        state = self._tx.app
        if state is None:
            return SW_CONDITIONS
        record = state.personalised.records.get((sfi, p1))
        if record is None:
            return SW_NO_RECORD
        return record + SW_OK

    # -- GET PROCESSING OPTIONS ----------------------------------------------------------

    def _selected(self) -> _AppState:
        state = self._tx.app
        if state is None or state.blocked:
            raise _Answer(SW_CONDITIONS)
        return state

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
            trm = _dol_values(pers.pdol, template.value).get(0x9F1D, bytes(8))
            if trm[2] & 0x40:
                return SW_CONDITIONS
            return tlv.encode(0x77, tlv.encode(0x82, pers.aip) + tlv.encode(0x94, pers.afl)) + SW_OK
        if pers.contactless:
            return self._qvsdc(state, template.value)
        if pers.app.gpo_format == 1:
            return tlv.encode(0x80, pers.aip + pers.afl) + SW_OK
        return tlv.encode(0x77, tlv.encode(0x82, pers.aip) + tlv.encode(0x94, pers.afl)) + SW_OK

    def _qvsdc(self, state: _AppState, pdol_data: bytes) -> bytes:
        pers = state.personalised
        app = pers.app
        assert app.contactless is not None
        values = _dol_values(pers.pdol, pdol_data)
        ttq = values.get(0x9F66, bytes(4))
        if not ttq[0] & 0x20:
            return SW_CONDITIONS  # only the qVSDC path is modelled (no MSD)
        amount = _amount(values)
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
                tlv.encode(0x57, _track2(pers)),
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

    # -- GET DATA, GET CHALLENGE, VERIFY --------------------------------------------------

    def _get_data(self, p1: int, p2: int, _data: bytes) -> bytes:
        state = self._tx.app or (self.apps[0] if self.apps else None)
        if state is None:
            return SW_NO_DATA
        tag = (p1 << 8) | p2
        values = {
            0x9F36: state.atc.to_bytes(2, "big"),
            0x9F13: state.last_online_atc.to_bytes(2, "big"),
            0x9F17: bytes([state.pin_tries]),
            0x9F14: bytes([state.lcol]),
            0x9F23: bytes([state.ucol]),
        }
        if tag not in values:
            return SW_NO_DATA
        return tlv.encode(tag, values[tag]) + SW_OK

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

    def _verify_enciphered(self, state: _AppState, data: bytes) -> bytes:
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

    def _check_pin(self, state: _AppState, digits: str) -> bytes:
        if digits and digits == state.personalised.app.pin:
            state.pin_tries = state.personalised.app.pin_try_limit
            self._tx.offline_pin_ok = True
            return SW_OK
        state.pin_tries -= 1
        self._tx.offline_pin_failed = True
        return bytes([0x63, 0xC0 | state.pin_tries])

    # -- offline data authentication -----------------------------------------------------

    def _maybe_tamper(self, signature: bytes) -> bytes:
        if "tamper-sdad" not in self.profile.faults:
            return signature
        middle = len(signature) // 2
        return signature[:middle] + bytes([signature[middle] ^ 0x01]) + signature[middle + 1 :]

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

    # -- GENERATE AC ---------------------------------------------------------------------

    def _iad(self, state: _AppState) -> bytes:
        """Issuer application data: 06 ‖ DKI ‖ CVN ‖ CVR (03 ‖ 3 bytes), Visa-like layout."""
        tx = self._tx
        cvr1 = tx.cvr1
        if tx.offline_pin_ok or tx.offline_pin_failed:
            cvr1 |= 0x04
        if tx.offline_pin_failed:
            cvr1 |= 0x02
        cvr2 = tx.cvr2 | (0x40 if state.pin_tries == 0 else 0)
        cvr3 = min(tx.scripts, 15) << 4
        return bytes([0x06, 0x01, state.personalised.app.cvn, 0x03, cvr1, cvr2, cvr3])

    def _cryptogram(self, state: _AppState, values: dict[int, bytes], iad: bytes) -> bytes:
        tags = {tag: values.get(tag, bytes(n)) for tag, n in _TERMINAL_DEFAULT_LENGTHS.items()}
        tags[0x82] = state.personalised.aip
        tags[0x9F36] = state.atc.to_bytes(2, "big")
        tags[0x9F10] = iad
        return issuer.generate_ac(state.personalised.card_keys, tags)

    def _record_first_ac(self, state: _AppState, ac_type: int, ac: bytes) -> None:
        self._tx.first_ac = ac_type
        if ac_type == AC_ARQC:
            self._tx.arqc = ac
        elif ac_type == AC_TC:
            state.consecutive_offline += 1

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
        values = _dol_values(cdol, data)
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

    def _first_decision(self, state: _AppState, requested: int, values: dict[int, bytes]) -> int:
        if requested == AC_AAC:
            return AC_AAC
        if requested == AC_ARQC:
            return AC_ARQC
        too_much = _amount(values) > state.personalised.app.offline_limit
        if too_much or state.consecutive_offline >= state.ucol:
            return AC_ARQC
        return AC_TC

    def _second_decision(self, state: _AppState, requested: int, values: dict[int, bytes]) -> int:
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
                            state.personalised.card_keys, _atc(state), self._tx.arqc, tag_91
                        )
                    else:
                        csu = issuer.verify_arpc_method_2(
                            state.personalised.card_keys, _atc(state), self._tx.arqc, tag_91
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
            if _amount(values) <= app.offline_limit and state.consecutive_offline < state.ucol:
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
        state: _AppState,
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

    # -- issuer authentication and scripts -----------------------------------------------

    def _external_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        state = self._selected()
        tx = self._tx
        if tx.first_ac != AC_ARQC or tx.external_auth is not None or tx.second_done:
            return SW_CONDITIONS
        if state.personalised.app.arpc is not ArpcMode.METHOD1_EXTERNAL:
            return SW_INS
        try:
            issuer.verify_arpc_method_1(state.personalised.card_keys, _atc(state), tx.arqc, data)
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
            state.personalised.card_keys, header, _atc(state), self._tx.arqc, payload
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


class _Answer(Exception):
    """Short-circuit a handler with a status word."""

    def __init__(self, response: bytes) -> None:
        super().__init__(response.hex())
        self.response = response


def _command_data(apdu: bytes) -> bytes:
    if len(apdu) <= 5:
        return b""
    return apdu[5 : 5 + apdu[4]]


def _dol_values(dol_bytes: bytes, data: bytes) -> dict[int, bytes]:
    values: dict[int, bytes] = {}
    offset = 0
    for tag, length in dol.parse_dol(dol_bytes):
        values[tag] = data[offset : offset + length]
        offset += length
    return values


def _amount(values: dict[int, bytes]) -> int:
    raw = values.get(0x9F02, b"")
    try:
        return int(raw.hex() or "0")
    except ValueError:
        return 0


def _atc(state: _AppState) -> bytes:
    return state.atc.to_bytes(2, "big")


def _track2(pers: Personalised) -> bytes:
    return track2(pers.app)
