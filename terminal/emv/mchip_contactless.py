"""Mastercard contactless, M/Chip (EMV) mode: the essentials of EMV Contactless Book C-2.

Rules implemented (and only these; mag-stripe mode, Relay Resistance, torn transactions,
data storage and the balance reading of Book C-2 are not):

1. Selection as for every contactless card (PPSE, Book B §3.3); an application of RID
   ``A000000004`` runs this kernel (Kernel 2, by default for its RID).
2. Pre-processing: an amount above the contactless transaction limit ends with
   ``TransactionNotAllowedError`` (use another interface). The CVM-required limit picks the
   terminal's CVM capability (C-2 "CVM Capability – CVM Required" / "– No CVM Required"):
   above the limit the profile's 9F33 byte 2, at or below it "no CVM required" only.
   That 9F33 is what the card and the CVM List see; the contactless floor limit replaces
   the contact one in terminal risk management.
3. The PDOL gets Terminal Risk Management Data (9F1D), the M/Chip counterpart of Visa's
   TTQ (C-2 Annex A): byte 1 the contactless CVM capability — b7 enciphered PIN online,
   b6 signature, b4 no CVM required, b3 CDCVM; byte 2 b8 "CVM limit exceeded"; byte 3
   b8 "mag-stripe mode not supported" (always: EMV mode only).
4. GET PROCESSING OPTIONS answers AIP + AFL; AIP byte 2 b8 "EMV mode supported" is
   required (a mag-stripe-only card is asked to be inserted). Records are read as on
   contact; ODA is CDA (or none), checked in GENERATE AC.
5. CVM: when the AIP says on-device cardholder verification (byte 1 b2) the kernel trusts
   the device: above the CVM-required limit CVM Results ``01 00 02`` (CDCVM, "confirmation
   code verified"), else ``3F 00 02``. Otherwise the card's CVM List runs as on contact
   with the capability of rule 2 (so below the limit "no CVM", above it online PIN or
   signature as the card asks).
6. Terminal risk management (when the AIP asks) and terminal action analysis as on
   contact, then one GENERATE AC with CDA requested for TC/ARQC. A CDA failure voids the
   cryptogram (decline). TC → approved offline, AAC → declined, ARQC → online
   authorisation with that single cryptogram: the card has left the field, so there is no
   second GENERATE AC and unable-to-go-online declines.
"""

from __future__ import annotations

from terminal.emv.apdu import CardChannel
from terminal.emv.config import KernelConfig, TransactionData, replaced
from terminal.emv.contact import ContactFlow
from terminal.emv.cvm import PinCallback, process_cvm
from terminal.emv.errors import TransactionNotAllowedError
from terminal.emv.online import ARC_OFFLINE_APPROVED, ARC_OFFLINE_DECLINED, OnlineAuthoriser
from terminal.emv.result import TransactionResult
from terminal.emv.risk import (
    Cryptogram,
    action_analysis,
    processing_restrictions,
    terminal_risk_management,
)
from terminal.emv.selection import SelectedApplication
from terminal.emv.tvr import TsiBit, TvrBit

__all__ = ["MASTERCARD_RID", "MChipContactlessFlow", "terminal_risk_management_data"]

MASTERCARD_RID = bytes.fromhex("A000000004")
#: 9F33 byte 2 b4: no CVM required (Book 4 Annex A2) — the "No CVM Required" capability.
_NO_CVM_ONLY = 0x08


def terminal_risk_management_data(capabilities: bytes, cvm_limit_exceeded: bool) -> bytes:
    """9F1D for the card (Book C-2 Annex A) from the 9F33 this transaction uses."""
    cvm = capabilities[1]
    byte1 = 0x00
    if cvm & 0x40:
        byte1 |= 0x40  # enciphered PIN verified online
    if cvm & 0x20:
        byte1 |= 0x20  # signature
    if cvm & 0x08:
        byte1 |= 0x08  # no CVM required
    byte1 |= 0x04  # CDCVM: this reader accepts a device's own verification
    byte2 = 0x80 if cvm_limit_exceeded else 0x00
    byte3 = 0x80  # mag-stripe mode not supported: EMV mode only
    return bytes([byte1, byte2, byte3, 0, 0, 0, 0, 0])


