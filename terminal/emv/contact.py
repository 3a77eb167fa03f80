"""The contact flow: one EMV contact transaction after selection (EMV 4.4 Book 3 §10).

Steps in order, one method each on :class:`ContactFlow`: initiate application processing
(§10.1: GPO with the PDOL, formats 1 and 2), read application data (§10.2: READ RECORD per
AFL, the static data for ODA), offline data authentication (§10.3, Book 2 §5–6, checks in
:mod:`.oda`), processing restrictions, CVM and terminal risk management (§10.4–§10.7, in
:mod:`.risk` and :mod:`.cvm`), card action analysis (§10.8: GENERATE AC 1, CDA), online
processing and completion (§10.9–§10.11: issuer authentication, scripts from
:mod:`.online`, GENERATE AC 2).

Failures the books answer with "terminate the transaction" raise a :mod:`.errors` leaf;
ODA failures never raise: they set TVR bits and action analysis decides.
"""

from __future__ import annotations

import logging
from datetime import date

from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.config import AidConfig, KernelConfig, TransactionData
from terminal.emv.cvm import CvmResult, PinCallback, process_cvm
from terminal.emv.dol import build_dol, parse_dol
from terminal.emv.errors import (
    CardDataError,
    CardError,
    CommandTooLongError,
    DolError,
    IccDataMissingError,
    OdaError,
    TlvError,
    TransactionNotAllowedError,
)
from terminal.emv.oda import (
    RsaKey,
    recover_icc_key,
    recover_issuer_key,
    sha1,
    verify_cda,
    verify_dynamic_signature,
    verify_sda,
)
from terminal.emv.offline_pin import OfflinePinCallback, OfflinePinStep
from terminal.emv.online import (
    ARC_OFFLINE_APPROVED,
    ARC_OFFLINE_DECLINED,
    ARC_UNABLE_ONLINE_APPROVED,
    ARC_UNABLE_ONLINE_DECLINED,
    ICC_DATA_TAGS,
    OnlineAuthoriser,
    OnlineRequest,
    OnlineResponse,
    ScriptResults,
    run_issuer_scripts,
)
from terminal.emv.pan import expiry_from_card, mask_pan, pan_from_card
from terminal.emv.reasons import describe_outcome
from terminal.emv.result import TransactionResult
from terminal.emv.risk import (
    Cryptogram,
    action_analysis,
    card_cryptogram,
    default_action,
    processing_restrictions,
    terminal_risk_management,
)
from terminal.emv.selection import SelectedApplication
from terminal.emv.tlv import Tlv, decode, find, flatten
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

__all__ = [
    "ContactFlow",
    "GpoRefusedError",
    "checked_aip",
    "parse_afl",
    "response_template",
    "terminal_data",
]

log = logging.getLogger(__name__)


def parse_afl(afl: bytes) -> list[tuple[int, int, int, int]]:
    """AFL entries ``(sfi, first, last, oda_count)`` (Book 3 §10.2); malformed → CardDataError."""
    if not afl or len(afl) % 4:
        raise CardDataError("the AFL is empty or not a multiple of 4 bytes", tag=0x94)
    entries = []
    for i in range(0, len(afl), 4):
        sfi, first, last, oda = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        if not 1 <= sfi <= 30 or first == 0 or last < first or oda > last - first + 1:
            raise CardDataError(f"AFL entry {i // 4 + 1} is invalid", tag=0x94)
        entries.append((sfi, first, last, oda))
    return entries


def _bcd(value: int, nbytes: int) -> bytes:
    return bytes.fromhex(f"{value:0{2 * nbytes}d}")


