"""The TLV decoder's bounds on nesting depth and size (issue #17 item 1, EMV 4.4 Book 3 Annex B).

A card can send a thousand nested templates in under 4 KB through ``61xx`` chaining; the
decoder refuses them with ``TlvError`` (offset and depth), the kernel turns that into its
card-data error, and nothing recurses: not the decoder, not ``repr``/``str``, not the
tree walkers.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import ResponseApdu
from drivers.scripted import ScriptedReader
from terminal.emv import tlv
from terminal.emv.config import TransactionData
from terminal.emv.errors import CardDataError, TlvError
from terminal.emv.kernel import EmvKernel, TransactionResult

from .cardkit import QVSDC_PDOL, App, KitCard, TweakReader, kernel_config

WHEN = datetime(2026, 11, 22, 10, 30)


def nested(depth: int, inner: bytes = b"") -> bytes:
    """``depth`` levels of E1 templates around ``inner``, in a 70 record template."""
    data = inner
    for _ in range(depth - 1):
        data = tlv.encode(0xE1, data)
    return tlv.encode(0x70, data)


def hand_built(depth: int) -> tlv.Tlv:
    item = tlv.Tlv(0x9F02, b"\x00\x00\x00\x00\x25\x00")
    for _ in range(depth):
        item = tlv.Tlv(0xE1, b"", [item])
    return item


#: READ RECORD, SFI 1 record 1 (P2 = SFI << 3 | 4); and GET PROCESSING OPTIONS.
READ_SFI1_REC1 = bytes.fromhex("00B2010C")
GPO = bytes.fromhex("80A80000")


class ChainingReader(TweakReader):
    """The kit card, whose answer to one command is sent in ``61xx`` chunks of 256 bytes.

    ``payload`` replaces that answer (``None`` keeps the card's own). The chunks go through
    the real T=0 rules of :class:`drivers.apdu.T0Session`: the card answers ``61xx`` with no
    data, then each GET RESPONSE (``00 C0``) returns up to 256 bytes, with ``61xx`` while
    more are waiting.
    """

    def __init__(self, card: KitCard, command: bytes, payload: bytes | None) -> None:
        super().__init__(card, lambda command, answer, count: answer)
        self.command = command
        self.payload = payload
        self.pending = b""
        self.chained = False
        self.get_responses = 0

    def respond(self, command: bytes) -> ResponseApdu:
        if command[1] == 0xC0 and self.pending:
            self.get_responses += 1
            chunk, self.pending = self.pending[:256], self.pending[256:]
            if self.pending:
                return ResponseApdu(chunk, 0x61, min(len(self.pending), 256) % 256)
            return ResponseApdu(chunk, 0x90, 0x00)
        answer = super().respond(command)
        if command[:4] == self.command and answer.sw == 0x9000 and not self.chained:
            self.chained = True
            self.pending = answer.data if self.payload is None else self.payload
            return ResponseApdu(b"", 0x61, min(len(self.pending), 256) % 256)
        return answer


def chaining_reader(command: bytes, payload: bytes | None, *,
                    contactless: bool = False) -> ChainingReader:
    app = App()
    if contactless:
        app.qvsdc, app.pdol = True, QVSDC_PDOL
    return ChainingReader(KitCard(app), command, payload)


async def transact(reader: ChainingReader, *, contactless: bool = False) -> TransactionResult:
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=2500, currency_numeric=504, when=WHEN)
    return await EmvKernel(kernel_config()).transact(session, data, contactless=contactless)


# -- the decoder -----------------------------------------------------------------------------


def test_depth_error_says_offset_tag_and_depth() -> None:
    """One level past MAX_DEPTH → TlvError at the offending template's offset, with its depth."""
    data = nested(tlv.MAX_DEPTH + 1)
    with pytest.raises(TlvError) as info:
        tlv.decode(data)
    error = info.value
    assert error.fields["depth"] == tlv.MAX_DEPTH + 1
    assert error.tag == 0xE1
    # Every header here is 2 bytes (E1 len), so level n starts at 2 × (n − 1).
    assert error.offset == 2 * tlv.MAX_DEPTH
    assert f"at offset {error.offset}" in str(error) and "depth 17" in str(error)


def test_max_depth_itself_decodes() -> None:
    """Exactly MAX_DEPTH levels is accepted, and the innermost value is reachable."""
    inner = tlv.encode(0x9F02, bytes.fromhex("000000002500"))
    items = tlv.decode(nested(tlv.MAX_DEPTH, inner))
    assert tlv.find(items, 0x9F02) is not None
    assert tlv.flatten(items) == {0x9F02: bytes.fromhex("000000002500")}


def test_thousand_levels_under_4k_is_a_tlv_error() -> None:
    """The issue's input: 1,000 levels in under 4 KB → TlvError, not RecursionError."""
    data = nested(1000)
    assert len(data) < 4096
    with pytest.raises(TlvError, match="nested more than 16 deep"):
        tlv.decode(data)
    with pytest.raises(TlvError):
        list(tlv.iter_tlv(data))


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(1, 60), tag=st.sampled_from([0xE1, 0x61, 0xA5, 0xBF0C, 0xFF20]),
       padding=st.binary(max_size=3).map(lambda b: bytes(len(b))))