class MChipContactlessFlow(ContactFlow):
    """One Mastercard contactless transaction in EMV mode (see the module docstring)."""

    def __init__(self, config: KernelConfig, channel: CardChannel,
                 selected: SelectedApplication, txn: TransactionData | None, *,
                 pin_entry: PinCallback | None = None,
                 authoriser: OnlineAuthoriser | None = None) -> None:
        limits = selected.candidate.config.contactless_limits
        self.cvm_required = txn is not None and txn.amount > limits.cvm_required_limit
        capabilities = bytearray(config.capabilities)
        if not self.cvm_required:
            capabilities[1] = _NO_CVM_ONLY
        super().__init__(replaced(config, capabilities=bytes(capabilities)), channel, selected,
                         txn, pin_entry=pin_entry, authoriser=authoriser)
        self.aid_config = replaced(self.aid_config, floor_limit=limits.floor_limit)

    def terminal_objects(self) -> dict[int, bytes]:
        data = super().terminal_objects()
        data[0x9F1D] = terminal_risk_management_data(self.config.capabilities,
                                                     self.cvm_required)
        return data

    async def read_only(self) -> TransactionResult:
        await self.initiate_and_read()
        result = self.result()
        result.interface = "contactless"
        return result

    async def run(self) -> TransactionResult:
        txn = self.txn
        assert txn is not None
        limit = self.aid_config.contactless_limits.transaction_limit
        if limit is not None and txn.amount > limit:
            raise TransactionNotAllowedError(
                "the amount is above the contactless limit; insert the card")
        await self.initiate_and_read()
        if len(self.aip) < 2 or not self.aip[1] & 0x80:
            raise TransactionNotAllowedError(
                "the card offers only mag-stripe mode contactless; insert the card")
        await self.offline_data_authentication()
        processing_restrictions(self.card, self.aid_config, txn, self.config, self.tvr)
        await self._cvm(txn)
        if self.aip[0] & 0x08:
            await terminal_risk_management(self.channel, self.card, self.aid_config, txn,
                                           self.config, self.pan(), self.tvr, self.tsi)
        can_online = self.config.online_capable and not self.config.offline_only
        wanted = action_analysis(self.card, self.aid_config, self.tvr, online_capable=can_online)
        self.tsi.set(TsiBit.CARD_RISK_MANAGEMENT_PERFORMED)
        self.first = await self.generate_ac(wanted, 0x8C)
        if self.oda == "cda" and TvrBit.CDA_FAILED in self.tvr and self.first is not (
            Cryptogram.AAC
        ):
            # Book 2 §6.6.2: a failed CDA signature voids the cryptogram: decline.
            self.final, self.decision, self.arc = (Cryptogram.AAC, "declined_offline",
                                                   ARC_OFFLINE_DECLINED)
        elif self.first is Cryptogram.TC:
            self.final, self.decision, self.arc = (Cryptogram.TC, "approved_offline",
                                                   ARC_OFFLINE_APPROVED)
        elif self.first is Cryptogram.AAC:
            self.final, self.decision, self.arc = (Cryptogram.AAC, "declined_offline",
                                                   ARC_OFFLINE_DECLINED)
        else:
            await self._online_single_tap(txn)
        result = self.result()
        result.interface = "contactless"
        return result

    async def _online_single_tap(self, txn: TransactionData) -> None:
        """ARQC: the host decides; the card is gone, so no second GENERATE AC (Book C-2)."""
        self.final = Cryptogram.ARQC
        answer = None
        if txn.online_available and self.authoriser is not None:
            answer = await self.authoriser.authorise(self.online_request())
        if answer is None:
            self.decision = "declined_unable_online"
            return
        self.arc = answer.arc
        self.decision = "approved_online" if answer.approved else "declined_online"

    async def _cvm(self, txn: TransactionData) -> None:
        if self.aip[0] & 0x02:
            # On-device cardholder verification: the phone verified its owner (C-2).
            self.tsi.set(TsiBit.CARDHOLDER_VERIFICATION_PERFORMED)
            if self.cvm_required:
                self.cvm.method, self.cvm.results = "cdcvm", b"\x01\x00\x02"
            else:
                self.cvm.method, self.cvm.results = "no_cvm", b"\x3f\x00\x02"
            return
        self.cvm = await process_cvm(self.card, self.aip, txn, self.config, self.tvr,
                                     self.tsi, self.pan(), self.pin_entry)
