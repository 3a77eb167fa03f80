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

The commands live in their own modules, one class each on the shared state of
:mod:`.card_core`: :mod:`.selection_commands`, :mod:`.processing_commands` (GPO, qVSDC,
INTERNAL AUTHENTICATE), :mod:`.pin_commands`, :mod:`.generate_ac_commands`,
:mod:`.issuer_commands`; :class:`EmvCard` gathers them and adds power, the APDU entry
point with T=0 shaping, and GET DATA.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.card.card_state import AC_AAC, AC_ARQC, AC_TC, Transaction
from simulators.card.command_values import command_data
from simulators.card.generate_ac_commands import GenerateAcCommands
from simulators.card.issuer_commands import IssuerCommands
from simulators.card.pin_commands import PinCommands
from simulators.card.processing_commands import ProcessingCommands
from simulators.card.profiles import ATR_CONTACTLESS, Interface
from simulators.card.selection_commands import SelectionCommands
from simulators.card.status_words import (
    SW_CLA,
    SW_CONDITIONS,
    SW_INS,
    SW_NO_DATA,
    SW_OK,
    SW_WRONG_LENGTH,
    CardAnswer,
)
from terminal.emv import tlv

__all__ = ["AC_AAC", "AC_ARQC", "AC_TC", "EmvCard"]


class EmvCard(
    SelectionCommands, ProcessingCommands, PinCommands, GenerateAcCommands, IssuerCommands
):
    """One simulated card (``profile``) seen through one ``interface``."""

    # -- power ---------------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        if self.interface is Interface.CONTACTLESS:
            return ATR_CONTACTLESS
        return self.profile.atr

    def power_on(self) -> bytes:
        """Cold reset: transient state cleared, counters kept; returns the ATR."""
        self.powered = True
        self._tx = Transaction()
        self._pending = None
        return self.atr

    def power_off(self) -> None:
        self.powered = False
        self._tx = Transaction()
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
        except CardAnswer as answer:
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
        data = command_data(apdu)
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

    # -- GET DATA --------------------------------------------------------------------------

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
