"""SELECT and READ RECORD on the simulated card (EMV 4.4 Book 1 §12, Book 3 §6.5.11).

The PSE (contact) and PPSE (contactless) directories, a DDF with its own directory, AIDs
by partial name with *next occurrence*, blocked applications (6283), and the records of
the selected application's AFL.
"""

from __future__ import annotations

from simulators.card.card_core import CardCore
from simulators.card.card_state import AppState, Transaction
from simulators.card.personalise import PSE_SFI
from simulators.card.profiles import Interface
from simulators.card.status_words import (
    SW_BLOCKED,
    SW_CONDITIONS,
    SW_FUNCTION_NOT_SUPPORTED,
    SW_NO_RECORD,
    SW_NOT_FOUND,
    SW_OK,
    SW_WRONG_P1P2,
)
from terminal.emv import tlv

__all__ = ["DDF_SFI", "PPSE_NAME", "PSE_NAME", "SelectionCommands"]

PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"
DDF_SFI = 2  # the directory of a profile's DDF (its FCI's tag 88)


class SelectionCommands(CardCore):
    """SELECT (00 A4) and READ RECORD (00 B2)."""

    def _visible_apps(self) -> list[int]:
        return list(range(len(self.apps)))

    def _select(self, p1: int, p2: int, name: bytes) -> bytes:
        if p1 != 0x04 or p2 not in (0x00, 0x02):
            return SW_WRONG_P1P2
        previous = self._tx
        self._tx = Transaction()
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

    def _directory_entry(self, state: AppState) -> bytes:
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
