"""Signature formats and the verify helper (pure ``cryptography``, no token needed).

SoftHSM 2.6.1 has no ``CKM_ECDSA_SHA256``, so the key store hashes with SHA-256 in Python
and signs the digest with ``CKM_ECDSA``, which returns the raw ``r || s`` of PKCS#11 v2.40
§2.3.1 (two 32-byte big-endian integers for P-256). Signatures leave the key store DER-
encoded as X9.62 ``Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`` (RFC 3279
§2.2.3), the form ``cryptography`` and OpenSSL verify.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from hsm.errors import SignatureInvalidError

__all__ = ["der_to_raw", "raw_to_der", "verify_signature"]

P256_BYTES = 32


def raw_to_der(raw: bytes) -> bytes:
    """PKCS#11 ``r || s`` → DER ``Ecdsa-Sig-Value``."""
    if len(raw) != 2 * P256_BYTES:
        raise ValueError(f"a P-256 raw signature is 64 bytes, got {len(raw)}")
    r = int.from_bytes(raw[:P256_BYTES], "big")
    s = int.from_bytes(raw[P256_BYTES:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(P256_BYTES, "big") + s.to_bytes(P256_BYTES, "big")


def verify_signature(public_key_pem: bytes, data: bytes, signature: bytes) -> None:
    """Check a DER ECDSA P-256/SHA-256 ``signature`` of ``data``; raise if it does not verify.

    Raises :class:`SignatureInvalidError` for a wrong or malformed signature, ``ValueError`` if
    ``public_key_pem`` is not a P-256 public key. Never returns a bool (DESIGN §7.4).
    """
    try:
        public = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ValueError("the public key is not an EC P-256 key")
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureInvalidError(
            f"the signature ({len(signature)} bytes) does not verify under the given P-256 "
            "public key: the data or the signature changed, or another key signed it",
            length=len(data),
        ) from exc
