"""Key labels, versions, templates, generation and key check values.

Every key is found by its label ``etika-<purpose>-v<N>``; the current version of a purpose
is the highest ``N`` present, and rotation creates ``N + 1`` (old versions stay, so old
vault blobs still open and old signatures still verify).

========================  ===============================  ============================
purpose                   object                           allowed use
========================  ===============================  ============================
``tokenisation``          generic secret, 256 bits          ``CKA_SIGN`` (HMAC-SHA256) only
``vault``                 AES-256                           ``CKA_ENCRYPT``/``CKA_DECRYPT``
``signing``               EC P-256 key pair                 private: ``CKA_SIGN`` only
========================  ===============================  ============================

Secret and private keys are created ``CKA_SENSITIVE=true``, ``CKA_EXTRACTABLE=false``,
``CKA_PRIVATE=true`` and ``CKA_TOKEN=true``: their value never leaves the token.

Key check value (KCV), as ``etika hsm status`` prints it: the first 3 bytes, in hex, of

* AES keys: AES-ECB encryption of one zero block (16 bytes ``00``) — the classic
  (ANSI X9.24 / "legacy") KCV that HSM vendors print;
* HMAC keys: HMAC-SHA256 over one zero block (16 bytes ``00``);
* EC key pairs (no secret to check): SHA-256 of the DER SubjectPublicKeyInfo.

:func:`software_kcv` computes the same values from clear key bytes, for the platform side
of a key import.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

__all__ = [
    "KeyInfo",
    "KeyPurpose",
    "current_version",
    "describe_key",
    "find_key",
    "generate_key",
    "key_label",
    "list_keys",
    "parse_label",
    "public_key_der",
    "software_kcv",
]

ZERO_BLOCK = bytes(16)
_LABEL = re.compile(r"^etika-(tokenisation|vault|signing)-v([1-9][0-9]*)$")


class KeyPurpose(enum.StrEnum):
    TOKENISATION = "tokenisation"
    VAULT = "vault"
    SIGNING = "signing"


@functools.lru_cache(maxsize=256)
def key_label(purpose: KeyPurpose, version: int) -> str:
    if version < 1:
        raise ValueError(f"key versions start at 1, got {version}")
    return f"etika-{purpose.value}-v{version}"


def parse_label(label: str) -> tuple[KeyPurpose, int] | None:
    match = _LABEL.match(label)
    if match is None:
        return None
    return KeyPurpose(match.group(1)), int(match.group(2))


_SECRET_COMMON: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
}


def secret_template(purpose: KeyPurpose) -> dict[Attribute, Any]:
    """Attributes of a secret key of ``purpose``: only the uses it needs."""
    uses = {
        Attribute.SIGN: purpose is KeyPurpose.TOKENISATION,
        Attribute.VERIFY: False,
        Attribute.ENCRYPT: purpose is KeyPurpose.VAULT,
        Attribute.DECRYPT: purpose is KeyPurpose.VAULT,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    return {**_SECRET_COMMON, **uses}


def secret_key_type(purpose: KeyPurpose) -> KeyType:
    if purpose is KeyPurpose.TOKENISATION:
        return KeyType.GENERIC_SECRET
    if purpose is KeyPurpose.VAULT:
        return KeyType.AES
    raise ValueError(f"{purpose.value} keys are key pairs, not secret keys")


def generate_key(session: pkcs11.Session, purpose: KeyPurpose, version: int) -> None:
    """Create version ``version`` of the ``purpose`` key inside the token."""
    label = key_label(purpose, version)
    key_id = label.encode()
    if purpose is KeyPurpose.SIGNING:
        params = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        params.generate_keypair(
            id=key_id,
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.TOKEN: True, Attribute.VERIFY: True,
                             Attribute.PRIVATE: False},
            private_template={**_SECRET_COMMON, Attribute.SIGN: True, Attribute.DERIVE: False,
                              Attribute.DECRYPT: False, Attribute.UNWRAP: False},
        )
        return
    session.generate_key(
        secret_key_type(purpose),
        256,
        id=key_id,
        label=label,
        store=True,
        capabilities=MechanismFlag(0),
        template=secret_template(purpose),
    )


def list_keys(session: pkcs11.Session) -> dict[KeyPurpose, list[int]]:
    """Versions present per purpose, ascending (private key for signing)."""
    found: dict[KeyPurpose, set[int]] = {purpose: set() for purpose in KeyPurpose}
    for cls in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY):
        for obj in session.get_objects({Attribute.CLASS: cls}):
            parsed = parse_label(str(obj[Attribute.LABEL]))
            if parsed is None:
                continue
            purpose, version = parsed
            is_secret = cls is ObjectClass.SECRET_KEY
            if is_secret == (purpose is not KeyPurpose.SIGNING):
                found[purpose].add(version)
    return {purpose: sorted(versions) for purpose, versions in found.items()}


def current_version(session: pkcs11.Session, purpose: KeyPurpose) -> int | None:
    versions = list_keys(session)[purpose]
    return versions[-1] if versions else None


def find_key(session: pkcs11.Session, purpose: KeyPurpose, version: int,
             object_class: ObjectClass | None = None) -> Any:
    """The key object; python-pkcs11's ``NoSuchKey`` (mapped to ``KeyMissingError``) if absent."""
    if object_class is None:
        object_class = (ObjectClass.PRIVATE_KEY if purpose is KeyPurpose.SIGNING
                        else ObjectClass.SECRET_KEY)
    return session.get_key(object_class=object_class, label=key_label(purpose, version))


