"""Card data, masking, Luhn and the candidate token sequence (no token needed)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm.cards import (
    HASHED_CANDIDATES,
    CardData,
    candidate_tokens,
    check_pan,
    luhn_valid,
    mask_pan,
)
from tests.hsm.pans import with_check_digit

PAN = "4111111111111111"


@pytest.mark.parametrize(
    ("digits",              "valid"),
    [
        ("4111111111111111",    True),
        ("4111111111111112",    False),
        ("5555555555554444",    True),
        ("378282246310005",     True),
        ("79927398713",         True),
        ("79927398710",         False),
    ],
)
def test_luhn_known_answers(digits: str, valid: bool) -> None:
    """The mod-10 check agrees with the ISO/IEC 7812-1 worked examples and test cards."""
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("pan",                   "message"),
    [
        ("41111111111",           "13 to 19 digits"),
        ("41111111111111111111",  "13 to 19 digits"),
        ("41111111111x1111",      "13 to 19 digits"),
        ("4111111111111112",      "fails the Luhn check"),
    ],
)
def test_check_pan_rejects_without_echoing(pan: str, message: str) -> None:
    """Bad PANs raise ValueError saying why, and never repeat the digits in full."""
    with pytest.raises(ValueError, match=message) as info:
        check_pan(pan)
    assert pan not in str(info.value)


def test_card_data_never_shows_the_pan() -> None:
    """repr and str of CardData show first 6 … last 4 and hide the expiry."""
    card = CardData(pan=PAN, expiry="2612")
    for text in (repr(card), str(card), f"{card}"):
        assert PAN not in text and "2612" not in text
        assert "411111…1111" in text
    assert mask_pan(PAN) == "411111…1111"


@pytest.mark.parametrize("expiry", ["261", "2613", "26a1", "2600"])
def test_card_data_rejects_bad_expiry(expiry: str) -> None:
    """An expiry is 4 digits YYMM with a month 01..12."""
    with pytest.raises(ValueError, match="YYMM"):
        CardData(pan=PAN, expiry=expiry)


@given(st.integers(10**14, 10**18 - 1).map(lambda n: with_check_digit(str(n))),
       st.binary(min_size=32, max_size=32))
def test_every_candidate_keeps_bin_and_last4_and_fails_luhn(pan: str, fingerprint: bytes) -> None:
    """Candidates keep the PAN's first 6 and last 4 digits and its length, and fail Luhn."""
    for token in itertools.islice(candidate_tokens(pan, fingerprint), HASHED_CANDIDATES + 20):
        assert len(token) == len(pan)
        assert token[:6] == pan[:6] and token[-4:] == pan[-4:]
        assert token.isdigit() and not luhn_valid(token)


def test_first_candidate_comes_from_the_hmac() -> None:
    """Candidate 0's middle digits are the fingerprint mod 10^m (Luhn-adjusted if needed)."""
    fingerprint = hashlib.sha256(b"x").digest()
    token = next(candidate_tokens(PAN, fingerprint))
    middle = f"{int.from_bytes(fingerprint, 'big') % 10**6:06d}"
    assert token[6:11] == middle[:5]


def test_sequence_reaches_every_luhn_failing_token() -> None:
    """For a 12-digit PAN the sequence covers all 90 Luhn-failing middles, then ends."""
    pan = with_check_digit("41111100123")
    tokens = set(candidate_tokens(pan, bytes(32)))
    expected = {pan[:6] + f"{m:02d}" + pan[-4:] for m in range(100)}
    expected = {t for t in expected if not luhn_valid(t)}
    assert tokens == expected and len(tokens) == 90
