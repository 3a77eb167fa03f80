"""In-memory stand-ins that ship with the package (DESIGN §7.2).

:class:`InMemoryTokenRegistry` is a complete :class:`hsm.base.TokenRegistry` for tests, the
bench and tools that have no store; the terminal uses its SQLite one. :class:`SoftwareSigner`
is a :class:`hsm.base.Signer` with a key in process memory, for tests of the layers above
that must not need a token; it never belongs in a product path.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["InMemoryTokenRegistry", "SoftwareSigner"]


class InMemoryTokenRegistry:
    """Fingerprint → token map in two dicts under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_fingerprint: dict[tuple[str, int], str] = {}
        self._taken: dict[str, tuple[str, int]] = {}

    def bind(self, fingerprint: str, key_version: int, candidates: Iterable[str]) -> str | None:
        with self._lock:
            bound = self._by_fingerprint.get((fingerprint, key_version))
            if bound is not None:
                return bound
            for token in candidates:
                if token not in self._taken:
                    self._taken[token] = (fingerprint, key_version)
                    self._by_fingerprint[(fingerprint, key_version)] = token
                    return token
            return None

    def __len__(self) -> int:
        return len(self._taken)


class SoftwareSigner:
    """ECDSA P-256/SHA-256 with a key held in memory (tests only)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None,
                 version: int = 1) -> None:
        self._keys = {version: private_key or ec.generate_private_key(ec.SECP256R1())}
        self._version = version

    @property
    def key_version(self) -> int:
        return self._version

    def rotate(self) -> int:
        self._version += 1
        self._keys[self._version] = ec.generate_private_key(ec.SECP256R1())
        return self._version

    def sign(self, data: bytes) -> bytes:
        return self._keys[self._version].sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self, version: int | None = None) -> bytes:
        key = self._keys[self._version if version is None else version]
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        pem = self.public_key_pem()
        return f"<SoftwareSigner v{self._version} {hashlib.sha256(pem).hexdigest()[:8]}>"