def terminal_data(
    config: KernelConfig,
    aid: AidConfig,
    txn: TransactionData,
    unpredictable_number: bytes,
    tvr: Tvr,
    tsi: Tsi,
) -> dict[int, bytes]:
    """Terminal-sourced data objects for DOLs (Book 3 Annex A1, Book 4 Annex A)."""
    when = txn.when
    return {
        0x9F02: _bcd(txn.amount, 6),
        0x9F03: _bcd(txn.amount_other, 6),
        0x81: txn.amount.to_bytes(4, "big"),
        0x9F04: txn.amount_other.to_bytes(4, "big"),
        0x5F2A: _bcd(txn.currency_numeric, 2),
        0x5F36: _bcd(txn.currency_exponent, 1),
        0x9A: bytes.fromhex(when.strftime("%y%m%d")),
        0x9F21: bytes.fromhex(when.strftime("%H%M%S")),
        0x9C: _bcd(txn.transaction_type, 1),
        0x9F37: unpredictable_number,
        0x95: bytes(tvr),
        0x9B: bytes(tsi),
        0x9F1A: _bcd(config.country_code, 2),
        0x9F35: _bcd(config.terminal_type, 1),
        0x9F33: config.capabilities,
        0x9F40: config.additional_capabilities,
        0x9F1E: config.ifd_serial.encode("ascii")[:8],
        0x9F1C: config.terminal_id.encode("ascii")[:8],
        0x9F16: config.merchant_id.encode("ascii")[:15],
        0x9F15: bytes.fromhex(config.mcc) if config.mcc.isdigit() else b"\x00\x00",
        0x9F4E: config.merchant_name_location.encode("ascii", errors="replace"),
        0x9F09: aid.application_version,
        0x9F06: aid.aid,
        0x9F41: _bcd(txn.sequence_counter % 10**8, 4),
        0x9F1B: aid.floor_limit.to_bytes(4, "big"),
        0x9F01: bytes.fromhex(config.acquirer_id.zfill(12)) if config.acquirer_id.isdigit()
        else bytes(6),
    }


def checked_aip(aip: bytes) -> bytes:
    """The Application Interchange Profile, which is 2 bytes (Book 3 Annex A, C1)."""
    if len(aip) != 2:
        raise CardDataError(f"the AIP (82) is {len(aip)} bytes, not 2", tag=0x82)
    return aip


def _proprietary_record(data: bytes) -> list[Tlv] | None:
    """A record of SFI 11–30 as data objects if it is one 70 template, else ``None``."""
    try:
        items = decode(data)
    except TlvError:
        return None
    if len(items) != 1 or items[0].tag != 0x70:
        return None
    return items


def response_template(data: bytes, command: str) -> list[Tlv]:
    """The decoded answer to ``command``; it must start with an 80 or 77 template (Book 3 §6.5)."""
    try:
        items = decode(data)
    except TlvError as exc:
        raise CardDataError(f"the card's answer to {command} is malformed: {exc.message}",
                            offset=exc.offset) from exc
    if not items or items[0].tag not in (0x80, 0x77):
        raise CardDataError(f"the card's answer to {command} is not a response template")
    return items


class GpoRefusedError(TransactionNotAllowedError):
    """GPO answered 6985: this application refuses; selection goes on without it."""


