"""Cardholder verification (EMV 4.4 Book 3 §10.5, CVM codes and conditions Annex C3).

The CVM List (8E) is amount X (4), amount Y (4) and two-byte CV Rules: the first byte is
the method (b6–b1) with b7 "apply succeeding CV Rule if this CVM is unsuccessful"; the
second is the condition. Rules are tried in order; the first whose condition holds and
whose method succeeds ends processing. CVM Results (9F34) record the method, condition
and result (``00`` unknown, ``01`` failed, ``02`` successful).

Methods this kernel performs:

- ``02`` enciphered PIN verified online: the PIN entry device returns an enciphered PIN
  block (ISO 9564 under DUKPT) that goes to the acquirer; result *unknown*, TVR "online
  PIN entered". Cancelled → TVR "PIN not entered"; device failure → "PIN pad not present
  or not working";
- ``04`` enciphered PIN verified by the ICC and ``05`` the same plus signature: the PIN
  pad enciphers the PIN for the card and the terminal relays VERIFY ``88``
  (:mod:`terminal.emv.offline_pin`); supported when 9F33 byte 2 b5 is set and an
  ``offline_pin`` step is given; verified → *successful* (``05``: *unknown*, signature too);
- ``1E`` signature (result *unknown*: the merchant checks it on the receipt), ``1F`` no
  CVM required (*successful*), ``00`` fail CVM processing.

**Plaintext offline PIN (``01``, ``03``) is not supported:** VERIFY ``80`` needs the clear
PIN on the terminal, and the PIN pad never releases one (DESIGN §5), so these methods count
as not supported (TVR "PIN entry required and PIN pad not present or not working"), and the
profile adapter clears their bit from 9F33 so the card is told the truth.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.base import EncryptedPin
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError
from etika_errors import EtikaError
from terminal.emv.config import KernelConfig, TransactionData, TransactionType
from terminal.emv.offline_pin import OfflinePinStep
from terminal.emv.pan import mask_pan
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

__all__ = [
    "CvRule",
    "CvmList",
    "CvmOutcome",
    "CvmResult",
    "OnlinePinRequest",
    "amount_condition_applies",
    "parse_cvm_list",
    "process_cvm",
]

FAIL = 0x00
PLAINTEXT_PIN_ICC = 0x01
ONLINE_PIN = 0x02
PLAINTEXT_PIN_ICC_AND_SIGNATURE = 0x03
ENCIPHERED_PIN_ICC = 0x04
ENCIPHERED_PIN_ICC_AND_SIGNATURE = 0x05
SIGNATURE = 0x1E
NO_CVM = 0x1F
_RECOGNISED = {FAIL, PLAINTEXT_PIN_ICC, ONLINE_PIN, PLAINTEXT_PIN_ICC_AND_SIGNATURE,
               ENCIPHERED_PIN_ICC, ENCIPHERED_PIN_ICC_AND_SIGNATURE, SIGNATURE, NO_CVM}
_OFFLINE_PIN = {PLAINTEXT_PIN_ICC, PLAINTEXT_PIN_ICC_AND_SIGNATURE, ENCIPHERED_PIN_ICC,
                ENCIPHERED_PIN_ICC_AND_SIGNATURE}
_NAMES = {
    FAIL: "fail", PLAINTEXT_PIN_ICC: "offline_plaintext_pin", ONLINE_PIN: "online_pin",
    PLAINTEXT_PIN_ICC_AND_SIGNATURE: "offline_plaintext_pin_and_signature",
    ENCIPHERED_PIN_ICC: "offline_enciphered_pin",
    ENCIPHERED_PIN_ICC_AND_SIGNATURE: "offline_enciphered_pin_and_signature",
    SIGNATURE: "signature", NO_CVM: "no_cvm",
}

RESULT_UNKNOWN = 0x00
RESULT_FAILED = 0x01
RESULT_SUCCESSFUL = 0x02


class CvmOutcome(enum.Enum):
    SUCCESS = "success"
    UNKNOWN = "unknown"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OnlinePinRequest:
    """What the PIN entry callback gets; ``pan`` is clear (the PIN pad needs it for the block)."""

    pan: str = field(repr=False)
    amount: int
    currency_numeric: int

    @property
    def pan_masked(self) -> str:
        return mask_pan(self.pan)


#: Returns the enciphered PIN (``drivers.base.EncryptedPin``, opaque to the kernel) or raises:
#: ``PinEntryCancelledError``/``PinEntryTimeoutError`` mean the cardholder did not enter it;
#: any other ``EtikaError`` means the pad failed.
PinCallback = Callable[[OnlinePinRequest], Awaitable[EncryptedPin]]


@dataclass(slots=True)
class CvmResult:
    results: bytes = b"\x3f\x00\x00"
    method: str = "none"
    online_pin: EncryptedPin | None = None
    signature_required: bool = False

    @property
    def cvm_results_hex(self) -> str:
        return self.results.hex().upper()


@dataclass(frozen=True, slots=True)
class CvRule:
    """One CV Rule: method code (b6–b1), "apply succeeding" (b7) and condition code."""

    code: int
    condition: int

    @property
    def method(self) -> int:
        return self.code & 0x3F

    @property
    def apply_succeeding(self) -> bool:
        return bool(self.code & 0x40)


@dataclass(frozen=True, slots=True)
class CvmList:
    """A parsed CVM List (8E): amounts X and Y (binary, application currency) and rules."""

    amount_x: int
    amount_y: int
    rules: tuple[CvRule, ...]


def parse_cvm_list(raw: bytes) -> CvmList | None:
    """Book 3 §10.5, Annex C3: X (4) ‖ Y (4) ‖ CV Rules (2 each); ``None`` if malformed.

    A list shorter than one rule or with half a rule is treated as absent by the caller
    (TVR "ICC data missing").
    """
    if len(raw) < 10 or len(raw) % 2:
        return None
    rules = tuple(CvRule(raw[i], raw[i + 1]) for i in range(8, len(raw), 2))
    return CvmList(int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big"), rules)


def amount_condition_applies(condition: int, cvm_list: CvmList, app_currency: bytes | None,
                             txn: TransactionData) -> bool:
    """Conditions 06–09 (under/over X, under/over Y), Book 3 Annex C3.

    They apply only when the transaction is in the application currency (9F42); an absent
    or malformed (not BCD) 9F42 means the condition is not satisfied.
    """
    if app_currency is None or not app_currency or not app_currency.hex().isdigit():
        return False
    if int(app_currency.hex()) != txn.currency_numeric:
        return False
    limit = cvm_list.amount_x if condition in (0x06, 0x07) else cvm_list.amount_y
    return txn.amount < limit if condition in (0x06, 0x08) else txn.amount > limit


def method_name(code: int) -> str:
    return _NAMES.get(code & 0x3F, f"unknown_{code & 0x3F:02X}")


def _terminal_supports(method: int, config: KernelConfig, pin_entry: PinCallback | None,
                       offline_pin: OfflinePinStep | None = None) -> bool:
    if method == ONLINE_PIN:
        return config.supports(2, 7) and pin_entry is not None
    if method in (ENCIPHERED_PIN_ICC, ENCIPHERED_PIN_ICC_AND_SIGNATURE):
        return config.supports(2, 5) and offline_pin is not None
    if method == SIGNATURE:
        return config.supports(2, 6)
    if method == NO_CVM:
        return config.supports(2, 4)
    if method == FAIL:
        return True
    return False  # plaintext offline PIN: see the module docstring


def _condition(cond: int, method: int, cvm_list: CvmList, card: dict[int, bytes],
               txn: TransactionData, config: KernelConfig,
               pin_entry: PinCallback | None, offline_pin: OfflinePinStep | None = None) -> bool:
    unattended = config.terminal_type % 10 in (4, 5, 6)
    cash = txn.transaction_type == TransactionType.CASH
    cashback = txn.transaction_type == TransactionType.CASHBACK
    if cond == 0x00:
        return True
    if cond == 0x01:
        return cash and unattended
    if cond == 0x02:
        return not cash and not cashback
    if cond == 0x03:
        return _terminal_supports(method, config, pin_entry, offline_pin)
    if cond == 0x04:
        return cash and not unattended
    if cond == 0x05:
        return cashback
    if cond in (0x06, 0x07, 0x08, 0x09):
        return amount_condition_applies(cond, cvm_list, card.get(0x9F42), txn)
    return False  # RFU conditions are never satisfied (Book 3 §10.5)


async def process_cvm(
    card: dict[int, bytes],
    aip: bytes,
    txn: TransactionData,
    config: KernelConfig,
    tvr: Tvr,
    tsi: Tsi,
    pan: str,
    pin_entry: PinCallback | None,
    offline_pin: OfflinePinStep | None = None,
) -> CvmResult:
    """Run the card's CVM List; set TVR byte 3, TSI b7 and return the CVM Results (9F34)."""
    result = CvmResult()
    if not aip[0] & 0x10:
        return result  # the card does not support cardholder verification: 3F0000
    cvm_list = parse_cvm_list(card.get(0x8E, b""))
    if cvm_list is None:
        tvr.set(TvrBit.ICC_DATA_MISSING)
        return result
    tsi.set(TsiBit.CARDHOLDER_VERIFICATION_PERFORMED)
    last_failed: tuple[int, int] | None = None
    for rule in cvm_list.rules:
        code, cond, method = rule.code, rule.condition, rule.method
        if not _condition(cond, method, cvm_list, card, txn, config, pin_entry, offline_pin):
            continue
        outcome = CvmOutcome.FAILED
        if method not in _RECOGNISED:
            tvr.set(TvrBit.UNRECOGNISED_CVM)
        elif not _terminal_supports(method, config, pin_entry, offline_pin):
            if method in _OFFLINE_PIN or method == ONLINE_PIN:
                tvr.set(TvrBit.PIN_PAD_NOT_PRESENT)
        elif method == NO_CVM:
            outcome = CvmOutcome.SUCCESS
        elif method == SIGNATURE:
            outcome = CvmOutcome.UNKNOWN
            result.signature_required = True
        elif method in (ENCIPHERED_PIN_ICC, ENCIPHERED_PIN_ICC_AND_SIGNATURE):
            assert offline_pin is not None  # _terminal_supports checked it
            if await offline_pin.verify(tvr):
                if method == ENCIPHERED_PIN_ICC:
                    outcome = CvmOutcome.SUCCESS
                else:
                    outcome = CvmOutcome.UNKNOWN
                    result.signature_required = True
        elif method == ONLINE_PIN:
            assert pin_entry is not None  # _terminal_supports checked it
            try:
                result.online_pin = await pin_entry(
                    OnlinePinRequest(pan, txn.amount, txn.currency_numeric)
                )
            except (PinEntryCancelledError, PinEntryTimeoutError):
                tvr.set(TvrBit.PIN_NOT_ENTERED)
            except EtikaError:  # any other PIN pad failure: the pad is not working
                tvr.set(TvrBit.PIN_PAD_NOT_PRESENT)
            else:
                tvr.set(TvrBit.ONLINE_PIN_ENTERED)
                outcome = CvmOutcome.UNKNOWN
        if outcome is not CvmOutcome.FAILED:
            status = RESULT_SUCCESSFUL if outcome is CvmOutcome.SUCCESS else RESULT_UNKNOWN
            result.results = bytes([code, cond, status])
            result.method = method_name(code)
            return result
        last_failed = (code, cond)
        if not code & 0x40:
            break
    tvr.set(TvrBit.CARDHOLDER_VERIFICATION_FAILED)
    if last_failed is None:
        result.results = b"\x3f\x00\x01"
        result.method = "none"
    else:
        result.results = bytes([last_failed[0], last_failed[1], RESULT_FAILED])
        result.method = "failed"
    return result
