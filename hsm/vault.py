"""The vault blob: a card's PAN and expiry sealed with AES-256-GCM inside the token.

Format (all integers big-endian)::

    offset  size  field
    0       1     format, 0x01
    1       2     vault key version N (the key labelled ``etika-vault-vN``)
    3       12    IV: 96 random bits (os.urandom), fresh for every blob
    15      n+16  AES-256-GCM(key vN, IV, AAD) of the plaintext, then the 128-bit tag

    plaintext = ASCII "<PAN>=<YYMM>"   (the track-2 field separator)
    AAD       = blob[0:3] || ASCII token

So the associated data binds the blob to its token and its key version (NIST SP 800-38D
§5.2.1.1 AAD): a blob moved to another token, a changed version, IV or ciphertext all fail
the tag check and raise :class:`hsm.errors.VaultBlobInvalidError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hsm.errors import VaultBlobInvalidError

__all__ = ["BLOB_FORMAT", "IV_BYTES", "SealedParts", "associated_data", "pack", "unpack"]

BLOB_FORMAT = 0x01
IV_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 3


@dataclass(frozen=True)
class SealedParts:
    key_version: int
    iv: bytes
    ciphertext: bytes


def new_iv() -> bytes:
    return os.urandom(IV_BYTES)


def header(key_version: int) -> bytes:
    if not 1 <= key_version <= 0xFFFF:
        raise ValueError(f"vault key version out of range: {key_version}")
    return bytes([BLOB_FORMAT]) + key_version.to_bytes(2, "big")


def associated_data(key_version: int, token: str) -> bytes:
    return header(key_version) + token.encode("ascii")


def pack(key_version: int, iv: bytes, ciphertext: bytes) -> bytes:
    return header(key_version) + iv + ciphertext


def unpack(blob: bytes) -> SealedParts:
    """Split a blob; :class:`VaultBlobInvalidError` if it cannot be one."""
    if len(blob) < HEADER_BYTES + IV_BYTES + TAG_BYTES + 1 or blob[0] != BLOB_FORMAT:
        raise VaultBlobInvalidError(
            f"not a vault blob (format {blob[:1].hex() or 'empty'}, {len(blob)} bytes); "
            "the stored record is damaged, the card must be read again",
            length=len(blob),
        )
    version = int.from_bytes(blob[1:3], "big")
    if version == 0:
        raise VaultBlobInvalidError("the vault blob names key version 0; it is damaged")
    return SealedParts(version, blob[3:15], blob[15:])


def plaintext(pan: str, expiry: str) -> bytes:
    return f"{pan}={expiry}".encode("ascii")


def split_plaintext(data: bytes) -> tuple[str, str]:
    pan, sep, expiry = data.decode("ascii").partition("=")
    if not sep:
        raise VaultBlobInvalidError("the vault blob opened but holds no card data; it is damaged")
    return pan, expiry
