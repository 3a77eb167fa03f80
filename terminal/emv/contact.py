"""The contact flow: one EMV contact transaction after selection (EMV 4.4 Book 3 §10).

Steps in order, one method each on :class:`ContactFlow`: initiate application processing
(§10.1: GPO with the PDOL, formats 1 and 2), read application data (§10.2: READ RECORD per
AFL, the static data for ODA), offline data authentication (§10.3, Book 2 §5–6, checks in
:mod:`.oda`), processing restrictions, CVM and terminal risk management (§10.4–§10.7, in
:mod:`.risk` and :mod:`.cvm`), card action analysis (§10.8: GENERATE AC 1, CDA), online
processing and completion (§10.9–§10.11: issuer authentication, scripts from
:mod:`.online`, GENERATE AC 2).

Initiate and read are here; the steps after them live in their own modules on the shared
state of :mod:`.flow_state`: ODA in :mod:`.oda_steps`, GENERATE AC to completion in
:mod:`.cryptogram_steps`; the checks on the card's answers in :mod:`.card_responses` and
the terminal's own DOL data in :mod:`.terminal_data` (re-exported here).

Failures the books answer with "terminate the transaction" raise a :mod:`.errors` leaf;
ODA failures never raise: they set TVR bits and action analysis decides.
"""

from __future__ import annotations

import logging

from terminal.emv import apdu
from terminal.emv.card_responses import checked_aip, parse_afl, response_template
from terminal.emv.cryptogram_steps import CryptogramSteps
from terminal.emv.cvm import process_cvm
from terminal.emv.dol import build_dol
from terminal.emv.errors import (
    CardDataError,
    CardError,
    CommandTooLongError,
    DolError,
    TlvError,
    TransactionNotAllowedError,
)
from terminal.emv.oda_steps import OdaSteps
from terminal.emv.offline_pin import OfflinePinStep
from terminal.emv.online import ARC_OFFLINE_APPROVED, ARC_OFFLINE_DECLINED
from terminal.emv.pan import expiry_from_card, mask_pan
from terminal.emv.reasons import describe_outcome
from terminal.emv.result import TransactionResult
from terminal.emv.risk import (
    Cryptogram,
    action_analysis,
    processing_restrictions,
    terminal_risk_management,
)
from terminal.emv.terminal_data import terminal_data
from terminal.emv.tlv import Tlv, decode
from terminal.emv.tvr import TsiBit, TvrBit

__all__ = [
    "ContactFlow",
    "GpoRefusedError",
    "checked_aip",
    "parse_afl",
    "response_template",
    "terminal_data",
]

log = logging.getLogger(__name__)


def _proprietary_record(data: bytes) -> list[Tlv] | None:
    """A record of SFI 11–30 as data objects if it is one 70 template, else ``None``."""
    try:
        items = decode(data)
    except TlvError:
        return None
    if len(items) != 1 or items[0].tag != 0x70:
        return None
    return items



class GpoRefusedError(TransactionNotAllowedError):
    """GPO answered 6985: this application refuses; selection goes on without it."""



