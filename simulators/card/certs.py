"""EMV offline data authentication objects, signed as EMV 4.4 Book 2 lays them out.

Each builder returns the object the card stores or sends; the layouts (header ``6A``,
format byte, hash algorithm ``01`` = SHA-1, trailer ``BC``) are:

* issuer public key certificate, tag ``90`` — Book 2 §5.3 Table 6 (format ``02``), signed by
  the CA key; the part of the issuer modulus that does not fit is the remainder, tag ``92``;
* signed static application data, tag ``93`` — Book 2 §5.4 Table 7 (format ``03``), signed by
  the issuer key, for SDA;
* ICC public key certificate, tag ``9F46`` — Book 2 §6.4 Table 14 (format ``04``), signed by
  the issuer key, hashing the static data to be authenticated too; remainder ``9F48``;
* signed dynamic application data, tag ``9F4B`` — Book 2 §6.5.2 Table 17 (format ``05``)
  for DDA and fDDA, and §6.6.1 Table 19 for CDA (same layout, ICC dynamic data carrying
  the cryptogram and the transaction data hash code).

The matching recovery functions (``recover_*``) are what a terminal does; the tests use
them to prove that certificates recover with the CA public key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from simulators.card.pki import RsaKey

__all__ = [
    "IccCertificate",
    "IssuerCertificate",
    "icc_certificate",
    "issuer_certificate",
    "pan_field",
    "recover",
    "signed_dynamic_data",
    "signed_static_data",
]

HEADER, TRAILER, SHA1, RSA = 0x6A, 0xBC, 0x01, 0x01


def _sign(key: RsaKey, body: bytes, hashed_extra: bytes) -> bytes:
    """``6A ‖ body ‖ SHA-1(body ‖ hashed_extra) ‖ BC`` signed with ``key``."""
    digest = hashlib.sha1(body + hashed_extra).digest()  # noqa: S324 - Book 2 hash algorithm 01
    block = bytes([HEADER]) + body + digest + bytes([TRAILER])
    return key.sign(block)


def recover(public: RsaKey, signed: bytes) -> bytes:
    """The recovered block (header to trailer), as a terminal computes it."""
    if len(signed) != public.size:
        raise ValueError(f"signed data is {len(signed)} bytes, key is {public.size}")
    return public.recover(signed)


def pan_field(pan: str, length: int) -> bytes:
    """PAN digits, padded on the right with ``F`` nibbles to ``length`` bytes (cn format)."""
    digits = pan + "F" * (length * 2 - len(pan))
    return bytes.fromhex(digits)


@dataclass(frozen=True)
class IssuerCertificate:
    certificate: bytes  # tag 90
    remainder: bytes  # tag 92 (may be empty: then the card omits the tag)
    exponent: bytes  # tag 9F32


@dataclass(frozen=True)
class IccCertificate:
    certificate: bytes  # tag 9F46
    remainder: bytes  # tag 9F48
    exponent: bytes  # tag 9F47


def issuer_certificate(
    ca: RsaKey, issuer: RsaKey, issuer_id: str, expiry_mmyy: str, serial: bytes
) -> IssuerCertificate:
    """Issuer public key certificate (Book 2 §5.3, Table 6), signed by ``ca``.

    ``issuer_id`` is the leftmost 3–8 PAN digits (padded with ``F`` to 4 bytes).
    """
    if len(serial) != 3:
        raise ValueError("the certificate serial number is 3 bytes")
    room = ca.size - 36
    modulus = issuer.modulus
    leftmost, remainder = modulus[:room], modulus[room:]
    leftmost = leftmost + b"\xbb" * (room - len(leftmost))
    body = (
        bytes([0x02])
        + pan_field(issuer_id, 4)
        + bytes.fromhex(expiry_mmyy)
        + serial
        + bytes([SHA1, RSA, issuer.size, len(issuer.exponent)])
        + leftmost
    )
    return IssuerCertificate(
        _sign(ca, body, remainder + issuer.exponent), remainder, issuer.exponent
    )


def icc_certificate(
    issuer: RsaKey,
    icc: RsaKey,
    pan: str,
    expiry_mmyy: str,
    serial: bytes,
    static_data: bytes,
) -> IccCertificate:
    """ICC public key certificate (Book 2 §6.4, Table 14), signed by the issuer key.

    The hash covers the static data to be authenticated (records flagged by the AFL, and
    the AIP when ``9F4A`` lists it), binding the card's records to its key.
    """
    room = issuer.size - 42
    modulus = icc.modulus
    leftmost, remainder = modulus[:room], modulus[room:]
    leftmost = leftmost + b"\xbb" * (room - len(leftmost))
    body = (
        bytes([0x04])
        + pan_field(pan, 10)
        + bytes.fromhex(expiry_mmyy)
        + serial
        + bytes([SHA1, RSA, icc.size, len(icc.exponent)])
        + leftmost
    )
    certificate = _sign(issuer, body, remainder + icc.exponent + static_data)
    return IccCertificate(certificate, remainder, icc.exponent)


def signed_static_data(
    issuer: RsaKey, data_authentication_code: bytes, static_data: bytes
) -> bytes:
    """Signed static application data, tag 93 (Book 2 §5.4, Table 7), for SDA."""
    if len(data_authentication_code) != 2:
        raise ValueError("the data authentication code (9F45) is 2 bytes")
    body = bytes([0x03, SHA1]) + data_authentication_code + b"\xbb" * (issuer.size - 26)
    return _sign(issuer, body, static_data)


def signed_dynamic_data(icc: RsaKey, icc_dynamic_data: bytes, terminal_data: bytes) -> bytes:
    """Signed dynamic application data, tag 9F4B (Book 2 §6.5.2 Table 17, §6.6.1 Table 19).

    ``icc_dynamic_data`` starts with the ICC dynamic number's length and value; for CDA it
    continues with the CID, the application cryptogram and the transaction data hash code.
    ``terminal_data`` is hashed but not carried: the DDOL data for DDA, the unpredictable
    number for CDA, and UN ‖ amount ‖ currency ‖ 9F69 for fDDA.
    """
    pad = icc.size - len(icc_dynamic_data) - 25
    if pad < 0:
        raise ValueError("ICC dynamic data does not fit in the ICC key")
    body = (
        bytes([0x05, SHA1, len(icc_dynamic_data)]) + icc_dynamic_data + b"\xbb" * pad
    )
    return _sign(icc, body, terminal_data)