def public_key_der(session: pkcs11.Session, version: int) -> bytes:
    """DER SubjectPublicKeyInfo of signing key pair ``version``."""
    public = find_key(session, KeyPurpose.SIGNING, version, ObjectClass.PUBLIC_KEY)
    return bytes(encode_ec_public_key(public))


def token_kcv(session: pkcs11.Session, purpose: KeyPurpose, version: int) -> str:
    """The key check value of a key in the token (see the module docstring)."""
    if purpose is KeyPurpose.SIGNING:
        return hashlib.sha256(public_key_der(session, version)).hexdigest()[:6]
    key = find_key(session, purpose, version)
    if purpose is KeyPurpose.VAULT:
        block = key.encrypt(ZERO_BLOCK, mechanism=Mechanism.AES_ECB)
    else:
        block = key.sign(ZERO_BLOCK, mechanism=Mechanism.SHA256_HMAC)
    return bytes(block)[:3].hex()


def software_kcv(purpose: KeyPurpose, key: bytes) -> str:
    """The KCV of clear key bytes, computed outside any token (platform side of an import)."""
    if purpose is KeyPurpose.VAULT:
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
        return (encryptor.update(ZERO_BLOCK) + encryptor.finalize())[:3].hex()
    if purpose is KeyPurpose.TOKENISATION:
        return hmac.new(key, ZERO_BLOCK, hashlib.sha256).digest()[:3].hex()
    raise ValueError("signing keys are generated in the token, never imported")


@dataclass(frozen=True)
class KeyInfo:
    """What ``etika hsm status`` shows of one key: never key material."""

    purpose: str
    label: str
    version: int
    key_type: str
    object_class: str
    kcv: str
    current: bool
    attributes: dict[str, bool]


_SHOWN = {
    "sensitive": Attribute.SENSITIVE,
    "extractable": Attribute.EXTRACTABLE,
    "always_sensitive": Attribute.ALWAYS_SENSITIVE,
    "never_extractable": Attribute.NEVER_EXTRACTABLE,
    "local": Attribute.LOCAL,
    "sign": Attribute.SIGN,
    "encrypt": Attribute.ENCRYPT,
    "decrypt": Attribute.DECRYPT,
    "wrap": Attribute.WRAP,
    "unwrap": Attribute.UNWRAP,
}


def describe_key(session: pkcs11.Session, purpose: KeyPurpose, version: int,
                 current: bool) -> KeyInfo:
    key = find_key(session, purpose, version)
    attributes = {}
    for name, attr in _SHOWN.items():
        try:
            attributes[name] = bool(key[attr])
        except pkcs11.exceptions.AttributeTypeInvalid:
            continue  # e.g. CKA_ENCRYPT does not exist on an EC private key
    if purpose is KeyPurpose.SIGNING:
        key_type = "EC P-256"
    else:
        key_type = f"{'AES' if purpose is KeyPurpose.VAULT else 'GENERIC_SECRET'}-256"
    return KeyInfo(
        purpose=purpose.value,
        label=key_label(purpose, version),
        version=version,
        key_type=key_type,
        object_class=key[Attribute.CLASS].name,
        kcv=token_kcv(session, purpose, version),
        current=current,
        attributes=attributes,
    )


def public_key_pem_from_der(der: bytes) -> bytes:
    public = serialization.load_der_public_key(der)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
