"""The PIN pad link layer: STX message ETX LRC, ACK/NAK/EOT, noise (drivers/PROTOCOL.md §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.pinpad.frame import (
    BadFrame,
    Control,
    Frame,
    FrameDecoder,
    encode_frame,
    lrc,
)

messages = st.lists(st.sampled_from([0x1C, *range(0x20, 0x7F)]), min_size=0, max_size=240).map(
    bytes
)


@pytest.mark.parametrize(
    ("message", "frame_hex"),
    [
        (b"11",          "02313103" + "03"),
        (b"72",          "02373203" + "06"),
        (b"Z2HELLO",     "025A3248454C4C4F03" + "29"),
        (b"91.0",        "0239312E3003" + "15"),
    ],
)  # fmt: skip
def test_encode_known_frames(message: bytes, frame_hex: str) -> None:
    """Frames are STX, message, ETX and the XOR of message and ETX (PROTOCOL.md examples)."""
    assert encode_frame(message).hex().upper() == frame_hex


def test_lrc_covers_etx_not_stx() -> None:
    """The LRC is the XOR of every byte after STX up to and including ETX."""
    assert lrc(b"11\x03") == 0x31 ^ 0x31 ^ 0x03


@pytest.mark.parametrize(
    "message",
    [b"\x02", b"\x03", b"\x06", b"A\x15B", b"\xff", b"x" * 241],
)  # fmt: skip
def test_encode_refuses_bytes_a_message_cannot_hold(message: bytes) -> None:
    """Control bytes, 8-bit bytes and over-long messages never go into a packet."""
    with pytest.raises(ValueError):
        encode_frame(message)


@given(messages)
def test_round_trip(message: bytes) -> None:
    """Any valid message decodes back from its frame."""
    assert FrameDecoder().feed(encode_frame(message)) == [Frame(message)]


@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_round_trip_any_split_with_noise(batch: list[bytes], data: st.DataObject) -> None:
    """Frames survive any chunking and any noise (bytes other than control bytes) between them."""
    noise = st.binary(max_size=8).map(
        lambda b: bytes(x for x in b if x not in (0x02, 0x03, 0x04, 0x06, 0x15))
    )
    stream = b"".join(data.draw(noise) + encode_frame(m) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += decoder.feed(stream[start:end])
    assert events == [Frame(m) for m in batch]


@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    """Arbitrary input only ever yields link events, never an exception."""
    for event in FrameDecoder().feed(data):
        assert isinstance(event, Control | Frame | BadFrame)


def test_bad_lrc_is_a_bad_frame() -> None:
    """A corrupt LRC yields BadFrame (to be NAKed), and the next good frame still decodes."""
    frame = bytearray(encode_frame(b"11"))
    frame[-1] ^= 0x55
    events = FrameDecoder().feed(bytes(frame) + encode_frame(b"72"))
    assert events == [BadFrame("LRC mismatch"), Frame(b"72")]


def test_control_bytes_outside_packets() -> None:
    """ACK, NAK and EOT are events; other bytes before STX are counted as noise."""
    decoder = FrameDecoder()
    assert decoder.feed(b"\x06zz\x15\x00\x04") == [Control.ACK, Control.NAK, Control.EOT]
    assert decoder.noise_bytes == 3


def test_stx_inside_packet_restarts() -> None:
    """An STX inside a packet loses the old packet and starts a new one."""
    events = FrameDecoder().feed(b"\x0211" + encode_frame(b"72"))
    assert events == [BadFrame("STX inside a packet"), Frame(b"72")]


def test_overlong_packet_is_dropped() -> None:
    """A packet longer than any message is abandoned rather than buffered forever."""
    events = FrameDecoder().feed(b"\x02" + b"A" * 300 + encode_frame(b"11"))
    assert BadFrame("packet longer than the longest message") in events
    assert events[-1] == Frame(b"11")


def test_frame_repr_hides_the_message() -> None:
    """A frame's repr shows its command code only (a Z62 carries the PAN)."""
    text = repr(Frame(b"Z62.4761739001010119\x1c100"))
    assert "4761739001010119" not in text
