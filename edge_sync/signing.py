"""Who signs messages, and how a signature is checked (ECDSA P-256 with SHA-256, DER).

The terminal signs its uplink with its key in the key store (``hsm.KeyStore``, wired by the
CLI through a small adapter); the platform signs downlinks with its own key. Both satisfy
:class:`Signer`. :class:`SoftwareSigner` is a ``cryptography`` EC key in memory: the fake used
by tests and by the platform stand-ins, and the platform's signer when its key is a PEM file.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_sync.errors import SignatureError

__all__ = [
    "ANNOUNCED_WITH",
    "RotatingSigner",
    "Signer",
    "SoftwareSigner",
    "public_key_fingerprint",
    "verify_signature",
]

#: Payload field of a ``keys_rotated`` report naming the (previous) key version to sign it
#: with, so that the platform, which trusts that key, can register the new one by itself.
ANNOUNCED_WITH = "announced_with_key_version"


@runtime_checkable
class Signer(Protocol):
    """Signs bytes with an ECDSA P-256 key; the signature is DER (RFC 3279 ``Ecdsa-Sig-Value``)."""

    @property
    def key_version(self) -> int:
        """Version of the signing key, sent with each message so the receiver picks its key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA signature of ``data`` (hashed with SHA-256)."""
        ...

    def public_key_pem(self) -> bytes:
        """The matching public key, SubjectPublicKeyInfo PEM."""
        ...


@runtime_checkable
class RotatingSigner(Signer, Protocol):
    """A :class:`Signer` whose store keeps older key versions (the token does)."""

    def for_version(self, version: int) -> Signer:
        """A signer bound to key ``version``; ``ValueError`` if it is not held."""
        ...


class SoftwareSigner:
    """An in-memory P-256 key (``cryptography``): tests, simulators and PEM-file keys."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, key_version: int = 1) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise TypeError("SoftwareSigner needs a P-256 (secp256r1) private key")
        self._key = private_key
        self._key_version = key_version

    @classmethod
    def generate(cls, key_version: int = 1) -> SoftwareSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()), key_version)

    @classmethod
    def from_pem(cls, pem: bytes, key_version: int = 1) -> SoftwareSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the PEM does not hold an EC private key")
        return cls(key, key_version)

    @property
    def key_version(self) -> int:
        return self._key_version

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_key_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"SoftwareSigner(P-256, key_version={self._key_version})"


def verify_signature(public_key_pem: bytes | str, data: bytes, signature: bytes) -> None:
    """Check a DER ECDSA/SHA-256 signature; raise :class:`SignatureError` when it does not hold.

    Returns nothing on success (``verify()`` raises, it never returns a bool).
    """
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            "the public key is not a readable PEM; check the configured key", reason="bad key"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("the public key is not an EC key", reason="bad key")
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError(
            "signature does not verify against the expected public key", reason="bad signature"
        ) from exc
    except ValueError as exc:  # cryptography: signature bytes are not valid DER
        raise SignatureError("signature is not valid DER", reason="malformed signature") from exc


def public_key_fingerprint(public_key_pem: bytes | str) -> str:
    """``SHA256:`` and the hex SHA-256 of the key's SubjectPublicKeyInfo (DER), in groups.

    The terminal (``etika hsm public-key``) and the platform (``etika platform
    register-terminal``) both print it, so an operator can see they hold the same key.
    """
    import hashlib

    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError("not a PEM public key") from exc
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest()
    return "SHA256:" + ":".join(digest[i:i + 4] for i in range(0, 32, 4))
