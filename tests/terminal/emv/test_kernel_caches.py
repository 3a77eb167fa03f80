"""The kernel's per-tap shortcuts change nothing a transaction sees (issue #13, bench/emv.py).

Parsed DOLs, derived contactless configurations, the configuration's terminal data objects
and the encoder's tag bytes are kept between transactions; each test pins that the kept
value is the one a fresh computation gives, and that a different input is not served a
stale one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.emv import dol, tlv
from terminal.emv.config import TransactionData, replaced
from terminal.emv.errors import DolError
from terminal.emv.tags import format_of
from terminal.emv.terminal_data import terminal_data
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

from .cardkit import aid_config, kernel_config

TAGS = [0x9F02, 0x9F03, 0x5F2A, 0x9A, 0x9F37, 0x95, 0x5A, 0x57, 0x9F1E, 0x9F4E, 0x8A, 0x70,
        0xBF0C, 0x9F7C, 0xDF01]


def reference_build(entries: list[tuple[int, int]], data: dict[int, bytes]) -> bytes:
    """Book 3 §5.4 spelled out, one entry at a time, with dol.fit_value."""
    out = b""
    for tag, length in entries:
        value = data.get(tag)
        if value is None or tlv.is_constructed(tag):
            out += bytes(length)
        else:
            out += dol.fit_value(tag, value, length)
    return out


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from(TAGS), st.integers(0, 40)), max_size=12),
       values=st.dictionaries(st.sampled_from(TAGS), st.binary(max_size=45)))
def test_cached_dol_builds_what_the_rules_say(entries: list[tuple[int, int]],
                                              values: dict[int, bytes]) -> None:
    """build_dol (cached plan) equals the rules applied entry by entry, twice in a row."""
    raw = b"".join(tlv.encode_tag(tag) + bytes([length]) for tag, length in entries)
    expected = reference_build(entries, values)
    assert dol.build_dol(raw, values) == expected
    assert dol.build_dol(raw, values) == expected
    assert dol.build_dol(entries, values) == expected
    assert dol.parse_dol(raw) == entries
    assert dol.dol_length(raw) == sum(length for _, length in entries)


def test_parse_dol_returns_a_fresh_list() -> None:
    """A caller changing the parsed list does not change the next parse of the same DOL."""
    raw = bytes.fromhex("9F02069F3704")
    first = dol.parse_dol(raw)
    first.append((0x5A, 8))
    assert dol.parse_dol(raw) == [(0x9F02, 6), (0x9F37, 4)]


def test_malformed_dol_raises_every_time() -> None:
    """A malformed DOL is not remembered as good: each call raises DolError at its offset."""
    for _ in range(3):
        with pytest.raises(DolError) as info:
            dol.build_dol(bytes.fromhex("9F0206 9F37"), {})
        assert info.value.offset == 5


def test_n_and_cn_fill_from_the_cached_plan() -> None:
    """Format n pads left and cuts left; cn pads with FF; the tag table decides each."""
    assert format_of(0x9F02) == "n" and format_of(0x5A) == "cn"
    built = dol.build_dol(bytes.fromhex("9F0208" "5A0A" "9F0202"),
                          {0x9F02: bytes.fromhex("000000002500"), 0x5A: bytes.fromhex("4761")})
    assert built.hex().upper() == "0000000000002500" + "4761" + "FF" * 8 + "2500"


def test_replaced_is_replace_made_once() -> None:
    """replaced() equals dataclasses.replace, returns the same copy again, and keys on both."""
    config = kernel_config()
    first = replaced(config, capabilities=b"\xe0\x08\xc8")
    assert first == replace(config, capabilities=b"\xe0\x08\xc8")
    assert replaced(config, capabilities=b"\xe0\x08\xc8") is first
    other = replaced(config, capabilities=b"\xe0\x40\xc8")
    assert other.capabilities == b"\xe0\x40\xc8" and other is not first
    another_config = kernel_config(terminal_type=21)
    assert replaced(another_config, capabilities=b"\xe0\x08\xc8").terminal_type == 21


def test_replaced_still_validates() -> None:
    """A derived configuration runs __post_init__ like any other: bad values are refused."""
    with pytest.raises(ValueError, match="3 bytes"):
        replaced(kernel_config(), capabilities=b"\xe0")


def test_terminal_data_follows_the_configuration_given() -> None:
    """Two configurations in turn each get their own 9F33, 9F1C, 9F1B; transaction data live."""
    aid_a, aid_b = aid_config(floor_limit=1000), aid_config(floor_limit=7000)
    config_a = kernel_config(aid_a, terminal_id="TERMA001")
    config_b = kernel_config(aid_b, terminal_id="TERMB002", capabilities=b"\xe0\x08\xc8")
    when = datetime(2026, 12, 3, 9, 5, 7)
    for amount, config, aid in ((100, config_a, aid_a), (200, config_b, aid_b),
                                (300, config_a, aid_a)):
        txn = TransactionData(amount=amount, currency_numeric=504, when=when)
        tvr = Tvr()
        tvr.set(TvrBit.NEW_CARD)
        data = terminal_data(config, aid, txn, b"\x01\x02\x03\x04", tvr, Tsi())
        assert data[0x9F33] == config.capabilities
        assert data[0x9F1C] == config.terminal_id.encode()
        assert data[0x9F1B] == aid.floor_limit.to_bytes(4, "big")
        assert data[0x9F02] == bytes.fromhex(f"{amount:012d}")
        assert data[0x95] == bytes(tvr)
        assert (data[0x9A], data[0x9F21]) == (bytes.fromhex("261203"), bytes.fromhex("090507"))
        assert list(data)[:3] == [0x9F02, 0x9F03, 0x81] and list(data)[-1] == 0x9F01


def test_encode_keeps_checking_tags() -> None:
    """The encoder's kept tag bytes never let a bad tag through, before or after a good one."""
    assert tlv.encode(0x9F02, b"\x01") == bytes.fromhex("9F020101")
    assert tlv.encode(1, b"") == b"\x01\x00"
    with pytest.raises(TypeError):
        tlv.encode(True, b"")
    with pytest.raises(ValueError, match="continuation"):
        tlv.encode(0x9F8280, b"")
    assert tlv.encode(0x70, bytes(200))[:3] == bytes.fromhex("7081C8")


def test_tvr_bits_by_member_index_and_mask() -> None:
    """Each TVR/TSI member's index and mask are its (byte, bit) of Book 3 Annex C5/C6."""
    for member in [*TvrBit, *TsiBit]:
        byte, bit = member.value
        assert (member.index, member.mask) == (byte - 1, 1 << (bit - 1))
    tvr = Tvr()
    tvr.set(TvrBit.CDA_FAILED)
    assert bytes(tvr) == bytes.fromhex("0400000000") and TvrBit.CDA_FAILED in tvr