class ContactFlow(OdaSteps, CryptogramSteps):
    """One contact transaction; one method per Book 3 §10 step.

    :class:`~terminal.emv.kernel.EmvKernel` builds one per transaction after selection;
    tests and tools may build one the same way and call a single step (for example
    :meth:`initiate_and_read`) to inspect ``card``, ``static_data``, ``tvr`` and ``tsi``.
    The state is :class:`~terminal.emv.flow_state.FlowState`; ODA is in
    :mod:`.oda_steps`, GENERATE AC to completion in :mod:`.cryptogram_steps`.
    """

    # -- §10.1 initiate application processing ------------------------------------------

    def gpo_command(self) -> bytes:
        """GET PROCESSING OPTIONS with the PDOL data (Book 3 §10.1, §5.4); every flow's.

        A malformed PDOL is a :class:`CardDataError`; one asking for more than the command
        carries (Book 3 Annex B, Book 1 §9.4: the ``83`` template in one short command, so
        252 bytes) a :class:`CommandTooLongError` — both naming 9F38.
        """
        pdol = self.selected.pdol
        if pdol:
            try:
                self.pdol_data = build_dol(pdol, self.dol_source())
            except DolError as exc:
                raise CardDataError(f"the card's PDOL is malformed: {exc.message}",
                                    tag=0x9F38) from exc
        try:
            return apdu.get_processing_options(self.pdol_data)
        except CommandTooLongError as exc:
            raise CommandTooLongError(
                f"the card's PDOL asks for {len(self.pdol_data)} bytes of terminal data; "
                "GET PROCESSING OPTIONS carries at most 252", tag=0x9F38,
            ) from exc

    async def initiate_and_read(self) -> None:
        """Book 3 §10.1 (GET PROCESSING OPTIONS) then §10.2 (READ RECORD per the AFL)."""
        response = await self.channel.transmit(self.gpo_command())
        if response.sw == 0x6985:
            raise GpoRefusedError(
                "the card refuses this transaction (GPO: conditions of use not satisfied)",
                sw=response.sw,
            )
        if not response.ok:
            raise CardError("the card refused GET PROCESSING OPTIONS", sw=response.sw,
                            command="GPO")
        items = response_template(response.data, "GET PROCESSING OPTIONS")
        if items[0].tag == 0x80:
            body = items[0].value
            if len(body) < 2 or (len(body) - 2) % 4:
                raise CardDataError("format 1 GPO answer has a wrong length", tag=0x80)
            self.card[0x82] = body[:2]
            self.card[0x94] = body[2:]
        else:
            self.store(items[0].children, where="GPO")
        if 0x82 not in self.card or 0x94 not in self.card:
            raise CardDataError("the GPO answer lacks the AIP or the AFL", tag=0x82)
        self.aip = checked_aip(self.card[0x82])
        await self.read_records()

    # -- §10.2 read application data -----------------------------------------------------

    async def read_records(self, mandatory: tuple[int, ...] = (0x5F24, 0x5A, 0x8C, 0x8D)) -> None:
        static = bytearray()
        for sfi, first, last, oda_count in parse_afl(self.card[0x94]):
            for number in range(first, last + 1):
                response = await self.channel.transmit(apdu.read_record(sfi, number))
                if not response.ok:
                    raise CardError(f"READ RECORD SFI {sfi} record {number} failed",
                                    sw=response.sw, command="READ RECORD")
                for_oda = number - first < oda_count
                if sfi > 10:
                    # Book 3 §10.2: SFI 11–30 are the issuer's own files, outside EMV's
                    # format rules. Book 3 §10.3: listed for ODA, the record counts whole
                    # (tag and length included) and must be a 70 template, or ODA fails.
                    items = _proprietary_record(response.data)
                    if for_oda:
                        if items is None:
                            self.static_data_ok = False
                        static += response.data
                    if items is not None:
                        self.store(items, where=f"SFI {sfi} record {number}")
                    continue
                try:
                    items = decode(response.data)
                except TlvError as exc:
                    raise CardDataError(
                        f"record {number} of SFI {sfi} is malformed: {exc.message}",
                        offset=exc.offset,
                    ) from exc
                if len(items) != 1 or items[0].tag != 0x70:
                    raise CardDataError(f"record {number} of SFI {sfi} is not a 70 template")
                if for_oda:
                    # Book 3 §10.3: SFI 1–10 records count without their 70 tag and length.
                    static += items[0].value
                self.store(items, where=f"SFI {sfi} record {number}")
        for tag in mandatory:
            if tag not in self.card:
                raise CardDataError(f"mandatory data object {tag:X} is missing", tag=tag)
        tag_list = self.card.get(0x9F4A)
        if tag_list is not None:
            if tag_list == b"\x82":
                static += self.aip
            else:
                self.static_data_ok = False
        self.static_data = bytes(static)

    # -- the whole flow ------------------------------------------------------------------

    async def run(self) -> TransactionResult:
        assert self.txn is not None
        await self.initiate_and_read()
        await self.offline_data_authentication()
        processing_restrictions(self.card, self.aid_config, self.txn, self.config, self.tvr)
        offline_pin = None
        if self.offline_pin is not None:
            offline_pin = OfflinePinStep(self.channel, self.offline_pin, self.pin_encipherment_key,
                                         self.txn.amount, self.txn.currency_numeric)
        self.cvm = await process_cvm(self.card, self.aip, self.txn, self.config, self.tvr,
                                     self.tsi, self.pan(), self.pin_entry, offline_pin)
        if self.aip[0] & 0x08:
            await terminal_risk_management(self.channel, self.card, self.aid_config, self.txn,
                                           self.config, self.pan(), self.tvr, self.tsi)
        online_capable = self.config.online_capable and not self.config.offline_only
        wanted = action_analysis(self.card, self.aid_config, self.tvr,
                                 online_capable=online_capable)
        self.tsi.set(TsiBit.CARD_RISK_MANAGEMENT_PERFORMED)
        self.first = await self.generate_ac(wanted, 0x8C)
        if self.oda == "cda" and TvrBit.CDA_FAILED in self.tvr and self.first is not (
            Cryptogram.AAC
        ):
            # Book 2 §6.6.2: a failed CDA signature voids the cryptogram: decline.
            self.arc = ARC_OFFLINE_DECLINED
            if self.first is Cryptogram.ARQC:
                self.final = await self.generate_ac(Cryptogram.AAC, 0x8D)
            else:
                self.final = Cryptogram.AAC
            self.decision = "declined_offline"
        elif self.first is Cryptogram.TC:
            self.final, self.decision, self.arc = Cryptogram.TC, "approved_offline", (
                ARC_OFFLINE_APPROVED)
        elif self.first is Cryptogram.AAC:
            self.final, self.decision, self.arc = Cryptogram.AAC, "declined_offline", (
                ARC_OFFLINE_DECLINED)
        else:
            await self.online()
        return self.result()

    def outcome_reason(self) -> str:
        """Why the transaction ended so, in words (see :mod:`.reasons`)."""
        return describe_outcome(self.decision, self.tvr,
                                arc=self.arc.decode("ascii", errors="replace"))

    def result(self) -> TransactionResult:
        cfg = self.aid_config
        label = (self.card.get(0x50) or self.selected.data.get(0x50) or b"").decode(
            "ascii", errors="replace").strip() or self.selected.candidate.display_name
        emv = self.dol_source() if self.txn is not None else dict(self.card)
        if self.scripts.issuer_script_results:
            emv[0x9F5B] = self.scripts.issuer_script_results
        return TransactionResult(
            aid=self.selected.aid.hex().upper(),
            label=label,
            pan_masked=mask_pan(self.pan()),
            expiry=expiry_from_card(self.card),
            oda=self.oda,
            oda_result=self.oda_result if self.oda != "none" else "not_performed",
            cvm=self.cvm.method,
            cvm_results=self.cvm.cvm_results_hex,
            tvr=self.tvr.hex(),
            tsi=self.tsi.hex(),
            first_cryptogram=self.first.name if self.first else "",
            cryptogram=self.final.name if self.final else "",
            decision=self.decision,
            reason=self.outcome_reason(),
            arc=self.arc.decode("ascii", errors="replace"),
            atc=self.card.get(0x9F36, b"").hex().upper(),
            application_cryptogram=self.card.get(0x9F26, b"").hex().upper(),
            network=cfg.network,
            script_results=self.scripts.lines,
            issuer_script_results=self.scripts.issuer_script_results.hex().upper(),
            online_pin=self.cvm.online_pin,
            emv_data=emv,
        )