class ContactFlow:
    """State of one contact transaction; one method per Book 3 §10 step.

    :class:`~terminal.emv.kernel.EmvKernel` builds one per transaction after selection;
    tests and tools may build one the same way and call a single step (for example
    :meth:`initiate_and_read`) to inspect ``card``, ``static_data``, ``tvr`` and ``tsi``.
    """

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
        for item in items:
            if item.constructed:
                self.store(item.children, where=where)
                continue
            if item.tag in self.card and item.tag not in (0x9F36,):
                if self.tolerate_identical_duplicates and self.card[item.tag] == item.value:
                    continue
                raise CardDataError(
                    f"the card sent data object {item.tag:X} twice ({where})", tag=item.tag
                )
            self.card[item.tag] = item.value

    # -- §10.1 initiate application processing ------------------------------------------

    async def initiate_and_read(self) -> None:
        """Book 3 §10.1 (GET PROCESSING OPTIONS) then §10.2 (READ RECORD per the AFL)."""
        pdol = self.selected.pdol
        if pdol:
            try:
                self.pdol_data = build_dol(pdol, self.dol_source())
            except ValueError as exc:
                raise CardDataError(f"the card's PDOL is malformed: {exc}", tag=0x9F38) from exc
        try:
            command = apdu.get_processing_options(self.pdol_data)
        except CommandTooLongError as exc:
            # Book 3 Annex B, Book 1 §9.4: the 83 template must fit one short command.
            raise CommandTooLongError(
                f"the card's PDOL asks for {len(self.pdol_data)} bytes of terminal data; "
                "GET PROCESSING OPTIONS carries at most 252", tag=0x9F38,
            ) from exc
        response = await self.channel.transmit(command)
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

    # -- §10.3 offline data authentication -----------------------------------------------

    def choose_oda(self) -> str:
        aip, cfg = self.aip[0], self.config
        if aip & 0x01 and cfg.supports(3, 4):
            return "cda"
        if aip & 0x20 and cfg.supports(3, 7):
            return "dda"
        if aip & 0x40 and cfg.supports(3, 8):
            return "sda"
        return "none"

    def _oda_failed(self, missing: bool = False) -> None:
        bit = {"sda": TvrBit.SDA_FAILED, "dda": TvrBit.DDA_FAILED, "cda": TvrBit.CDA_FAILED}
        self.tvr.set(bit[self.oda])
        if missing:
            self.tvr.set(TvrBit.ICC_DATA_MISSING)
        self.oda_result = "failed"

    def issuer_public_key(self) -> RsaKey:
        card = self.card
        for tag in (0x8F, 0x90, 0x9F32):
            if tag not in card:
                raise IccDataMissingError(f"{tag:X} missing")
        rid = self.selected.aid[:5]
        if len(card[0x8F]) != 1:
            raise OdaError(f"the CA public key index (8F) is {len(card[0x8F])} bytes, not 1",
                           step="capk_index")
        capk = self.config.capk(rid, card[0x8F][0])
        if capk is None:
            raise OdaError(f"no CA public key {rid.hex().upper()}/{card[0x8F].hex().upper()}",
                           step="capk_unknown")
        if not self.static_data_ok:
            raise OdaError("records for ODA are not 70 templates / 9F4A invalid",
                           step="static_data")
        return recover_issuer_key(capk, card[0x90], card.get(0x92), card[0x9F32],
                                  self.pan(), self.today())

    def icc_public_key(self, issuer: RsaKey) -> RsaKey:
        card = self.card
        for tag in (0x9F46, 0x9F47):
            if tag not in card:
                raise IccDataMissingError(f"{tag:X} missing")
        return recover_icc_key(issuer, card[0x9F46], card.get(0x9F48), card[0x9F47],
                               self.static_data, self.pan(), self.today())

    def pin_encipherment_key(self) -> RsaKey:
        """The key the PIN pad enciphers an offline PIN under (Book 2 §7.1).

        The ICC PIN Encipherment Public Key (9F2D certificate, no static data in its hash)
        when the card has one, else the ICC public key — the one ODA recovered, or
        recovered now (SDA cards or failed ODA). ``OdaError`` when neither is usable.
        """
        card = self.card
        if 0x9F2D in card:
            if 0x9F2E not in card:
                raise IccDataMissingError("9F2E missing")
            return recover_icc_key(self.issuer_public_key(), card[0x9F2D], card.get(0x9F2F),
                                   card[0x9F2E], b"", self.pan(), self.today())
        if self.icc_key is not None:
            return self.icc_key
        return self.icc_public_key(self.issuer_public_key())

    def today(self) -> date:
        assert self.txn is not None
        return self.txn.when.date()

    def pan(self) -> str:
        return pan_from_card(self.card) or ""

    async def offline_data_authentication(self) -> None:
        self.oda = self.choose_oda()
        if self.oda == "none":
            self.tvr.set(TvrBit.ODA_NOT_PERFORMED)
            return
        self.tsi.set(TsiBit.ODA_PERFORMED)
        if self.oda == "sda":
            self.tvr.set(TvrBit.SDA_SELECTED)
        try:
            issuer = self.issuer_public_key()
            if self.oda == "sda":
                if 0x93 not in self.card:
                    raise IccDataMissingError("93 missing")
                self.card.setdefault(
                    0x9F45, verify_sda(issuer, self.card[0x93], self.static_data)
                )
                self.oda_result = "ok"
                return
            self.icc_key = self.icc_public_key(issuer)
            if self.oda == "dda":
                await self._internal_authenticate(self.icc_key)
                self.oda_result = "ok"
            # CDA: the signature comes with GENERATE AC; result decided there.
        except IccDataMissingError as exc:
            log.info("ODA %s: ICC data missing (%s)", self.oda, exc)
            self._oda_failed(missing=True)
        except OdaError as exc:
            log.info("ODA %s failed at %s", self.oda, exc.step)
            self._oda_failed()

    async def _internal_authenticate(self, icc: RsaKey) -> None:
        ddol = self.card.get(0x9F49) or self.aid_config.default_ddol
        try:
            entries = parse_dol(ddol)
            if not any(tag == 0x9F37 for tag, _ in entries):
                raise IccDataMissingError("DDOL without unpredictable number")
            ddol_data = build_dol(entries, self.dol_source())
            command = apdu.internal_authenticate(ddol_data)
        except (DolError, CommandTooLongError) as exc:
            # The card's DDOL is unusable: DDA cannot be performed, so it fails (TVR).
            raise OdaError(f"the DDOL is unusable: {exc}", step="ddol") from exc
        response = await self.channel.transmit(command)
        if not response.ok:
            raise OdaError(f"INTERNAL AUTHENTICATE refused ({response.sw:04X})", step="dda_sw")
        try:
            items = response_template(response.data, "INTERNAL AUTHENTICATE")
        except CardDataError as exc:
            raise OdaError(exc.message, step="dda_format") from exc
        if items[0].tag == 0x80:
            sdad = items[0].value
        else:
            found = find(items[0].children, 0x9F4B)
            if found is None:
                raise IccDataMissingError("9F4B missing")
            sdad = found.value
        dynamic = verify_dynamic_signature(icc, sdad, ddol_data)
        self.card[0x9F4C] = dynamic.icc_dynamic_number

    # -- §10.8 card action analysis ------------------------------------------------------

    async def generate_ac(self, kind: Cryptogram, cdol_tag: int) -> Cryptogram:
        cdol = self.card[cdol_tag]
        source = self.dol_source()
        if any(tag == 0x98 for tag, _ in parse_dol(cdol)):
            source[0x98] = self._tc_hash(source)
        try:
            cdol_data = build_dol(cdol, source)
        except ValueError as exc:
            raise CardDataError(f"CDOL {cdol_tag:X} is malformed: {exc}", tag=cdol_tag) from exc
        cda = (
            self.oda == "cda"
            and kind is not Cryptogram.AAC
            and self.icc_key is not None
            and TvrBit.CDA_FAILED not in self.tvr
        )
        p1 = kind.value | (apdu.CDA_REQUESTED if cda else 0)
        command = "GENERATE AC 1" if cdol_tag == 0x8C else "GENERATE AC 2"
        try:
            built = apdu.generate_ac(p1, cdol_data)
        except CommandTooLongError as exc:
            raise CommandTooLongError(
                f"CDOL {cdol_tag:X} asks for {len(cdol_data)} bytes of data; {command} "
                "carries at most 255", tag=cdol_tag,
            ) from exc
        response = await self.channel.transmit(built)
        if not response.ok:
            raise CardError(f"the card refused {command}", sw=response.sw, command=command)
        items = response_template(response.data, command)
        data: dict[int, bytes] = {}
        if items[0].tag == 0x80:
            body = items[0].value
            if len(body) < 11:
                raise CardDataError(f"format 1 answer to {command} is too short", tag=0x80)
            data = {0x9F27: body[:1], 0x9F36: body[1:3], 0x9F26: body[3:11], 0x9F10: body[11:]}
        else:
            data = flatten(items[0].children)
        for tag in (0x9F27, 0x9F36):
            if tag not in data:
                raise CardDataError(f"the answer to {command} lacks {tag:X}", tag=tag)
        got = card_cryptogram(data[0x9F27], command)
        order = {Cryptogram.AAC: 0, Cryptogram.ARQC: 1, Cryptogram.TC: 2}
        if order[got] > order[kind]:
            raise CardDataError(f"{command}: the card returned {got.name} for {kind.name}",
                                tag=0x9F27)
        if cdol_tag == 0x8C:
            self.cdol1_data = cdol_data
        if cda and got is not Cryptogram.AAC:
            self._check_cda(items[0], data, cdol_data, cdol_tag)
        elif 0x9F26 not in data:
            raise CardDataError(f"the answer to {command} lacks the cryptogram", tag=0x9F26)
        self.gen_ac = data
        for tag, value in data.items():
            self.card[tag] = value
        return got

    def _check_cda(self, template: Tlv, data: dict[int, bytes], cdol_data: bytes,
                   cdol_tag: int) -> None:
        """Book 2 §6.6.2; a failure sets CDA failed and the card's AC is not trusted."""
        assert self.icc_key is not None
        try:
            if template.tag != 0x77 or 0x9F4B not in data:
                raise OdaError("the CDA answer is not format 2 with 9F4B", step="cda_format")
            others = b"".join(c.encode() for c in template.children if c.tag != 0x9F4B)
            covered = self.pdol_data + (
                cdol_data if cdol_tag == 0x8C else self.cdol1_data + cdol_data
            ) + others
            ac = verify_cda(self.icc_key, data[0x9F4B], self.un, data[0x9F27], covered)
            data[0x9F26] = ac
            self.oda_result = "ok"
        except OdaError as exc:
            log.info("CDA failed at %s", exc.step)
            self.tvr.set(TvrBit.CDA_FAILED)
            self.oda_result = "failed"

    def _tc_hash(self, source: dict[int, bytes]) -> bytes:
        tdol = self.card.get(0x97)
        if tdol is None:
            tdol = self.aid_config.default_tdol
            self.tvr.set(TvrBit.DEFAULT_TDOL_USED)
            source[0x95] = bytes(self.tvr)
        return sha1(build_dol(tdol, source))

    # -- §10.9–10.11 online, scripts, completion -----------------------------------------

    def online_request(self) -> OnlineRequest:
        icc = {tag: value for tag, value in self.dol_source().items()
               if tag in ICC_DATA_TAGS}
        return OnlineRequest(
            aid=self.selected.aid,
            pan_masked=mask_pan(self.pan()),
            icc_data=icc,
            online_pin=self.cvm.online_pin,
        )

    async def online(self) -> None:
        assert self.txn is not None
        answer: OnlineResponse | None = None
        if self.txn.online_available and self.authoriser is not None:
            answer = await self.authoriser.authorise(self.online_request())
        if answer is None:
            # Book 3 §10.7 / §10.11: unable to go online → TAC/IAC default decide.
            decided = default_action(self.card, self.aid_config, self.tvr)
            self.arc = (ARC_UNABLE_ONLINE_APPROVED if decided is Cryptogram.TC
                        else ARC_UNABLE_ONLINE_DECLINED)
            self.final = self._unless_cda_failed(await self.generate_ac(decided, 0x8D))
            self.decision = ("approved_unable_online" if self.final is Cryptogram.TC
                             else "declined_unable_online")
            return
        self.arc = answer.arc
        await self._issuer_authentication(answer)
        await run_issuer_scripts(self.channel, answer.scripts, 0x71, self.tvr, self.tsi,
                                 self.scripts)
        wanted = Cryptogram.TC if answer.approved else Cryptogram.AAC
        self.final = self._unless_cda_failed(await self.generate_ac(wanted, 0x8D))
        await run_issuer_scripts(self.channel, answer.scripts, 0x72, self.tvr, self.tsi,
                                 self.scripts)
        if answer.approved and self.final is Cryptogram.TC:
            self.decision = "approved_online"
        else:
            self.decision = "declined_online"

    async def _issuer_authentication(self, answer: OnlineResponse) -> None:
        """Book 3 §10.9: the ARPC (91) goes to the card, in GENERATE AC 2 or EXTERNAL AUTH.

        Issuer authentication data the host sent malformed (DE 55 undecodable, or 91 not
        8–16 bytes, Book 3 Annex A) is an issuer authentication *failure*: TVR byte 5 b7,
        and the host's answer stands (an approval is never dropped for it).
        """
        iad = answer.issuer_authentication_data
        malformed = answer.issuer_data_malformed or (
            iad is not None and not 8 <= len(iad) <= 16)
        cdol2_has_91 = any(tag == 0x91 for tag, _ in parse_dol(self.card[0x8D]))
        if malformed:
            log.info("issuer authentication data unusable; issuer authentication failed")
            self.tsi.set(TsiBit.ISSUER_AUTHENTICATION_PERFORMED)
            self.tvr.set(TvrBit.ISSUER_AUTHENTICATION_FAILED)
        elif iad is not None and cdol2_has_91:
            # The card checks the ARPC itself in GENERATE AC 2 (Book 3 §10.9, §6.5.5).
            self.card[0x91] = iad
        elif iad is not None and self.aip[0] & 0x04:
            self.tsi.set(TsiBit.ISSUER_AUTHENTICATION_PERFORMED)
            response = await self.channel.transmit(apdu.external_authenticate(iad))
            if not response.ok:
                self.tvr.set(TvrBit.ISSUER_AUTHENTICATION_FAILED)

    def _unless_cda_failed(self, got: Cryptogram) -> Cryptogram:
        """Book 2 §6.6, Book 3 §10.8: a CDA failure on GENERATE AC 2 voids its TC too."""
        if got is not Cryptogram.AAC and self.oda == "cda" and TvrBit.CDA_FAILED in self.tvr:
            log.info("CDA failed on GENERATE AC 2: the card's TC is void, declined")
            return Cryptogram.AAC
        return got

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
