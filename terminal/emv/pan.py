"""PAN helpers: read it from card data, and mask it ``first6…last4`` (DESIGN §5).

The clear PAN exists only inside the kernel's card-data map and the values handed to the
tokeniser; everything that may be shown, logged or raised carries :func:`mask_pan` output.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["expiry_from_card", "mask_pan", "pan_digits", "pan_from_card"]


def pan_digits(value: bytes) -> str:
    """Digits of a ``cn`` PAN (5A): BCD, right-padded with ``F`` (EMV 4.4 Book 3 §4.3)."""
    return value.hex().upper().rstrip("F")


def mask_pan(pan: str) -> str:
    """``first6…last4`` (PCI DSS 3.4); shorter numbers keep only their last 4 digits."""
    if len(pan) < 13:
        return "…" + pan[-4:] if len(pan) > 4 else "…"
    return f"{pan[:6]}…{pan[-4:]}"


def pan_from_card(data: Mapping[int, bytes]) -> str | None:
    """The PAN from 5A, or else from track 2 equivalent data (57) before the ``D`` separator."""
    if 0x5A in data:
        return pan_digits(data[0x5A])
    for tag in (0x57, 0x9F6B):
        if tag in data:
            digits = data[tag].hex().upper()
            if "D" in digits:
                return digits.split("D", 1)[0]
    return None


def expiry_from_card(data: Mapping[int, bytes]) -> str | None:
    """Expiry as ``YYMM`` from 5F24 (YYMMDD), or else from track 2 (``D`` then YYMM)."""
    if 0x5F24 in data and len(data[0x5F24]) == 3:
        return data[0x5F24].hex()[:4]
    for tag in (0x57, 0x9F6B):
        if tag in data:
            digits = data[tag].hex().upper()
            if "D" in digits:
                rest = digits.split("D", 1)[1]
                if len(rest) >= 4 and rest[:4].isdigit():
                    return rest[:4]
    return None
