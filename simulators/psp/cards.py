"""Load-generation helper: the ICC data a simulated card would send, without the card.

For benchmarks and connector tests that need many valid authorisations quickly. It uses
the very formulas of :mod:`simulators.card.issuer` (which the card simulator itself calls),
so the ARQC verifies at the PSP; the end-to-end proof that a *card* produces ARQCs the
PSP accepts is ``tests/simulators/psp/test_card_to_psp.py``, through the EMV kernel.
"""

from __future__ import annotations

import os
from datetime import date

from simulators.card import issuer

__all__ = ["icc_data"]


def icc_data(pan: str, *, issuer_name: str = "visa", psn: int = 1, amount: int = 1000,
             currency_numeric: int = 504, country: int = 504, atc: int = 1,
             when: date | None = None) -> dict[int, bytes]:
    """The DE 55 tags of an ARQC for this card and amount (Book 2 Table 26 set + 9F10)."""
    when = when or date.today()
    tags: dict[int, bytes] = {
        0x9F02: bytes.fromhex(f"{amount:012d}"),
        0x9F03: bytes(6),
        0x9F1A: bytes.fromhex(f"{country:04d}"),
        0x95: bytes(5),
        0x5F2A: bytes.fromhex(f"{currency_numeric:04d}"),
        0x9A: bytes.fromhex(when.strftime("%y%m%d")),
        0x9C: b"\x00",
        0x9F37: os.urandom(4),
        0x82: bytes.fromhex("3800"),
        0x9F36: atc.to_bytes(2, "big"),
        0x9F10: bytes.fromhex("06010A03A00000"),
        0x5F34: bytes.fromhex(f"{psn:02d}"),
    }
    keys = issuer.derive_card_keys(issuer.issuer_master_keys(issuer_name), pan, psn)
    tags[0x9F26] = issuer.generate_ac(keys, tags)
    tags[0x9F27] = b"\x80"
    return tags