def test_any_depth_decodes_or_says_how_deep(depth: int, tag: int, padding: bytes) -> None:
    """Up to MAX_DEPTH levels decode; deeper → TlvError with depth MAX_DEPTH + 1, in the input."""
    data = b"\x9F\x02\x01\x07"
    for _ in range(depth):
        data = padding + tlv.encode(tag, data)
    if depth <= tlv.MAX_DEPTH:
        items = tlv.decode(data)
        assert tlv.flatten(items) == {0x9F02: b"\x07"}
        assert len(list(tlv.find_all(items, tag))) == depth
        assert len(repr(items)) < 1000
    else:
        with pytest.raises(TlvError) as info:
            tlv.decode(data)
        assert info.value.fields["depth"] == tlv.MAX_DEPTH + 1
        assert 0 <= info.value.offset < len(data) and info.value.tag == tag


def test_size_bound_is_checked_before_decoding() -> None:
    """An input over MAX_SIZE is refused whole, at offset 0; exactly MAX_SIZE is accepted."""
    value = bytes(tlv.MAX_SIZE - 5)  # DF01 82 xxxx: 5 header bytes
    data = tlv.encode(0xDF01, value)
    assert len(data) == tlv.MAX_SIZE
    (item,) = tlv.decode(data)
    assert item.value == value
    with pytest.raises(TlvError) as info:
        tlv.decode(data + b"\x00")
    assert info.value.offset == 0 and "more than the 16384" in str(info.value)


def test_repr_and_str_of_a_deep_hand_built_tree_are_bounded() -> None:
    """repr and str of a 5,000-level tree stop after a few levels and mask nothing they show."""
    item = hand_built(5000)
    assert repr(item) == str(item)
    assert len(str(item)) < 200 and "…1" in repr(item)


def test_walkers_do_not_recurse_on_a_deep_hand_built_tree() -> None:
    """find, find_all and flatten reach the bottom of a 5,000-level tree without recursion."""
    item = hand_built(5000)
    assert tlv.find([item], 0x9F02) is not None
    assert len(list(tlv.find_all([item], 0xE1))) == 5000
    assert tlv.flatten([item]) == {0x9F02: bytes.fromhex("000000002500")}


def test_walkers_keep_depth_first_order_and_first_occurrence() -> None:
    """flatten keeps the first occurrence depth first; find_all yields in document order."""
    # 70 { E1 { 5F2A=01 }  9F02=02  5F2A=03 }
    items = tlv.decode(bytes.fromhex("700EE1045F2A01019F0201025F2A0103"))
    assert [i.value for i in tlv.find_all(items, 0x5F2A)] == [b"\x01", b"\x03"]
    assert tlv.flatten(items) == {0x5F2A: b"\x01", 0x9F02: b"\x02"}


# -- the kernel, through 61xx chaining -------------------------------------------------------


async def test_deep_record_through_chaining_is_a_card_data_error() -> None:
    """A 1,000-level READ RECORD answer sent in 61xx chunks → CardDataError caused by TlvError."""
    deep = nested(1000)
    assert len(deep) < 4096
    reader = chaining_reader(READ_SFI1_REC1, deep)
    with pytest.raises(CardDataError, match="nested more than") as info:
        await transact(reader)
    assert reader.get_responses == (len(deep) + 255) // 256
    cause = info.value.__cause__
    assert isinstance(cause, TlvError)
    assert cause.fields["depth"] == tlv.MAX_DEPTH + 1


async def test_deep_gpo_answer_through_chaining_is_a_card_data_error() -> None:
    """A contactless GPO answer of 1,000 nested templates in 61xx chunks → CardDataError."""
    deep = b"\x77" + nested(1000)[1:]
    assert len(deep) < 4096
    reader = chaining_reader(GPO, deep, contactless=True)
    with pytest.raises(CardDataError, match="nested more than") as info:
        await transact(reader, contactless=True)
    assert reader.get_responses == (len(deep) + 255) // 256
    assert isinstance(info.value.__cause__, TlvError)


async def test_the_chaining_fake_really_chains() -> None:
    """The card's own record 1, sent through 61xx and GET RESPONSE, gives a normal result."""
    reader = chaining_reader(READ_SFI1_REC1, None)
    result = await transact(reader)
    assert reader.get_responses == 1
    assert any(command[:4] == bytes.fromhex("00C00000") for command in reader.sent)
    assert result.decision and result.pan_masked.endswith("0010")
    assert issubclass(ChainingReader, ScriptedReader)
