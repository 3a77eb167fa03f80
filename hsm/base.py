"""What the key store needs from above, and what it offers to the layers above it.

``hsm`` imports nothing of ours but ``etika_errors`` (DESIGN §2), so what it needs from the
terminal is declared here as a :class:`typing.Protocol` and handed in: the terminal's
SQLite store implements :class:`TokenRegistry` (``terminal/store/token_map.py``), and
:class:`hsm.fake.InMemoryTokenRegistry` implements it for tests and tools.

:class:`CardKeyStore` is what the terminal asks of the key store for cards and signatures:
:class:`hsm.keystore.KeyStore` does it in the PKCS#11 token, :class:`hsm.fake.SoftwareKeyStore`
in process memory with the same formats (tests and demos without a token).

:class:`Signer` is what ``edge_sync`` and the journal need to sign checkpoints, sync
batches and PoP records; :meth:`hsm.keystore.KeyStore.signer` gives one that signs in the
token, :class:`hsm.fake.SoftwareSigner` one with a key in memory (tests only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from hsm.cards import CardData, CardToken, TokenisedCard

__all__ = ["CardKeyStore", "Signer", "TokenRegistry"]


@runtime_checkable
class TokenRegistry(Protocol):
    """The fingerprint → token map that makes tokens unique.

    Six middle digits cannot hold an HMAC without collisions, so two PANs may draw the same
    first candidate; the registry binds each fingerprint to exactly one token and each token
    to exactly one fingerprint, across every key version.
    """

    def bind(self, fingerprint: str, key_version: int, candidates: Iterable[str]) -> str | None:
        """The token bound to ``(fingerprint, key_version)``; binds one if there is none.

        If the pair is already bound, return its token without consuming ``candidates``.
        Otherwise bind and return the first candidate no other fingerprint holds, atomically
        (two concurrent callers with the same fingerprint get the same token). Return
        ``None`` if every candidate is taken.
        """
        ...


@runtime_checkable
class Signer(Protocol):
    """Signs bytes with the terminal's key: ECDSA P-256 over SHA-256, DER signatures.

    The same shape as ``edge_sync.signing.Signer`` (``key_version``, ``sign``,
    ``public_key_pem``), so :meth:`hsm.KeyStore.signer` can be handed to the sync engine
    as is.
    """

    @property
    def key_version(self) -> int:
        """Version of the key :meth:`sign` uses now; send it beside every signature."""
        ...

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA P-256/SHA-256 signature of ``data`` (X9.62 ``Ecdsa-Sig-Value``)."""
        ...

    def public_key_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo of the key :meth:`sign` uses now."""
        ...


@runtime_checkable
class CardKeyStore(Protocol):
    """Tokenisation, vault, the P2PE hand-off and signing, as the terminal uses them."""

    @property
    def signing_key_version(self) -> int: ...

    def tokenise(self, pan: str, expiry: str) -> TokenisedCard:
        """Token, fingerprint, vault blob and key versions of a card (offline)."""
        ...

    def tokenise_pan(self, pan: str) -> CardToken:
        """Token and fingerprint only (velocity checks, blacklists)."""
        ...

    def fingerprint(self, pan: str, key_version: int | None = None) -> str: ...

    def detokenise(self, token: str, vault_blob: bytes) -> CardData:
        """Open a vault blob: only on the authorised path to the PSP."""
        ...

    def encrypt_for_psp(self, token: str, vault_blob: bytes, psp_public_key_pem: bytes,
                        context: bytes = b"") -> bytes:
        """Open a vault blob and encrypt the card for one PSP (:mod:`hsm.p2pe`)."""
        ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_pem(self, version: int | None = None) -> bytes: ...

    def signer(self) -> Signer: ...
