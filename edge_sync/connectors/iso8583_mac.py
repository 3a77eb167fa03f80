"""The ISO 8583 message authentication code: DE 64 (or DE 128 with a secondary bitmap).

The MAC covers the whole message as sent — MTI, bitmaps and every field before the MAC
field — so a changed amount, code or STAN on the wire fails verification (ISO 8583:1987
§4.3.8 / ISO 9807). The algorithm is AES-CMAC (NIST SP 800-38B) truncated to its first 8
bytes, written as 16 hexadecimal characters; the key is the terminal's MAC key for that
acquirer, in the key store (:class:`hsm.mac.Pkcs11Cmac`) — never in the profile.

Building a message: :func:`mac_field` says which field carries the MAC; the message is
encoded with 16 placeholder characters there, and :func:`seal` replaces them with the MAC of
everything before. Reading one: :func:`check` recomputes it over the received bytes.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = ["MAC_HEX_LENGTH", "MacError", "MessageAuthenticator", "SoftwareCmac", "check",
           "mac_field", "placeholder", "seal"]

#: DE 64 / DE 128: 8 bytes written as 16 hexadecimal characters.
MAC_HEX_LENGTH = 16


class MacError(ValueError):
    """The message has no MAC, or its MAC does not verify (internal: mapped per request)."""


class MessageAuthenticator(Protocol):
    """Computes the 8-byte MAC of a message under one acquirer's key."""

    def mac(self, data: bytes) -> bytes: ...


class SoftwareCmac:
    """AES-CMAC from a clear key: the acquirer simulator's side, and tests."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("an AES-CMAC key is 16, 24 or 32 bytes")
        self._key = key

    def mac(self, data: bytes) -> bytes:
        cmac = CMAC(algorithms.AES(self._key))
        cmac.update(data)
        return cmac.finalize()[:8]

    def __repr__(self) -> str:
        return "SoftwareCmac(<key>)"


def mac_field(fields: dict[str, str]) -> str:
    """``"128"`` when the message has a secondary bitmap (a field above 64), else ``"64"``."""
    return "128" if any(k.isdigit() and int(k) > 64 for k in fields) else "64"


def placeholder(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` with the MAC field present (16 zeros), to be encoded then :func:`seal`-ed."""
    return {**fields, mac_field(fields): "0" * MAC_HEX_LENGTH}


def seal(encoded: bytes, authenticator: MessageAuthenticator) -> bytes:
    """The encoded message (MAC field last, as placeholder) with its real MAC in place."""
    body = encoded[:-MAC_HEX_LENGTH]
    return body + authenticator.mac(body).hex().upper().encode("ascii")


def check(raw: bytes, fields: dict[str, str], authenticator: MessageAuthenticator) -> None:
    """``MacError`` unless ``raw`` (decoded as ``fields``) ends with the MAC of the rest."""
    field = mac_field(fields)
    sent = fields.get(field)
    if sent is None or len(sent) != MAC_HEX_LENGTH or not raw.endswith(sent.encode("ascii",
                                                                                  "replace")):
        raise MacError(f"the answer carries no MAC (DE {field})")
    expected = authenticator.mac(raw[:-MAC_HEX_LENGTH]).hex().upper()
    if not hmac.compare_digest(expected, sent.upper()):
        raise MacError(f"the MAC (DE {field}) of the answer does not verify")
