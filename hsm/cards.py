"""Card data as the key store sees it, and the pure half of tokenisation.

Clear card data exists only inside :class:`CardData`, whose ``repr``/``str`` show the
masked PAN (first 6 … last 4, PCI DSS 3.4's display limit). Tokens (ISO/IEC 7812 layout
kept so that BIN routing and receipts still work) look like PANs with the same first 6 and
last 4 digits, their middle digits taken from the tokenisation HMAC, and **fail** the Luhn
check (ISO/IEC 7812-1 annex B) on purpose, so a token can never be taken for a card.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "HASHED_CANDIDATES",
    "PAN_DOMAIN",
    "CardData",
    "CardToken",
    "TokenisedCard",
    "candidate_tokens",
    "check_pan",
    "luhn_valid",
    "mask_pan",
]

#: Candidates drawn from hashes of the fingerprint before the exhaustive sweep starts.
HASHED_CANDIDATES = 64

#: Domain prefix of the tokenisation HMAC: fingerprint = HMAC-SHA256(key, PAN_DOMAIN || PAN).
PAN_DOMAIN = b"etika-pan:"


# Digit bytes to their value, and to the Luhn value of the doubled digit (2d, minus 9 if
# over 9); bytes.translate + sum is ~4x faster than a Python loop, and tokenisation's
# overhead over the bare HMAC is what bench/hsm.py measures.
_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812-1 annex B (mod-10) check over ASCII digits, check digit last."""
    data = digits.encode("ascii")
    total = sum(data[-1::-2].translate(_VALUE)) + sum(data[-2::-2].translate(_DOUBLED))
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits, the rest hidden: ``411111…1111``; a number too short for
    that to hide anything keeps only its last 4 (``…1111``)."""
    if len(pan) >= 13:
        return f"{pan[:6]}…{pan[-4:]}"
    return f"…{pan[-4:]}" if len(pan) > 4 else "…"


def check_pan(pan: str) -> None:
    """``ValueError`` unless ``pan`` is 13–19 digits (ISO/IEC 7812-1) and passes Luhn; the PAN
    is not echoed."""
    if not isinstance(pan, str):
        raise TypeError(f"a PAN is a str of digits, not {type(pan).__name__}")
    if not (13 <= len(pan) <= 19) or not pan.isascii() or not pan.isdigit():
        raise ValueError(f"a PAN is 13 to 19 digits (ISO/IEC 7812-1); got {len(pan)} characters")
    if not luhn_valid(pan):
        raise ValueError(
            f"the PAN {mask_pan(pan)} fails the Luhn check: mistyped, or already a token"
        )


def check_expiry(expiry: str) -> None:
    if not (len(expiry) == 4 and expiry.isascii() and expiry.isdigit()
            and 1 <= int(expiry[2:]) <= 12):
        raise ValueError("an expiry date is 4 digits YYMM")


@dataclass(frozen=True)
class CardData:
    """A clear PAN and expiry (YYMM); never printed, logged or stored as such."""

    pan: str = field(repr=False)
    expiry: str = field(repr=False)

    def __post_init__(self) -> None:
        check_pan(self.pan)
        check_expiry(self.expiry)

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    def __repr__(self) -> str:
        return f"CardData(pan={self.masked_pan!r}, expiry='••••')"

    __str__ = __repr__


@dataclass(frozen=True)
class CardToken:
    """A PAN's token and fingerprint under tokenisation key ``key_version``."""

    token: str
    #: The full HMAC-SHA256 of the PAN (hex), for velocity checks and blacklists.
    fingerprint: str
    key_version: int


@dataclass(frozen=True)
class TokenisedCard:
    """Everything the terminal stores about a card: no clear card data."""

    token: str
    fingerprint: str
    #: Version of the tokenisation key that made ``token`` and ``fingerprint``.
    key_version: int
    #: AES-GCM blob of the PAN and expiry (format in :mod:`hsm.vault`).
    vault_blob: bytes = field(repr=False)
    #: Version of the vault key that sealed ``vault_blob`` (also in the blob's header).
    vault_key_version: int
    masked_pan: str


def _luhn_failing(first6: str, middle: str, last4: str) -> str:
    # Changing one digit by +1 (mod 10) always changes the Luhn sum mod 10, doubled
    # position or not (digit -> 2d mod 9 is a bijection on 0..9), so the result fails.
    token = first6 + middle + last4
    if luhn_valid(token):
        last = (int(middle[-1]) + 1) % 10
        token = first6 + middle[:-1] + str(last) + last4
    return token


def candidate_tokens(pan: str, fingerprint: bytes) -> Iterator[str]:
    """The deterministic sequence of Luhn-failing tokens a PAN may take, best first.

    Candidate 0 takes its middle digits straight from the HMAC ``fingerprint`` (as a big-
    endian integer mod 10^m, m = len(pan) − 10); candidates 1…63 from SHA-256(fingerprint ‖
    k); then every middle value in turn from candidate 0's, so that the sequence reaches
    every free token of this first-6/last-4 pair before it ends.
    """
    first6, last4 = pan[:6], pan[-4:]
    width = len(pan) - 10
    space = 10**width
    start = int.from_bytes(fingerprint, "big") % space
    yield _luhn_failing(first6, f"{start:0{width}d}", last4)
    for k in range(1, HASHED_CANDIDATES):
        digest = hashlib.sha256(fingerprint + k.to_bytes(4, "big")).digest()
        value = int.from_bytes(digest, "big") % space
        yield _luhn_failing(first6, f"{value:0{width}d}", last4)
    for step in range(1, space):
        value = (start + step) % space
        yield _luhn_failing(first6, f"{value:0{width}d}", last4)
