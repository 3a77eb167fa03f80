"""In-memory stand-ins that ship with the package (DESIGN §7.2).

:class:`InMemoryTokenRegistry` is a complete :class:`hsm.base.TokenRegistry` for tests, the
bench and tools that have no store; the terminal uses its SQLite one. :class:`SoftwareSigner`
is a :class:`hsm.base.Signer` and :class:`SoftwareKeyStore` a :class:`hsm.base.CardKeyStore`
with keys in process memory, for tests of the layers above that must not need a token.
They produce exactly the token's formats (same HMAC input, candidate sequence, vault blob
and DER signatures), so a software store holding the same keys as a token agrees with it
byte for byte. Keys in process memory never belong in a product path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm import vault
from hsm.base import TokenRegistry
from hsm.cards import (
    PAN_DOMAIN,
    CardData,
    CardToken,
    TokenisedCard,
    candidate_tokens,
    check_pan,
    mask_pan,
)
from hsm.errors import KeyMissingError, TokenSpaceExhaustedError, VaultBlobInvalidError
from hsm.keys import KeyPurpose
from hsm.p2pe import encrypt_card

__all__ = ["InMemoryTokenRegistry", "SoftwareKeyStore", "SoftwareSigner"]


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


class SoftwareKeyStore:
    """:class:`hsm.base.CardKeyStore` with its keys in memory (tests and demos only).

    ``tokenisation_keys`` and ``vault_keys`` map version → 32-byte key; the highest version
    is current. Defaults: one random key of each.
    """

    def __init__(
        self,
        registry: TokenRegistry | None = None,
        *,
        tokenisation_keys: dict[int, bytes] | None = None,
        vault_keys: dict[int, bytes] | None = None,
        signer: SoftwareSigner | None = None,
    ) -> None:
        self._registry = registry if registry is not None else InMemoryTokenRegistry()
        self._tok = dict(tokenisation_keys or {1: os.urandom(32)})
        self._vault = dict(vault_keys or {1: os.urandom(32)})
        self._signer = signer or SoftwareSigner()

    @property
    def tokenisation_key_version(self) -> int:
        return max(self._tok)

    @property
    def vault_key_version(self) -> int:
        return max(self._vault)

    @property
    def signing_key_version(self) -> int:
        return self._signer.key_version

    def _mac(self, pan: str, version: int) -> bytes:
        if version not in self._tok:
            raise KeyMissingError(f"etika-tokenisation-v{version}")
        return hmac.new(self._tok[version], PAN_DOMAIN + pan.encode("ascii"),
                        hashlib.sha256).digest()

    def fingerprint(self, pan: str, key_version: int | None = None) -> str:
        check_pan(pan)
        return self._mac(pan, key_version or self.tokenisation_key_version).hex()

    def tokenise_pan(self, pan: str) -> CardToken:
        check_pan(pan)
        version = self.tokenisation_key_version
        digest = self._mac(pan, version)
        token = self._registry.bind(digest.hex(), version, candidate_tokens(pan, digest))
        if token is None:
            raise TokenSpaceExhaustedError(
                f"every token for {mask_pan(pan)} is bound to another card")
        return CardToken(token=token, fingerprint=digest.hex(), key_version=version)

    def tokenise(self, pan: str, expiry: str) -> TokenisedCard:
        card = CardData(pan=pan, expiry=expiry)
        ref = self.tokenise_pan(pan)
        version = self.vault_key_version
        iv = vault.new_iv()
        sealed = AESGCM(self._vault[version]).encrypt(
            iv, vault.plaintext(pan, expiry), vault.associated_data(version, ref.token)
        )
        return TokenisedCard(token=ref.token, fingerprint=ref.fingerprint,
                             key_version=ref.key_version,
                             vault_blob=vault.pack(version, iv, sealed),
                             vault_key_version=version, masked_pan=card.masked_pan)

    def detokenise(self, token: str, vault_blob: bytes) -> CardData:
        parts = vault.unpack(vault_blob)
        key = self._vault.get(parts.key_version)
        if key is None:
            raise KeyMissingError(f"etika-vault-v{parts.key_version}")
        try:
            clear = AESGCM(key).decrypt(parts.iv, parts.ciphertext,
                                        vault.associated_data(parts.key_version, token))
        except InvalidTag as exc:
            raise VaultBlobInvalidError("the vault blob does not authenticate") from exc
        pan, expiry = vault.split_plaintext(clear)
        return CardData(pan=pan, expiry=expiry)

    def encrypt_for_psp(self, token: str, vault_blob: bytes, psp_public_key_pem: bytes,
                        context: bytes = b"") -> bytes:
        return encrypt_card(psp_public_key_pem, self.detokenise(token, vault_blob), context)

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign(data)

    def public_key_pem(self, version: int | None = None) -> bytes:
        return self._signer.public_key_pem(version)

    def signer(self) -> SoftwareSigner:
        return self._signer

    def rotate(self, purpose: KeyPurpose) -> int:
        """Create the next version of ``purpose``'s key, as :meth:`hsm.KeyStore.rotate` does:
        new work uses it, older versions stay held so old blobs and signatures still open."""
        if purpose is KeyPurpose.SIGNING:
            return self._signer.rotate()
        keys = self._tok if purpose is KeyPurpose.TOKENISATION else self._vault
        version = max(keys) + 1
        keys[version] = os.urandom(32)
        return version

    def close(self) -> None:
        """Nothing to release (the real key store logs out of its token here)."""

    def __repr__(self) -> str:
        return (f"<SoftwareKeyStore tokenisation=v{self.tokenisation_key_version} "
                f"vault=v{self.vault_key_version} signing=v{self.signing_key_version}>")
