"""What one transaction accumulates after selection, shared by its steps.

:class:`FlowState` holds the card's data objects (``card``), TVR and TSI, the static data
for ODA, the cryptograms and the decision, and builds the data every DOL draws from
(card objects + terminal objects, :mod:`.terminal_data`). The steps live in their own
classes on top of it: :class:`~terminal.emv.oda_steps.OdaSteps` (Book 3 §10.3),
:class:`~terminal.emv.cryptogram_steps.CryptogramSteps` (§10.8–10.11), and
:class:`~terminal.emv.contact.ContactFlow`, which reads the card and runs them in order.
"""

from __future__ import annotations

from datetime import date

from terminal.emv.apdu import CardChannel
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.cvm import CvmResult, PinCallback
from terminal.emv.errors import CardDataError
from terminal.emv.oda import RsaKey
from terminal.emv.offline_pin import OfflinePinCallback
from terminal.emv.online import OnlineAuthoriser, ScriptResults
from terminal.emv.pan import pan_from_card
from terminal.emv.risk import Cryptogram
from terminal.emv.selection import SelectedApplication
from terminal.emv.terminal_data import terminal_data
from terminal.emv.tlv import Tlv, is_constructed
from terminal.emv.tvr import Tsi, Tvr

__all__ = ["FlowState"]


class FlowState:
    """The state of one transaction after selection and the data its DOLs draw from."""

    #: Book 3 §10.2: a repeated primitive object terminates a contact transaction.
    tolerate_identical_duplicates = False

    def __init__(
        self,
        config: KernelConfig,
        channel: CardChannel,
        selected: SelectedApplication,
        txn: TransactionData | None,
        *,
        pin_entry: PinCallback | None = None,
        authoriser: OnlineAuthoriser | None = None,
        offline_pin: OfflinePinCallback | None = None,
    ) -> None:
        self.config = config
        self.pin_entry = pin_entry
        self.offline_pin = offline_pin
        self.authoriser = authoriser
        self.channel = channel
        self.selected = selected
        self.aid_config = selected.candidate.config
        self.txn = txn
        self.tvr = Tvr()
        self.tsi = Tsi()
        self.card: dict[int, bytes] = {}
        self.static_data = b""
        self.static_data_ok = True
        self.aip = b"\x00\x00"
        self.pdol_data = b""
        self.un = self.config.random_bytes(4)
        self.oda = "none"
        self.oda_result = "not_performed"
        self.cvm = CvmResult()
        self.icc_key: RsaKey | None = None
        self.first: Cryptogram | None = None
        self.final: Cryptogram | None = None
        self.decision = ""
        self.arc = b""
        self.scripts = ScriptResults()
        self.cdol1_data = b""
        self.gen_ac: dict[int, bytes] = {}
        self._static_terminal: dict[int, bytes] | None = None


    # -- data --------------------------------------------------------------------------

    def terminal_objects(self) -> dict[int, bytes]:
        assert self.txn is not None
        if self._static_terminal is None:
            self._static_terminal = terminal_data(
                self.config, self.aid_config, self.txn, self.un, self.tvr, self.tsi
            )
        data = dict(self._static_terminal)
        # The objects that change during the transaction, always current.
        data[0x95] = bytes(self.tvr)
        data[0x9B] = bytes(self.tsi)
        data[0x9F34] = self.cvm.results
        if self.arc:
            data[0x8A] = self.arc
        return data

    def dol_source(self) -> dict[int, bytes]:
        source = {0x84: self.selected.aid, 0x4F: self.selected.aid}
        source.update(self.card)
        if self.txn is not None:
            source.update(self.terminal_objects())
        return source

    def store(self, items: list[Tlv], *, where: str) -> None:
        """Keep primitive objects; a repeated one is an error (Book 3 §10.2)."""
        card = self.card
        for item in items:
            tag = item.tag
            if is_constructed(tag):
                self.store(item.children, where=where)
                continue
            if tag in card and tag != 0x9F36:
                if self.tolerate_identical_duplicates and card[tag] == item.value:
                    continue
                raise CardDataError(
                    f"the card sent data object {tag:X} twice ({where})", tag=tag
                )
            card[tag] = item.value

    def today(self) -> date:
        assert self.txn is not None
        return self.txn.when.date()

    def pan(self) -> str:
        return pan_from_card(self.card) or ""
