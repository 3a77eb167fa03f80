"""Processing restrictions, terminal risk management and terminal action analysis.

- Processing restrictions (EMV 4.4 Book 3 §10.4): application version (9F08 vs 9F09),
  Application Usage Control (9F07, Annex C2) against the terminal type, the transaction
  type and domestic/international (5F28 vs 9F1A), effective (5F25) and expiration (5F24)
  dates. Each failed check sets its TVR bit; nothing here stops the transaction.
- Terminal risk management (§10.6, performed when AIP byte 1 b4 says so): terminal
  exception file, floor limit, random transaction selection (with the biased selection
  between threshold and floor limit), velocity checking with LCOL (9F14)/UCOL (9F23) and
  GET DATA of ATC (9F36) and last online ATC (9F13); "new card" when the latter is zero.
  (The transaction log that would add a recent same-card amount to the floor-limit check is
  not kept: the terminal does not store PANs.)
- Terminal action analysis (§10.7): TVR against IAC/TAC denial, online, default, in that
  order; absent IACs default to ``00…`` for denial and ``FF…`` for online and default.
"""

from __future__ import annotations

import enum

from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.card_responses import fixed_length
from terminal.emv.config import AidConfig, KernelConfig, TransactionData, TransactionType
from terminal.emv.dates import application_date
from terminal.emv.errors import CardDataError, TlvError
from terminal.emv.tlv import decode, flatten
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

__all__ = [
    "Cryptogram",
    "action_analysis",
    "card_cryptogram",
    "default_action",
    "processing_restrictions",
    "terminal_risk_management",
]


class Cryptogram(enum.Enum):
    """Cryptogram types and their GENERATE AC P1 / CID bits (Book 3 §6.5.5)."""

    AAC = 0x00
    TC = 0x40
    ARQC = 0x80

    @classmethod
    def from_cid(cls, cid: int) -> Cryptogram:
        kind = cid & 0xC0
        if kind == 0xC0:
            raise ValueError("AAR (CID C0) is not used by EMV 4.x")
        return cls(kind)


def card_cryptogram(cid: bytes, where: str) -> Cryptogram:
    """The cryptogram type in a Cryptogram Information Data the card sent (Book 3 §6.5.5.4).

    An empty CID or the AAR pattern ``C0`` (not used by EMV 4.x) is the card's data error.
    """
    fixed_length(cid, 0x9F27, 1, "cryptogram information data", where)
    try:
        return Cryptogram.from_cid(cid[0])
    except ValueError as exc:
        raise CardDataError(f"{where}: {exc}", tag=0x9F27) from exc


def processing_restrictions(
    card: dict[int, bytes], aid: AidConfig, txn: TransactionData, config: KernelConfig,
    tvr: Tvr,
) -> None:
    """Book 3 §10.4: set TVR byte 2 bits 8–5."""
    card_version = card.get(0x9F08)
    if card_version is not None and card_version != aid.application_version:
        tvr.set(TvrBit.DIFFERENT_APP_VERSIONS)

    auc = card.get(0x9F07)
    if auc is not None and len(auc) != 2:
        # Book 3 Annex A: the AUC is 2 bytes. One that is not cannot show the service is
        # allowed: like a malformed date, it sets its bit and never fails open.
        tvr.set(TvrBit.SERVICE_NOT_ALLOWED)
    elif auc is not None:
        allowed = True
        if config.is_atm and not auc[0] & 0x02:
            allowed = False
        if not config.is_atm and not auc[0] & 0x01:
            allowed = False
        country = card.get(0x5F28)
        if country is not None and country.hex().isdigit():
            domestic = int(country.hex()) == config.country_code
            kind = txn.transaction_type
            if kind == TransactionType.CASH:
                bit = 0x80 if domestic else 0x40
                allowed = allowed and bool(auc[0] & bit)
            elif kind in (TransactionType.PURCHASE, TransactionType.CASHBACK):
                # A purchase is valid for goods or for services (the terminal sells both).
                bits = 0x20 | 0x08 if domestic else 0x10 | 0x04
                allowed = allowed and bool(auc[0] & bits)
                if kind == TransactionType.CASHBACK or txn.amount_other:
                    allowed = allowed and bool(auc[1] & (0x80 if domestic else 0x40))
        if not allowed:
            tvr.set(TvrBit.SERVICE_NOT_ALLOWED)

    # Book 3 §10.4.3: a date that is present but not a real date (day 00, month 13, not
    # BCD) cannot show the application is in force: it sets its bit, never fails open.
    today = txn.when.date()
    raw_effective = card.get(0x5F25)
    effective = application_date(raw_effective)
    if raw_effective is not None and (effective is None or effective > today):
        tvr.set(TvrBit.APPLICATION_NOT_YET_EFFECTIVE)
    raw_expiry = card.get(0x5F24)
    expiry = application_date(raw_expiry)
    if raw_expiry is not None and (expiry is None or expiry < today):
        tvr.set(TvrBit.EXPIRED_APPLICATION)


async def _get_data(channel: CardChannel, tag: int) -> bytes | None:
    response = await channel.transmit(apdu.get_data(tag))
    if not response.ok:
        return None
    try:
        value = flatten(decode(response.data)).get(tag)
    except TlvError:
        return None
    return value if value is not None and len(value) == 2 else None


