"""The platform's own signing key (EC P-256), and terminal public keys read for the registry.

The platform signs every downlink. Its key is a PKCS#8 PEM file under the data directory,
generated on first use with owner-only permissions; terminals are given the public half
(``etika platform key``) to verify config, blacklist, FX and command downlinks. A pure
``cryptography`` key is enough here: the platform runs in a data centre, not on a terminal.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import load_pem_x509_certificate

from edge_sync.platform.errors import RegistryError
from edge_sync.signing import SoftwareSigner

__all__ = ["load_or_create_signing_key", "public_key_pem", "read_terminal_public_key"]


def load_or_create_signing_key(path: Path) -> SoftwareSigner:
    """The platform key at ``path``; created (mode 0600) when the file does not exist yet."""
    path = Path(path)
    if path.exists():
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise RegistryError(
                f"cannot read the platform signing key {path}: {exc.strerror}; it must be "
                "the PEM file etika wrote there (move what is in the way)",
                path=str(path),
            ) from exc
        try:
            return SoftwareSigner.from_pem(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise RegistryError(
                f"the platform signing key {path} is not a P-256 PEM private key; "
                "move it away to generate a new one (terminals must then get the new public key)",
                path=str(path),
            ) from exc
    signer = SoftwareSigner.generate()
    # O_EXCL: two workers starting together must not both write a key.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.parent.is_dir():
            return load_or_create_signing_key(path)
        raise RegistryError(
            f"cannot create the platform signing key {path}: {path.parent} is not a "
            "directory; move that file aside (or use another --data-dir)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise RegistryError(
            f"cannot create the platform signing key {path}: {exc.strerror or exc}; "
            "check --data-dir / ETIKA_DATA_DIR",
            path=str(path),
        ) from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(signer.private_key_pem())
    return signer


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
