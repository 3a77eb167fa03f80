"""Contactless path modelled on Visa qVSDC (EMV Contactless Book C-3 / VCPS 2.x).

Rules implemented (and only these):

1. PPSE selection (Book B §3.3): ``2PAY.SYS.DDF01``, candidates from its ``61`` entries
   that match a terminal AID enabled for contactless, by priority; no AID-list fallback
   (a card without PPSE is asked to be inserted: :class:`NoApplicationError`).
2. Pre-processing: amount above the contactless transaction limit → ``TransactionNotAllowedError``
   (use another interface). The Terminal Transaction Qualifiers (9F66) say: qVSDC
   supported (byte 1 b6), EMV contact chip supported (b5), offline-only reader (b4) when
   the terminal cannot go online, online PIN supported (b3) when a PIN entry device is
   given, signature supported (b2); online cryptogram required (byte 2 b8) when the
   amount exceeds the contactless floor limit; CVM required (byte 2 b7) when the amount
   is at or above the CVM-required limit.
3. GPO with the PDOL; the answer (format 2) carries the cryptogram (9F26), its type (9F27,
   or else IAD byte 5 b6–b5 as Visa CVN 10/18 encode it), ATC, IAD, track 2, CTQ (9F6C)
   and possibly the fDDA signature (9F4B). Records listed in the AFL are read.
4. Card decision AAC → declined offline; ARQC → online authorisation with that single
   cryptogram (no second GENERATE AC: unable to go online declines); TC → offline approval
   only after fDDA (below) succeeds and the application is not expired.
5. fDDA version 01: issuer and ICC certificates as for DDA (:mod:`.oda`), then the
   signature over UN (9F37) ‖ amount (9F02) ‖ currency (5F2A) ‖ card authentication
   related data (9F69). On failure: CTQ byte 1 b6 "go online if ODA fails" sends it online
   when the terminal can; b5 "switch interface" asks for the contact chip; otherwise
   decline. fDDA failure sets TVR "DDA failed"; no fDDA sets "ODA not performed".
6. CVM (when the amount is at or above the CVM-required limit): CTQ byte 1 b8 online PIN
   (the PIN entry device gives the enciphered block, the transaction goes online), b7
   signature, byte 2 b8 consumer device CVM performed; below the limit no CVM.
7. Data objects repeated with the *same* value in the GPO answer and the records are
   accepted (cards repeat 5F34/57 there); a different value terminates as on contact.
8. An expired application (5F24) declines a TC unless CTQ byte 1 b4 "go online if
   application expired" and the terminal can go online; the exception file declines.
"""

from __future__ import annotations

from dataclasses import replace

from etika_errors import EtikaError
from terminal.emv.apdu import CardChannel
from terminal.emv.card_responses import fixed_length
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.contact import ContactFlow, checked_aip, response_template
from terminal.emv.cvm import OnlinePinRequest, PinCallback
from terminal.emv.dates import application_date
from terminal.emv.errors import (
    CardDataError,
    CardError,
    IccDataMissingError,
    OdaError,
    TransactionNotAllowedError,
)
from terminal.emv.oda import verify_dynamic_signature
from terminal.emv.online import OnlineAuthoriser, OnlineRequest, OnlineResponse
from terminal.emv.reasons import describe_outcome
from terminal.emv.result import TransactionResult
from terminal.emv.risk import Cryptogram, card_cryptogram
from terminal.emv.selection import SelectedApplication
from terminal.emv.tvr import TsiBit, TvrBit

__all__ = ["QvsdcFlow"]