def _random_percent(config: KernelConfig) -> int:
    """A uniform number 1–99 (Book 3 §10.6.2)."""
    return int.from_bytes(config.random_bytes(2), "big") % 99 + 1


async def terminal_risk_management(
    channel: CardChannel,
    card: dict[int, bytes],
    aid: AidConfig,
    txn: TransactionData,
    config: KernelConfig,
    pan: str,
    tvr: Tvr,
    tsi: Tsi,
) -> None:
    """Book 3 §10.6: set TVR byte 4 (and byte 1 b5/b6, byte 2 b4) and TSI b4."""
    if pan in config.exception_file:
        tvr.set(TvrBit.CARD_ON_EXCEPTION_FILE)
    if txn.merchant_forced_online:
        tvr.set(TvrBit.MERCHANT_FORCED_ONLINE)

    amount = txn.amount
    if amount >= aid.floor_limit:
        tvr.set(TvrBit.FLOOR_LIMIT_EXCEEDED)
    elif aid.max_target_percent or aid.target_percent:
        rand = _random_percent(config)
        if amount < aid.random_selection_threshold:
            selected = rand <= aid.target_percent
        else:
            span = max(aid.floor_limit - aid.random_selection_threshold, 1)
            fraction = (amount - aid.random_selection_threshold) / span
            target = aid.target_percent + (aid.max_target_percent - aid.target_percent) * fraction
            selected = rand <= target
        if selected:
            tvr.set(TvrBit.RANDOMLY_SELECTED_ONLINE)

    lcol = card.get(0x9F14)
    ucol = card.get(0x9F23)
    if lcol is not None and ucol is not None:
        await _velocity_checking(channel, lcol, ucol, tvr)
    tsi.set(TsiBit.TERMINAL_RISK_MANAGEMENT_PERFORMED)


async def _velocity_checking(channel: CardChannel, lcol: bytes, ucol: bytes, tvr: Tvr) -> None:
    """Book 3 §10.6.3, exactly: both limit bits when the ATC or the last online ATC is not
    returned, or when the ATC is not above the last online ATC; "new card" only when the
    last online ATC is returned and is zero. (A missing register is not "ICC data missing":
    that bit belongs to offline data authentication and the CVM List.)"""
    atc = await _get_data(channel, 0x9F36)
    last_online = await _get_data(channel, 0x9F13)
    if last_online is not None and int.from_bytes(last_online, "big") == 0:
        tvr.set(TvrBit.NEW_CARD)
    if (atc is None or last_online is None or len(lcol) != 1 or len(ucol) != 1
            or int.from_bytes(atc, "big") <= int.from_bytes(last_online, "big")):
        # A malformed limit (not one byte) counts as exceeded too: it must not fail open.
        tvr.set(TvrBit.LCOL_EXCEEDED)
        tvr.set(TvrBit.UCOL_EXCEEDED)
        return
    delta = int.from_bytes(atc, "big") - int.from_bytes(last_online, "big")
    if delta > lcol[0]:
        tvr.set(TvrBit.LCOL_EXCEEDED)
    if delta > ucol[0]:
        tvr.set(TvrBit.UCOL_EXCEEDED)


#: Issuer action codes (Book 3 §10.7, Annex A): tag, name, default when absent.
_IAC_DENIAL = (0x9F0E, "denial", bytes(5))
_IAC_ONLINE = (0x9F0F, "online", b"\xff" * 5)
_IAC_DEFAULT = (0x9F0D, "default", b"\xff" * 5)


def _issuer_action_code(card: dict[int, bytes], which: tuple[int, str, bytes]) -> bytes:
    """An IAC as the card sent it (5 bytes, Book 3 Annex A), or its default when absent.

    A present IAC of another length cannot be read bit for bit against the TVR; taking the
    default instead would let a card weaken the issuer's rules, so it is the card's data
    error (the transaction ends, as for any malformed object the kernel must interpret).
    """
    tag, name, default = which
    value = card.get(tag)
    if value is None:
        return default
    return fixed_length(value, tag, 5, f"issuer action code – {name}")


def action_analysis(
    card: dict[int, bytes], aid: AidConfig, tvr: Tvr, *, online_capable: bool
) -> Cryptogram:
    """The cryptogram to ask for in GENERATE AC 1 (Book 3 §10.7)."""
    # All three read first: whether a malformed one ends the transaction must not depend
    # on which TVR bits happen to be set.
    iac_denial = _issuer_action_code(card, _IAC_DENIAL)
    iac_online = _issuer_action_code(card, _IAC_ONLINE)
    _issuer_action_code(card, _IAC_DEFAULT)
    if tvr.matches(aid.tac_denial) or tvr.matches(iac_denial):
        return Cryptogram.AAC
    if online_capable:
        if tvr.matches(aid.tac_online) or tvr.matches(iac_online):
            return Cryptogram.ARQC
        return Cryptogram.TC
    return default_action(card, aid, tvr)


def default_action(card: dict[int, bytes], aid: AidConfig, tvr: Tvr) -> Cryptogram:
    """TAC/IAC default: offline-only terminals and the unable-to-go-online path (§10.7)."""
    iac_default = _issuer_action_code(card, _IAC_DEFAULT)
    if tvr.matches(aid.tac_default) or tvr.matches(iac_default):
        return Cryptogram.AAC
    return Cryptogram.TC
