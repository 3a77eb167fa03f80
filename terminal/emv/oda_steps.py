"""Offline data authentication as a transaction step (Book 3 §10.3, Book 2 §5–6).

Chooses SDA, DDA or CDA from the AIP and the terminal's capabilities, recovers the issuer
and ICC public keys (the checks themselves are in :mod:`.oda`), runs INTERNAL
AUTHENTICATE for DDA and keeps the ICC key for CDA, whose signature comes with GENERATE
AC (:mod:`.cryptogram_steps`). Failures never raise: they set TVR bits and action
analysis decides.
"""

from __future__ import annotations

import logging

from terminal.emv import apdu
from terminal.emv.card_responses import response_template
from terminal.emv.dol import build_dol, parse_dol
from terminal.emv.errors import (
    CardDataError,
    CommandTooLongError,
    DolError,
    IccDataMissingError,
    OdaError,
)
from terminal.emv.flow_state import FlowState
from terminal.emv.oda import (
    RsaKey,
    recover_icc_key,
    recover_issuer_key,
    verify_dynamic_signature,
    verify_sda,
)
from terminal.emv.tlv import find
from terminal.emv.tvr import TsiBit, TvrBit

__all__ = ["OdaSteps"]

# The contact flow's logger: these steps were part of it, and log filters name it.
log = logging.getLogger("terminal.emv.contact")


class OdaSteps(FlowState):
    """Book 3 §10.3 on the transaction's state."""

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