class QvsdcFlow(ContactFlow):
    """One qVSDC transaction (see the module docstring for the rules)."""

    # qVSDC cards repeat some GPO objects (5F34, 57) in their records; identical values are
    # accepted, a different value still terminates.
    tolerate_identical_duplicates = True

    def __init__(self, config: KernelConfig, channel: CardChannel,
                 selected: SelectedApplication, txn: TransactionData | None, *,
                 pin_entry: PinCallback | None = None,
                 authoriser: OnlineAuthoriser | None = None) -> None:
        super().__init__(config, channel, selected, txn, pin_entry=pin_entry,
                         authoriser=authoriser)
        self.ttq = b"\x00\x00\x00\x00"
        self.pdol_tvr = bytes(5)

    def terminal_objects(self) -> dict[int, bytes]:
        data = super().terminal_objects()
        data[0x9F66] = self.ttq
        return data

    def _build_ttq(self, txn: TransactionData) -> bytes:
        limits = self.aid_config.contactless_limits
        can_online = self._can_go_online(txn)
        b1 = 0x20 | 0x10
        if not can_online:
            b1 |= 0x08
        if self.pin_entry is not None and self.config.supports(2, 7):
            b1 |= 0x04
        if self.config.supports(2, 6):
            b1 |= 0x02
        b2 = 0x00
        if txn.amount > limits.floor_limit or txn.merchant_forced_online:
            b2 |= 0x80
        if txn.amount >= limits.cvm_required_limit:
            b2 |= 0x40
        return bytes([b1, b2, 0x00, 0x00])

    def _can_go_online(self, txn: TransactionData) -> bool:
        return (self.config.online_capable and txn.online_available
                and self.authoriser is not None)

    async def _gpo(self) -> None:
        # The card's qVSDC cryptogram covers the terminal data as sent in the PDOL; the TVR
        # the kernel sets afterwards (ODA not performed, …) is for the terminal's own log.
        self.pdol_tvr = bytes(self.tvr)
        response = await self.channel.transmit(self.gpo_command())
        if response.sw in (0x6984, 0x6985, 0x6986):
            raise TransactionNotAllowedError(
                "the card asks for another interface; insert the card", sw=response.sw
            )
        if not response.ok:
            raise CardError("the card refused GET PROCESSING OPTIONS", sw=response.sw,
                            command="GPO")
        items = response_template(response.data, "GET PROCESSING OPTIONS")
        if items[0].tag != 0x77:
            raise CardDataError("a qVSDC GPO answer must be format 2 (77)", tag=0x77)
        self.store(items[0].children, where="GPO")
        if 0x82 not in self.card:
            raise CardDataError("the GPO answer lacks the AIP", tag=0x82)
        self.aip = checked_aip(self.card[0x82])
        await self._read_afl()

    async def _read_afl(self) -> None:
        if self.card.get(0x94):
            # qVSDC has no CDOLs; the PAN may come only as track 2 (57).
            await self.read_records(mandatory=())

    async def read_only(self) -> TransactionResult:
        self.txn = TransactionData(amount=0, currency_numeric=999, online_available=False)
        self.ttq = self._build_ttq(self.txn)
        await self._gpo()
        result = self.result()
        result.interface = "contactless"
        return result

    def _card_cryptogram(self) -> Cryptogram:
        cid = self.card.get(0x9F27)
        if cid is not None:
            return card_cryptogram(cid, "GET PROCESSING OPTIONS")
        iad = self.card.get(0x9F10, b"")
        if len(iad) >= 5:
            return {0: Cryptogram.AAC, 1: Cryptogram.TC, 2: Cryptogram.ARQC}.get(
                (iad[4] >> 4) & 0x03, Cryptogram.AAC)
        raise CardDataError("the card's cryptogram type is missing (9F27 / 9F10)", tag=0x9F27)

    def _fdda(self, txn: TransactionData) -> bool:
        self.oda = "fdda"
        self.tsi.set(TsiBit.ODA_PERFORMED)
        try:
            if not self.aip[0] & 0x20 or 0x9F4B not in self.card:
                raise IccDataMissingError("no fDDA signature")
            issuer = self.issuer_public_key()
            icc = self.icc_public_key(issuer)
            terminal = self.terminal_objects()
            dynamic = (self.un + terminal[0x9F02] + terminal[0x5F2A]
                       + self.card.get(0x9F69, b""))
            verify_dynamic_signature(icc, self.card[0x9F4B], dynamic)
        except IccDataMissingError:
            self.tvr.set(TvrBit.DDA_FAILED)
            self.tvr.set(TvrBit.ICC_DATA_MISSING)
            self.oda_result = "failed"
            return False
        except OdaError:
            self.tvr.set(TvrBit.DDA_FAILED)
            self.oda_result = "failed"
            return False
        self.oda_result = "ok"
        return True

    async def run(self) -> TransactionResult:
        txn = self.txn
        assert txn is not None
        limits = self.aid_config.contactless_limits
        if limits.transaction_limit is not None and txn.amount > limits.transaction_limit:
            raise TransactionNotAllowedError(
                "the amount is above the contactless limit; insert the card"
            )
        self.ttq = self._build_ttq(txn)
        await self._gpo()
        if 0x9F26 not in self.card or 0x9F36 not in self.card:
            raise CardDataError("the GPO answer lacks the cryptogram or the ATC", tag=0x9F26)
        ctq = fixed_length(self.card.get(0x9F6C, b"\x00\x00"), 0x9F6C, 2,
                           "card transaction qualifiers")
        card_says = self._card_cryptogram()
        self.first = card_says
        go_online = card_says is Cryptogram.ARQC
        await self._cvm(txn, ctq)
        if self.cvm.method == "online_pin":
            go_online = True
        declined = card_says is Cryptogram.AAC
        if card_says is Cryptogram.TC:
            ok = self._fdda(txn)
            raw_expiry = self.card.get(0x5F24)
            expiry = application_date(raw_expiry)
            # A malformed expiration date counts as expired: it must not fail open.
            expired = raw_expiry is not None and (expiry is None or expiry < txn.when.date())
            if expired:
                self.tvr.set(TvrBit.EXPIRED_APPLICATION)
            pan = self.pan()
            if pan and pan in self.config.exception_file:
                self.tvr.set(TvrBit.CARD_ON_EXCEPTION_FILE)
                declined = True
            if not ok:
                if ctq[0] & 0x20 and self._can_go_online(txn):
                    go_online = True
                elif ctq[0] & 0x10:
                    raise TransactionNotAllowedError(
                        "offline data authentication failed; insert the card"
                    )
                else:
                    declined = True
            if expired:
                if ctq[0] & 0x08 and self._can_go_online(txn):
                    go_online = True
                else:
                    declined = True
        else:
            self.tvr.set(TvrBit.ODA_NOT_PERFORMED)
        if declined and not go_online:
            self.final, self.decision = Cryptogram.AAC, "declined_offline"
        elif go_online:
            self.final = card_says
            answer: OnlineResponse | None = None
            if self._can_go_online(txn):
                assert self.authoriser is not None
                answer = await self.authoriser.authorise(self.online_request())
            if answer is None:
                self.decision = "declined_unable_online"
            else:
                self.arc = answer.arc
                self.decision = "approved_online" if answer.approved else "declined_online"
        else:
            self.final, self.decision = Cryptogram.TC, "approved_offline"
        result = self.result()
        result.interface = "contactless"
        return result

    def outcome_reason(self) -> str:
        # qVSDC sets "ODA not performed" whenever the card's cryptogram is not a TC: it
        # explains nothing to the cashier there.
        return describe_outcome(self.decision, self.tvr,
                                arc=self.arc.decode("ascii", errors="replace"),
                                ignore=frozenset({TvrBit.ODA_NOT_PERFORMED}))

    def online_request(self) -> OnlineRequest:
        """DE 55 must let the issuer recompute the ARQC: TVR as it went into the cryptogram."""
        request = super().online_request()
        icc = dict(request.icc_data)
        icc[0x95] = self.pdol_tvr
        return replace(request, icc_data=icc)

    async def _cvm(self, txn: TransactionData, ctq: bytes) -> None:
        if not self.ttq[1] & 0x40:
            self.cvm.method, self.cvm.results = "no_cvm", b"\x1f\x00\x02"
            return
        self.tsi.set(TsiBit.CARDHOLDER_VERIFICATION_PERFORMED)
        if ctq[1] & 0x80:
            self.cvm.method, self.cvm.results = "cdcvm", b"\x01\x00\x02"
        elif ctq[0] & 0x80 and self.ttq[0] & 0x04 and self.pin_entry is not None:
            try:
                self.cvm.online_pin = await self.pin_entry(
                    OnlinePinRequest(self.pan(), txn.amount, txn.currency_numeric))
            except EtikaError:
                self.tvr.set(TvrBit.PIN_NOT_ENTERED)
                self.tvr.set(TvrBit.CARDHOLDER_VERIFICATION_FAILED)
                self.cvm.method, self.cvm.results = "failed", b"\x02\x00\x01"
                return
            self.tvr.set(TvrBit.ONLINE_PIN_ENTERED)
            self.cvm.method, self.cvm.results = "online_pin", b"\x02\x00\x00"
        elif ctq[0] & 0x40 and self.ttq[0] & 0x02:
            self.cvm.method, self.cvm.results = "signature", b"\x1e\x00\x00"
            self.cvm.signature_required = True
        else:
            self.cvm.method, self.cvm.results = "no_cvm", b"\x1f\x00\x02"
