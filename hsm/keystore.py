"""The terminal's key store: tokenisation, vault, P2PE hand-off, signing, rotation, import.

One :class:`KeyStore` wraps one :class:`hsm.session.SessionOwner` (the logged-in session)
and a :class:`hsm.base.TokenRegistry` (the fingerprint → token map). It is safe to call
from any number of threads; :class:`AsyncKeyStore` is the same API for asyncio callers.

Tokenisation (all inside the token except the digit arithmetic)::

    fingerprint = HMAC-SHA256(etika-tokenisation-vN, "etika-pan:" || PAN)     (hex)
    token       = registry.bind(fingerprint, N, candidate_tokens(PAN, fingerprint))

so the token is deterministic for a PAN and key version, keeps the first 6 and last 4
digits, and fails Luhn (:mod:`hsm.cards`); the vault blob is AES-256-GCM under
``etika-vault-vM`` (:mod:`hsm.vault`). Key versions in use are read when the store opens
and after :meth:`KeyStore.rotate`; a rotation by another process is seen after
:meth:`KeyStore.refresh`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypedDict, TypeVar

import pkcs11
import pkcs11.exceptions as p11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.mechanisms import GCMParams

from hsm import keys as k
from hsm import session as sess
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
from hsm.config import HsmSettings
from hsm.errors import KeyImportFailedError, KeyMissingError, TokenSpaceExhaustedError
from hsm.keys import KeyInfo, KeyPurpose
from hsm.p2pe import encrypt_card
from hsm.session import SessionOwner
from hsm.signing import raw_to_der

__all__ = [
    "PAN_DOMAIN",
    "AsyncKeyStore",
    "KeyInfoJson",
    "KeyStore",
    "KeyStoreStatus",
    "KeyStoreStatusJson",
    "TokenSigner",
]

P = ParamSpec("P")
T = TypeVar("T")


class KeyInfoJson(TypedDict):
    """One key as ``etika hsm status --json`` prints it (:class:`~hsm.keys.KeyInfo`)."""

    purpose: str
    label: str
    version: int
    key_type: str
    object_class: str
    kcv: str
    current: bool
    attributes: dict[str, bool]


class KeyStoreStatusJson(TypedDict):
    """``etika hsm status --json``: the token and its keys."""

    module: str
    token_label: str
    token_serial: str
    manufacturer: str
    model: str
    keys: list[KeyInfoJson]


@dataclass(frozen=True)
class KeyStoreStatus:
    """``etika hsm status``: the token and every key, never key material."""

    module: str
    token_label: str
    token_serial: str
    manufacturer: str
    model: str
    keys: list[KeyInfo]

    def as_dict(self) -> KeyStoreStatusJson:
        return {"module": self.module, "token_label": self.token_label,
                "token_serial": self.token_serial, "manufacturer": self.manufacturer,
                "model": self.model,
                "keys": [{"purpose": k.purpose, "label": k.label, "version": k.version,
                          "key_type": k.key_type, "object_class": k.object_class,
                          "kcv": k.kcv, "current": k.current, "attributes": dict(k.attributes)}
                         for k in self.keys]}


class KeyStore:
    """Keys by label and version in one PKCS#11 token; see the module docstring."""

    def __init__(self, owner: SessionOwner, registry: TokenRegistry | None = None) -> None:
        self._owner = owner
        self._registry = registry
        self._handles: dict[tuple[KeyPurpose, int, ObjectClass], Any] = {}
        self._versions: dict[KeyPurpose, list[int]] = {}
        self.refresh()

    @classmethod
    def open(cls, settings: HsmSettings, registry: TokenRegistry | None = None) -> KeyStore:
        """Open the token; without a ``registry`` the store can do all but tokenise."""
        owner = SessionOwner.open(settings)
        try:
            return cls(owner, registry)
        except BaseException:
            owner.close()
            raise

    # --- plumbing --------------------------------------------------------------------

    @property
    def owner(self) -> SessionOwner:
        return self._owner

    def refresh(self) -> None:
        """Re-read which key versions the token holds (after another process rotated)."""
        self._versions = self._owner.run(k.list_keys, where="listing the keys")
        self._handles.clear()

    def key_versions(self) -> dict[KeyPurpose, list[int]]:
        return {purpose: list(versions) for purpose, versions in self._versions.items()}

    def current_version(self, purpose: KeyPurpose) -> int:
        versions = self._versions.get(purpose)
        if not versions:
            raise KeyMissingError(k.key_label(purpose, 1))
        return versions[-1]

    @property
    def tokenisation_key_version(self) -> int:
        return self.current_version(KeyPurpose.TOKENISATION)

    @property
    def vault_key_version(self) -> int:
        return self.current_version(KeyPurpose.VAULT)

    @property
    def signing_key_version(self) -> int:
        return self.current_version(KeyPurpose.SIGNING)

    def _key(self, session: pkcs11.Session, purpose: KeyPurpose, version: int,
             object_class: ObjectClass | None = None) -> Any:
        # Only ever called under PKCS11_LOCK (inside SessionOwner.run).
        cls = object_class or (ObjectClass.PRIVATE_KEY if purpose is KeyPurpose.SIGNING
                               else ObjectClass.SECRET_KEY)
        handle = self._handles.get((purpose, version, cls))
        if handle is None:
            handle = k.find_key(session, purpose, version, cls)
            self._handles[(purpose, version, cls)] = handle
        return handle

    # --- tokenisation ----------------------------------------------------------------

    def fingerprint(self, pan: str, key_version: int | None = None) -> str:
        """HMAC-SHA256 of the PAN under the tokenisation key (hex): velocity, blacklists."""
        check_pan(pan)
        version = key_version or self.tokenisation_key_version
        return self._fingerprint(pan, version).hex()

    def _fingerprint(self, pan: str, version: int) -> bytes:
        # The hot path of tokenisation: bench/hsm.py holds it to 70 % of a bare HMAC loop,
        # so nothing here is built per call that is only needed when something fails.
        message = PAN_DOMAIN + pan.encode("ascii")

        def mac(session: pkcs11.Session) -> bytes:
            key = self._handles.get((KeyPurpose.TOKENISATION, version, ObjectClass.SECRET_KEY))
            if key is None:
                key = self._key(session, KeyPurpose.TOKENISATION, version)
            return bytes(key.sign(message, mechanism=Mechanism.SHA256_HMAC))

        return self._owner.run(mac, where="computing the tokenisation HMAC",
                               key_label=k.key_label(KeyPurpose.TOKENISATION, version))

    def tokenise_pan(self, pan: str) -> CardToken:
        """The PAN's token and fingerprint under the current tokenisation key (no vault)."""
        check_pan(pan)
        version = self.tokenisation_key_version
        digest = self._fingerprint(pan, version)
        fingerprint = digest.hex()
        if self._registry is None:
            raise TypeError("this key store was opened without a TokenRegistry; pass the "
                            "store's (terminal.store.token_map) to tokenise")
        token = self._registry.bind(fingerprint, version, candidate_tokens(pan, digest))
        if token is None:
            raise TokenSpaceExhaustedError(
                f"every token for {mask_pan(pan)} is bound to another card; rotate the "
                "tokenisation key (etika hsm rotate tokenisation)",
                key_version=version,
            )
        return CardToken(token=token, fingerprint=fingerprint, key_version=version)

    def tokenise(self, pan: str, expiry: str) -> TokenisedCard:
        """Token, fingerprint, vault blob and key versions of a card; works offline."""
        card = CardData(pan=pan, expiry=expiry)
        ref = self.tokenise_pan(card.pan)
        vault_version = self.vault_key_version
        return TokenisedCard(
            token=ref.token,
            fingerprint=ref.fingerprint,
            key_version=ref.key_version,
            vault_blob=self._seal(ref.token, card, vault_version),
            vault_key_version=vault_version,
            masked_pan=card.masked_pan,
        )

    # --- vault -----------------------------------------------------------------------

    def _seal(self, token: str, card: CardData, version: int) -> bytes:
        label = k.key_label(KeyPurpose.VAULT, version)
        iv = vault.new_iv()
        params = GCMParams(iv, vault.associated_data(version, token), 128)
        data = vault.plaintext(card.pan, card.expiry)

        def encrypt(session: pkcs11.Session) -> bytes:
            key = self._key(session, KeyPurpose.VAULT, version)
            return bytes(key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))

        ciphertext = self._owner.run(encrypt, where=f"sealing with {label}", key_label=label)
        return vault.pack(version, iv, ciphertext)

    def detokenise(self, token: str, vault_blob: bytes) -> CardData:
        """Open a vault blob. Only for the authorised path (:meth:`encrypt_for_psp`).

        Raises :class:`hsm.errors.VaultBlobInvalidError` if the blob, its IV, its key version or
        the token it was sealed for changed; :class:`KeyMissingError` if its key was deleted.
        """
        parts = vault.unpack(vault_blob)
        label = k.key_label(KeyPurpose.VAULT, parts.key_version)
        params = GCMParams(parts.iv, vault.associated_data(parts.key_version, token), 128)

        def decrypt(session: pkcs11.Session) -> bytes:
            key = self._key(session, KeyPurpose.VAULT, parts.key_version)
            return bytes(key.decrypt(parts.ciphertext, mechanism=Mechanism.AES_GCM,
                                     mechanism_param=params))

        clear = self._owner.run(decrypt, where=f"opening a vault blob with {label}",
                                key_label=label, opening_vault=True)
        pan, expiry = vault.split_plaintext(clear)
        return CardData(pan=pan, expiry=expiry)

    def encrypt_for_psp(self, token: str, vault_blob: bytes, psp_public_key_pem: bytes,
                        context: bytes = b"") -> bytes:
        """The authorised path: open the vault and encrypt the card to the PSP (P2PE)."""
        return encrypt_card(psp_public_key_pem, self.detokenise(token, vault_blob), context)

    # --- signing ---------------------------------------------------------------------

    def sign(self, data: bytes, version: int | None = None) -> bytes:
        """DER ECDSA P-256/SHA-256 signature of ``data`` with the current signing key, or
        with signing key ``version`` (a rotation is announced under the previous key)."""
        version = version or self.signing_key_version
        label = k.key_label(KeyPurpose.SIGNING, version)
        # SoftHSM 2.6.1 has no CKM_ECDSA_SHA256: hash here, sign the digest with CKM_ECDSA.
        digest = hashlib.sha256(data).digest()

        def ecdsa(session: pkcs11.Session) -> bytes:
            key = self._key(session, KeyPurpose.SIGNING, version)
            return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))

        raw = self._owner.run(ecdsa, where=f"signing with {label}", key_label=label)
        return raw_to_der(raw)

    def public_key_pem(self, version: int | None = None) -> bytes:
        """PEM SubjectPublicKeyInfo of signing key ``version`` (default: current)."""
        version = version or self.signing_key_version
        label = k.key_label(KeyPurpose.SIGNING, version)
        held = self.key_versions().get(KeyPurpose.SIGNING, [])
        if held and version not in held:
            # A version that was never created: rotating makes the next one, init would not.
            raise KeyMissingError(label, remedy=(
                f"the token holds signing key version(s) {', '.join(map(str, held))}; "
                "etika hsm rotate signing creates the next one"))
        der = self._owner.run(lambda s: k.public_key_der(s, version),
                              where=f"reading the public key {label}", key_label=label)
        return k.public_key_pem_from_der(der)

    def signer(self) -> TokenSigner:
        """A :class:`hsm.base.Signer` (= ``edge_sync.signing.Signer``) signing in the token."""
        return TokenSigner(self)

    # --- administration --------------------------------------------------------------

    def rotate(self, purpose: KeyPurpose) -> int:
        """Create the next version of ``purpose``'s key; new work uses it. Returns it."""
        def create(session: pkcs11.Session) -> int:
            # The next version is read from the token under the lock, not from this
            # store's cache: another process (etika hsm rotate) may have rotated since.
            version = _next_version(session, purpose)
            k.generate_key(session, purpose, version)
            return version

        version = self._owner.run(create, where=f"generating the next {purpose.value} key")
        self.refresh()
        return version

    def ensure_keys(self) -> list[str]:
        """Generate version 1 of every purpose that has no key yet; the labels created."""
        created = []
        for purpose in KeyPurpose:
            if not self._versions.get(purpose):
                self._owner.run(functools.partial(_generate_first, purpose=purpose),
                                where=f"generating {k.key_label(purpose, 1)}")
                created.append(k.key_label(purpose, 1))
        self.refresh()
        return created

    def import_wrapped(self, purpose: KeyPurpose, wrapped: bytes, transport_key: bytes,
                       expected_kcv: str | None = None) -> KeyInfo:
        """Unwrap an RFC 3394 AES-key-wrapped key as the next version of ``purpose``.

        The transport key enters the token as a session object (gone when the session
        ends); the imported key is created sensitive and non-extractable, with the same
        template as a generated one. If ``expected_kcv`` is given and differs, the new key
        is destroyed and :class:`KeyImportFailedError` raised.
        """
        if purpose is KeyPurpose.SIGNING:
            raise ValueError("signing keys are generated in the token, never imported")
        if len(transport_key) not in (16, 24, 32):
            raise ValueError("a transport key is an AES key of 16, 24 or 32 bytes")
        def unwrap(session: pkcs11.Session) -> KeyInfo:
            version = _next_version(session, purpose)
            label = k.key_label(purpose, version)
            kek = session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: transport_key,
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.UNWRAP: True,
                Attribute.LABEL: "etika-transport-session",
            })
            try:
                key = kek.unwrap_key(  # type: ignore[attr-defined]
                    ObjectClass.SECRET_KEY, k.secret_key_type(purpose), wrapped,
                    id=label.encode(), label=label, store=True, capabilities=MechanismFlag(0),
                    mechanism=Mechanism.AES_KEY_WRAP, template=k.secret_template(purpose),
                )
            except (p11.GeneralError, p11.FunctionFailed, p11.EncryptedDataInvalid,
                    p11.EncryptedDataLenRange) as exc:
                # SoftHSM 2.6.1 reports a failed RFC 3394 integrity check as
                # CKR_GENERAL_ERROR: here it can only mean a wrong KEK or a damaged file.
                raise KeyImportFailedError(
                    f"the wrapped {purpose.value} key did not unwrap ({type(exc).__name__}): "
                    "check the transport key and the import file",
                    pkcs11_error=type(exc).__name__,
                ) from exc
            finally:
                kek.destroy()
            kcv = k.token_kcv(session, purpose, version)
            if expected_kcv is not None and kcv.lower() != expected_kcv.lower():
                key.destroy()
                raise KeyImportFailedError(
                    f"the imported {purpose.value} key has KCV {kcv}, expected "
                    f"{expected_kcv.lower()}: wrong transport key or wrong file; not imported",
                    kcv=kcv,
                )
            return k.describe_key(session, purpose, version, current=True)

        info = self._owner.run(unwrap, where=f"importing a {purpose.value} key")
        self.refresh()
        return info

    def status(self) -> KeyStoreStatus:
        token = self._owner.token

        def describe(session: pkcs11.Session) -> list[KeyInfo]:
            found = k.list_keys(session)
            return [
                k.describe_key(session, purpose, version, current=version == versions[-1])
                for purpose, versions in found.items()
                for version in versions
            ]

        return KeyStoreStatus(
            module=self._owner.settings.module,
            token_label=token.label,
            token_serial=bytes(token.serial).decode("ascii", "replace").strip(),
            manufacturer=token.manufacturer_id,
            model=token.model,
            keys=self._owner.run(describe, where="describing the keys"),
        )

    def close(self) -> None:
        self._handles.clear()
        self._owner.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        versions = ", ".join(f"{p.value}=v{v[-1]}" for p, v in self._versions.items() if v)
        return f"<KeyStore {self._owner.settings.token_label!r} {versions}>"


