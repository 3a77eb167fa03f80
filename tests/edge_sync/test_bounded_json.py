"""The sync package's bounded JSON (#17 items 8-9): each bound is refused with
MessageFormatError and a reason naming it; canonical JSON refuses what it cannot carry."""

from __future__ import annotations

import pytest

from edge_sync.bounded_json import (
    MAX_DEPTH,
    canonical_json,
    decode_json,
    storable_text,
    validate_json,
)
from edge_sync.errors import MessageFormatError
from edge_sync.messages import Ack


@pytest.mark.parametrize(
    ("raw",                                       "reason"),
    [
        (b"{not json",                             "not json"),
        (b"\xff\xfe",                               "not json"),
        (b'{"x": NaN}',                             "not json"),
        (b"[Infinity]",                             "not json"),
        (b"9" * 5000,                               "not json"),
        (b"[" * 100_000 + b"]" * 100_000,           "nested too deep"),
        (b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), "nested too deep"),
        (b" " * 101,                                "too large"),
    ],
    ids=["syntax", "not-utf8", "nan", "infinity", "huge-integer", "deep", "just-past-depth",
         "too-large"],
)
def test_decode_refuses_each_bound_with_its_reason(raw: bytes, reason: str) -> None:
    """Each refusal is MessageFormatError carrying the bound it broke."""
    with pytest.raises(MessageFormatError) as caught:
        decode_json(raw, "test message", max_bytes=100 if reason == "too large" else 10**7)
    assert caught.value.fields["reason"] == reason
    assert "test message" in caught.value.message


def test_decode_takes_json_at_the_depth_bound() -> None:
    """Containers nested MAX_DEPTH levels below the top one are still a message."""
    assert decode_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "m") is not None


@pytest.mark.parametrize(
    ("obj",                                  "reason"),
    [
        ({"reason": "\udfff"},               "invalid unicode"),
        ({"\ud800": 1},                      "invalid unicode"),
        ({"x": float("nan")},                "not json"),
        ({"x": 10**5000},                    "not json"),
        ({"x": b"bytes"},                    "not json"),
    ],
    ids=["surrogate-value", "surrogate-key", "nan", "huge-integer", "bytes"],
)
def test_canonical_json_refuses_what_nothing_valid_could_sign(obj: dict[str, object],
                                                              reason: str) -> None:
    """Canonicalisation refuses a lone surrogate, NaN or a non-JSON value with the
    project's error instead of UnicodeEncodeError or ValueError."""
    with pytest.raises(MessageFormatError) as caught:
        canonical_json(obj)
    assert caught.value.fields["reason"] == reason


def test_canonical_json_leaves_out_the_signature_and_sorts() -> None:
    """The signed bytes: sorted keys, no spaces, UTF-8, no signature field."""
    assert canonical_json({"b": "é", "a": 1, "signature": "x"}) == '{"a":1,"b":"é"}'.encode()


def test_validate_json_maps_pydantic_refusals() -> None:
    """A lone surrogate or deep nesting read by pydantic's parser is MessageFormatError."""
    for raw in (b'{"message_id": "\\udfff", "status": "accepted"}',
                b'{"reason": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        with pytest.raises(MessageFormatError, match="ack does not match"):
            validate_json(Ack, raw, "ack")


def test_storable_text_replaces_what_cannot_be_stored() -> None:
    """Lone surrogates become U+FFFD, NUL becomes '?', and the text is cut."""
    assert storable_text("a\udfffb\x00c" + "x" * 100, 6) == "a\ufffdb?c" + "x"
    assert storable_text("plain") == "plain"
