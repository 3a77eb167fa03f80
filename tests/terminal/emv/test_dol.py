"""DOL parsing and building (EMV 4.4 Book 3 §5.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.emv.dol import build_dol, parse_dol
from terminal.emv.errors import DolError


def test_parse_typical_pdol() -> None:
    """A qVSDC PDOL parses into (tag, length) entries in order."""
    pdol = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
    assert parse_dol(pdol) == [
        (0x9F66, 4), (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5),
        (0x5F2A, 2), (0x9A, 3), (0x9C, 1), (0x9F37, 4),
    ]


@pytest.mark.parametrize(
    ("dol_hex", "offset"),
    [
        ("9F02",   2),
        ("9F",     0),
        ("9A039F", 2),
    ],
)
def test_malformed_dol_raises_with_offset(dol_hex: str, offset: int) -> None:
    """A DOL cut inside a tag or before a length raises DolError at that offset."""
    with pytest.raises(DolError) as info:
        parse_dol(bytes.fromhex(dol_hex))
    assert info.value.offset == offset


@pytest.mark.parametrize(
    ("tag",   "value",          "length", "expected"),
    [
        (0x9F02, "000000002500", 4,        "00002500"),        # n: leftmost truncated
        (0x9F02, "2500",         6,        "000000002500"),    # n: leading zeros
        (0x5A,   "41111111",     6,        "41111111ffff"),    # cn: trailing FF
        (0x5A,   "4111111122",   3,        "411111"),          # cn: rightmost truncated
        (0x9F4E, "414243",       5,        "4142430000"),      # ans: trailing zeros
        (0x9F4E, "41424344",     2,        "4142"),            # ans: rightmost truncated
        (0x9F37, "01020304",     2,        "0102"),            # b: rightmost truncated
        (0x9F37, "01",           3,        "010000"),          # b: trailing zeros
        (0xDF7F, "01",           2,        "0000"),            # unknown: zeros (not in data)
        (0x70,   "01",           2,        "0000"),            # constructed: zeros
    ],
)
def test_values_are_fitted_by_format(tag: int, value: str, length: int, expected: str) -> None:
    """Padding and truncation follow the n / cn / other rules of §5.4."""
    data = {tag: bytes.fromhex(value)} if tag not in (0xDF7F,) else {}
    dol = bytes.fromhex(f"{tag:X}") + bytes([length])
    assert build_dol(dol, data).hex() == expected


@given(entries=st.lists(st.tuples(st.sampled_from([0x9F02, 0x5A, 0x9F37, 0x95, 0xDF01]),
                                  st.integers(0, 40)), max_size=10))
def test_built_length_is_the_sum_of_entries(entries: list[tuple[int, int]]) -> None:
    """The built data is exactly as long as the DOL asks, whatever data is available."""
    dol = b"".join(bytes.fromhex(f"{t:X}") + bytes([n]) for t, n in entries)
    assert parse_dol(dol) == entries
    out = build_dol(dol, {0x9F02: b"\x00\x00\x00\x00\x25\x00", 0x5A: b"\x41\x11", 0x95: bytes(5)})
    assert len(out) == sum(n for _, n in entries)
