"""BER-TLV codec (EMV 4.4 Book 3 Annex B)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.emv import tlv
from terminal.emv.errors import TlvError


@st.composite
def tags(draw: st.DrawFn, constructed: bool | None = None) -> int:
    """Well-formed tags of 1 to 3 bytes (first byte never 00, EMV padding)."""
    cls = draw(st.integers(0, 3)) << 6
    cons = (draw(st.booleans()) if constructed is None else constructed) << 5
    size = draw(st.integers(1, 3))
    if size == 1:
        low = draw(st.integers(0, 0x1E))
        first = cls | cons | low
        if first == 0:
            first = 0x01
        return first
    first = cls | cons | 0x1F
    middle = [draw(st.integers(0x80, 0xFF)) for _ in range(size - 2)]
    last = draw(st.integers(0x01, 0x7F))
    return int.from_bytes(bytes([first, *middle, last]), "big")


primitive_objects = st.tuples(tags(constructed=False), st.binary(max_size=300))


@given(tag=tags(constructed=False), value=st.binary(max_size=600))
def test_single_object_round_trips(tag: int, value: bytes) -> None:
    """encode then decode gives back a primitive tag and its value, short or long form."""
    (item,) = tlv.decode(tlv.encode(tag, value))
    assert (item.tag, item.value) == (tag, value)


@given(children=st.lists(primitive_objects, max_size=8), tag=tags(constructed=True))
def test_constructed_round_trips(children: list[tuple[int, bytes]], tag: int) -> None:
    """A constructed object decodes into its children, in order, repetitions kept."""
    data = tlv.encode_constructed(tag, children)
    (item,) = tlv.decode(data)
    assert [(c.tag, c.value) for c in item.children] == children
    assert item.encode() == data


@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_tlv_error(data: bytes) -> None:
    """Any input either decodes or raises TlvError with an offset inside the input."""
    try:
        tlv.decode(data)
    except TlvError as exc:
        assert 0 <= exc.offset <= len(data)


@pytest.mark.parametrize(
    ("hex_in",                      "offset", "why"),
    [
        ("9F",                      0,        "multi-byte tag truncated"),
        ("9F02",                    2,        "length missing"),
        ("9F0205000000",            0,        "value overruns the data"),
        ("9F028200",                2,        "long-form length truncated"),
        ("5A80",                    1,        "indefinite length not allowed"),
        ("5A85000000000001",        1,        "length on 5 bytes (overlong)"),
        ("9F81828384850101",        0,        "tag longer than 4 bytes"),
        ("70095A0A41111111111111",  2,        "nested value overruns its parent"),
        ("6F03A5018800",            5,        "nested: missing length reported absolutely"),
    ],
)
def test_malformed_input_names_its_offset(hex_in: str, offset: int, why: str) -> None:
    """Truncated, overlong and malformed input raise TlvError at the right offset."""
    with pytest.raises(TlvError) as info:
        tlv.decode(bytes.fromhex(hex_in))
    assert info.value.offset == offset, why


@pytest.mark.parametrize(
    ("tag",     "value_len", "expected_prefix"),
    [
        (0x5A,    8,           "5a08"),
        (0x9F02,  6,           "9f0206"),
        (0x70,    127,         "707f"),
        (0x70,    128,         "708180"),
        (0x70,    256,         "70820100"),
        (0x70,    65536,       "7083010000"),
        (0xBF0C,  3,           "bf0c03"),
    ],
)
def test_encoding_is_minimal(tag: int, value_len: int, expected_prefix: str) -> None:
    """Lengths use the shortest definite form (Annex B2)."""
    assert tlv.encode(tag, bytes(value_len)).hex().startswith(expected_prefix)


@pytest.mark.parametrize("tag", [0, -1, 0x1F, 0x9F80, 0x5F8080, 0x0102])
def test_malformed_tags_are_refused_on_encode(tag: int) -> None:
    """A tag whose continuation bits are wrong is a caller mistake (ValueError)."""
    with pytest.raises(ValueError):
        tlv.encode(tag, b"")


def test_padding_zero_bytes_are_skipped() -> None:
    """00 bytes before, between and after objects carry no meaning (Annex B)."""
    items = tlv.decode(bytes.fromhex("00005A0112009F360200010000"))
    assert [(i.tag, i.value.hex()) for i in items] == [(0x5A, "12"), (0x9F36, "0001")]


def test_non_minimal_length_is_accepted() -> None:
    """Cards emit 81xx for short values; the decoder accepts it."""
    (item,) = tlv.decode(bytes.fromhex("50810341424300"))
    assert item.value == b"ABC"


def test_unknown_proprietary_tags_decode() -> None:
    """Proprietary tags (DF7F, BF6x…) decode like any other."""
    items = tlv.decode(bytes.fromhex("DF7F0101BF6103DF0100"))
    assert items[0].tag == 0xDF7F
    assert items[1].children[0].tag == 0xDF01


def test_find_and_flatten() -> None:
    """find() searches depth first; flatten() keeps the first occurrence of each tag."""
    data = bytes.fromhex("6F1A840E315041592E5359532E4444463031A5088801015F2D02656E")
    items = tlv.decode(data)
    assert tlv.find(items, 0x88) is not None
    assert tlv.find(items, 0x88).value == b"\x01"  # type: ignore[union-attr]
    assert tlv.flatten(items)[0x5F2D] == b"en"
    assert tlv.find(items, 0x9F38) is None


def test_repr_masks_sensitive_values() -> None:
    """A PAN inside a Tlv never shows in its repr."""
    (item,) = tlv.decode(bytes.fromhex("5A084761739001010010"))
    assert "4761739001010010" not in repr(item)
    assert "masked" in repr(item)
