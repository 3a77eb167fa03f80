"""Where the PSP simulators' TEST P2PE keys live (see README.md beside this file)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["KINDS", "private_key_path", "public_key_path"]

KINDS = ("iso8583", "stripe", "paypal")
_HERE = Path(__file__).resolve().parent
_PROFILE_KEYS = _HERE.parents[2] / "firmware-config" / "default" / "p2pe"


def private_key_path(kind: str) -> Path:
    """The simulator's private key for ``kind`` (TEST key, published on purpose)."""
    if kind not in KINDS:
        raise ValueError(f"unknown PSP kind {kind!r}; known: {', '.join(KINDS)}")
    return _HERE / f"{kind}-test.pem"


def public_key_path(kind: str) -> Path:
    """Its public half, as the default profile carries it."""
    if kind not in KINDS:
        raise ValueError(f"unknown PSP kind {kind!r}; known: {', '.join(KINDS)}")
    return _PROFILE_KEYS / f"{kind}-test.pem"
