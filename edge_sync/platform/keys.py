"""Terminal public keys read for the platform's registry (EC P-256, from a key or certificate).

The platform's own signing key is not here: it lives in the platform's PKCS#11 token
(:mod:`edge_sync.platform.signing_key`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import load_pem_x509_certificate

from edge_sync.platform.errors import RegistryError

__all__ = ["public_key_pem", "read_terminal_public_key"]


def read_terminal_public_key(path: Path) -> str:
    """A terminal's P-256 public key as SubjectPublicKeyInfo PEM, from a key or certificate."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read the public key file {path}: {exc.strerror}") from exc
    try:
        return public_key_pem(data)
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc.message}", path=str(path)) from exc


def public_key_pem(data: bytes) -> str:
    """Normalise a PEM public key or certificate to the SubjectPublicKeyInfo PEM of its key."""
    key: object
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RegistryError("holds neither a PEM public key nor a PEM certificate") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise RegistryError("terminal keys must be EC P-256")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
