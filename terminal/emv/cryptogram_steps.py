"""From card action analysis to completion (Book 3 §10.8–10.11, Book 2 §6.6).

GENERATE AC with its CDOL (and TDOL hash), the CDA signature checked on either GENERATE
AC (a failure voids the cryptogram), online processing through the issuer boundary of
:mod:`.online` (issuer authentication, scripts 71/72) and the second GENERATE AC, or the
unable-to-go-online path decided by the terminal and issuer action codes.
"""

from __future__ import annotations

import logging

from terminal.emv import apdu
from terminal.emv.card_responses import response_template
from terminal.emv.dol import build_dol, parse_dol
from terminal.emv.errors import (
    CardDataError,
    CardError,
    CommandTooLongError,
    DolError,
    OdaError,
)
from terminal.emv.flow_state import FlowState
from terminal.emv.oda import sha1, verify_cda
from terminal.emv.online import (
    ARC_UNABLE_ONLINE_APPROVED,
    ARC_UNABLE_ONLINE_DECLINED,
    ICC_DATA_TAGS,
    OnlineRequest,
    OnlineResponse,
    run_issuer_scripts,
)
from terminal.emv.pan import mask_pan
from terminal.emv.risk import Cryptogram, card_cryptogram, default_action
from terminal.emv.tlv import Tlv, flatten
from terminal.emv.tvr import TsiBit, TvrBit

__all__ = ["CryptogramSteps"]

# The contact flow's logger: these steps were part of it, and log filters name it.
log = logging.getLogger("terminal.emv.contact")


class CryptogramSteps(FlowState):
    """Book 3 §10.8–10.11 on the transaction's state."""

    async def generate_ac(self, kind: Cryptogram, cdol_tag: int) -> Cryptogram:
        entries = self._card_dol(cdol_tag)
        source = self.dol_source()
        if any(tag == 0x98 for tag, _ in entries):
            source[0x98] = self._tc_hash(source)
        cdol_data = build_dol(entries, source)
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

    def _card_dol(self, tag: int) -> list[tuple[int, int]]:
        """The entries of the card's DOL ``tag`` (8C, 8D, 97); malformed → CardDataError."""
        try:
            return parse_dol(self.card[tag])
        except DolError as exc:
            raise CardDataError(f"the card's DOL {tag:X} is malformed: {exc.message}",
                                tag=tag) from exc

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
        if 0x97 in self.card:
            return sha1(build_dol(self._card_dol(0x97), source))
        self.tvr.set(TvrBit.DEFAULT_TDOL_USED)
        source[0x95] = bytes(self.tvr)
        return sha1(build_dol(self.aid_config.default_tdol, source))

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
        cdol2_has_91 = any(tag == 0x91 for tag, _ in self._card_dol(0x8D))
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
