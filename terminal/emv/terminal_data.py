"""The data objects the terminal itself supplies to the card's DOLs (Book 3 Annex A1).

Amounts, currency, date and time, the unpredictable number, TVR and TSI, the terminal's
identity and capabilities, the application version: what a PDOL, CDOL, DDOL or TDOL may
ask for, built once per transaction from the configuration and the transaction data.
"""

from __future__ import annotations

from terminal.emv.config import AidConfig, KernelConfig, TransactionData
from terminal.emv.tvr import Tsi, Tvr

__all__ = ["terminal_data"]


def _bcd(value: int, nbytes: int) -> bytes:
    return bytes.fromhex(f"{value:0{2 * nbytes}d}")


#: 0–99 as one BCD byte (YYMMDD and HHMMSS, Book 3 Annex A1: 9A and 9F21 are n6).
_BCD2 = tuple((n // 10) << 4 | n % 10 for n in range(100))

#: (id(config), id(aid)) → (config, aid, objects from the configuration alone).
_FIXED: dict[tuple[int, int], tuple[KernelConfig, AidConfig, dict[int, bytes]]] = {}
_FIXED_MAX = 32


def _fixed(config: KernelConfig, aid: AidConfig) -> dict[int, bytes]:
    """The objects that depend only on the (frozen) configuration, made once per pair.

    Every transaction with the same configuration and AID gets the same values; the
    cache keeps both objects alive so their ids stay theirs, and is emptied at 32 pairs.
    """
    key = (id(config), id(aid))
    hit = _FIXED.get(key)
    if hit is not None and hit[0] is config and hit[1] is aid:
        return hit[2]
    fixed = {
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
        0x9F1B: aid.floor_limit.to_bytes(4, "big"),
        0x9F01: bytes.fromhex(config.acquirer_id.zfill(12)) if config.acquirer_id.isdigit()
        else bytes(6),
    }
    if len(_FIXED) >= _FIXED_MAX:
        _FIXED.clear()
    _FIXED[key] = (config, aid, fixed)
    return fixed


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
    fixed = _fixed(config, aid)
    # The same keys in the same order as ever (the order reaches the result's emv_data).
    return {
        0x9F02: _bcd(txn.amount, 6),
        0x9F03: _bcd(txn.amount_other, 6),
        0x81: txn.amount.to_bytes(4, "big"),
        0x9F04: txn.amount_other.to_bytes(4, "big"),
        0x5F2A: _bcd(txn.currency_numeric, 2),
        0x5F36: _bcd(txn.currency_exponent, 1),
        0x9A: bytes((_BCD2[when.year % 100], _BCD2[when.month], _BCD2[when.day])),
        0x9F21: bytes((_BCD2[when.hour], _BCD2[when.minute], _BCD2[when.second])),
        0x9C: _bcd(txn.transaction_type, 1),
        0x9F37: unpredictable_number,
        0x95: bytes(tvr),
        0x9B: bytes(tsi),
        0x9F1A: fixed[0x9F1A],
        0x9F35: fixed[0x9F35],
        0x9F33: fixed[0x9F33],
        0x9F40: fixed[0x9F40],
        0x9F1E: fixed[0x9F1E],
        0x9F1C: fixed[0x9F1C],
        0x9F16: fixed[0x9F16],
        0x9F15: fixed[0x9F15],
        0x9F4E: fixed[0x9F4E],
        0x9F09: fixed[0x9F09],
        0x9F06: fixed[0x9F06],
        0x9F41: _bcd(txn.sequence_counter % 10**8, 4),
        0x9F1B: fixed[0x9F1B],
        0x9F01: fixed[0x9F01],
    }