class TokenSigner:
    """:class:`hsm.base.Signer` over a :class:`KeyStore`: the current signing key, or one
    fixed ``version`` (see :meth:`for_version`)."""

    def __init__(self, store: KeyStore, version: int | None = None) -> None:
        self._store = store
        self._version = version

    @property
    def key_version(self) -> int:
        return self._version or self._store.signing_key_version

    def sign(self, data: bytes) -> bytes:
        return self._store.sign(data, self._version)

    def public_key_pem(self) -> bytes:
        return self._store.public_key_pem(self._version)

    def for_version(self, version: int) -> TokenSigner:
        """A signer bound to signing key ``version`` (which the token must still hold)."""
        if version not in self._store.key_versions().get(KeyPurpose.SIGNING, []):
            raise ValueError(f"the token holds no signing key version {version}")
        return TokenSigner(self._store, version)

    def __repr__(self) -> str:
        return f"<TokenSigner {self._store!r}>"


def _next_version(session: pkcs11.Session, purpose: KeyPurpose) -> int:
    return (k.list_keys(session)[purpose] or [0])[-1] + 1


def _generate_first(session: pkcs11.Session, purpose: KeyPurpose) -> None:
    k.generate_key(session, purpose, 1)


class AsyncKeyStore:
    """The :class:`KeyStore` API for asyncio: each call runs on the ``hsm-worker`` thread."""

    def __init__(self, store: KeyStore) -> None:
        self.sync = store

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await sess.run_in_worker(functools.partial(fn, *args, **kwargs))

    @property
    def signing_key_version(self) -> int:
        return self.sync.signing_key_version

    async def tokenise(self, pan: str, expiry: str) -> TokenisedCard:
        return await self._call(self.sync.tokenise, pan, expiry)

    async def tokenise_pan(self, pan: str) -> CardToken:
        return await self._call(self.sync.tokenise_pan, pan)

    async def fingerprint(self, pan: str) -> str:
        return await self._call(self.sync.fingerprint, pan)

    async def detokenise(self, token: str, vault_blob: bytes) -> CardData:
        return await self._call(self.sync.detokenise, token, vault_blob)

    async def encrypt_for_psp(self, token: str, vault_blob: bytes, psp_public_key_pem: bytes,
                              context: bytes = b"") -> bytes:
        return await self._call(self.sync.encrypt_for_psp, token, vault_blob,
                                psp_public_key_pem, context)

    async def sign(self, data: bytes) -> bytes:
        return await self._call(self.sync.sign, data)

    async def public_key_pem(self, version: int | None = None) -> bytes:
        return await self._call(self.sync.public_key_pem, version)

    async def rotate(self, purpose: KeyPurpose) -> int:
        return await self._call(self.sync.rotate, purpose)

    async def status(self) -> KeyStoreStatus:
        return await self._call(self.sync.status)
