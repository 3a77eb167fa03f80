"""Importing tokenisation and vault keys wrapped under the transport key (RFC 3394)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm import KeyPurpose, KeyStore
from hsm.errors import KeyImportFailedError
from hsm.fake import InMemoryTokenRegistry
from hsm.keys import software_kcv
from hsm.keystore import PAN_DOMAIN
from hsm.transport import TEST_TRANSPORT_KEY, parse_import_file, wrap_for_import

pytestmark = pytest.mark.hsm

PAN = "4761739001010119"


@pytest.fixture
def store(hsm_keystore: KeyStore) -> KeyStore:
    return KeyStore(hsm_keystore.owner, InMemoryTokenRegistry())


def test_imported_tokenisation_key_gives_the_platforms_fingerprints(store: KeyStore) -> None:
    """Two terminals importing one wrapped key compute the fingerprint the platform computes."""
    clear = os.urandom(32)
    delivery = parse_import_file(wrap_for_import(KeyPurpose.TOKENISATION, clear).to_json())
    info = store.import_wrapped(delivery.purpose, delivery.wrapped, TEST_TRANSPORT_KEY,
                                delivery.kcv)
    assert info.kcv == software_kcv(KeyPurpose.TOKENISATION, clear) == delivery.kcv
    assert info.current and store.tokenisation_key_version == info.version
    assert info.attributes["sensitive"] and not info.attributes["extractable"]
    expected = hmac.new(clear, PAN_DOMAIN + PAN.encode(), hashlib.sha256).hexdigest()
    assert store.tokenise_pan(PAN).fingerprint == expected


def test_imported_vault_key_lets_the_platform_open_blobs(store: KeyStore) -> None:
    """A blob sealed under an imported vault key opens with the clear key and the
    documented layout (header | IV | ciphertext+tag, AAD = header | token)."""
    clear = os.urandom(32)
    delivery = wrap_for_import(KeyPurpose.VAULT, clear)
    store.import_wrapped(KeyPurpose.VAULT, delivery.wrapped, TEST_TRANSPORT_KEY, delivery.kcv)
    card = store.tokenise(PAN, "2712")
    blob = card.vault_blob
    plain = AESGCM(clear).decrypt(blob[3:15], blob[15:], blob[:3] + card.token.encode())
    assert plain == f"{PAN}=2712".encode()


def test_wrong_kcv_discards_the_key(store: KeyStore) -> None:
    """A KCV that differs from the unwrapped key's aborts the import and keeps no key."""
    before = store.key_versions()
    delivery = wrap_for_import(KeyPurpose.VAULT, os.urandom(32))
    with pytest.raises(KeyImportFailedError, match="expected 000000"):
        store.import_wrapped(KeyPurpose.VAULT, delivery.wrapped, TEST_TRANSPORT_KEY, "000000")
    store.refresh()
    assert store.key_versions() == before


def test_wrong_transport_key_is_reported(store: KeyStore) -> None:
    """A key wrapped under another KEK fails to unwrap with advice about the transport key."""
    delivery = wrap_for_import(KeyPurpose.VAULT, os.urandom(32), transport_key=bytes(32))
    with pytest.raises(KeyImportFailedError, match="transport key"):
        store.import_wrapped(KeyPurpose.VAULT, delivery.wrapped, TEST_TRANSPORT_KEY)


@pytest.mark.parametrize(
    ("text",                                                   "message"),
    [
        ("not json",                                               "not a key import file"),
        ('{"purpose": "signing", "wrapped": "00", "kcv": "abcdef"}', "never imported"),
        ('{"purpose": "vault", "wrapped": "zz", "kcv": "abcdef"}',   "not a key import file"),
        ('{"purpose": "vault", "wrapped": "00", "kcv": "abc"}',      "6 hex digits"),
    ],
)
def test_bad_import_files(text: str, message: str) -> None:
    """Malformed import files are refused with a message naming the expected format."""
    with pytest.raises(ValueError, match=message):
        parse_import_file(text)


def test_signing_keys_are_never_imported(store: KeyStore) -> None:
    """Importing a signing key is a caller mistake."""
    with pytest.raises(ValueError, match="never imported"):
        store.import_wrapped(KeyPurpose.SIGNING, b"", TEST_TRANSPORT_KEY)
    with pytest.raises(ValueError, match="never imported"):
        wrap_for_import(KeyPurpose.SIGNING, bytes(32))


VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "hsm_key_import.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["aes_key_wrap"], ids=lambda v: v["source"][:16])
def test_rfc3394_vector_unwraps_in_the_token(store: KeyStore, vector: dict[str, str]) -> None:
    """The RFC 3394 §4.6 known answer: our software wrap matches it, and the token unwraps
    it under the test transport key to a key whose KCV is the clear key data's."""
    kek, key_data = bytes.fromhex(vector["kek"]), bytes.fromhex(vector["key_data"])
    assert kek == TEST_TRANSPORT_KEY
    delivery = wrap_for_import(KeyPurpose.VAULT, key_data, kek)
    assert delivery.wrapped == bytes.fromhex(vector["wrapped"])
    info = store.import_wrapped(KeyPurpose.VAULT, bytes.fromhex(vector["wrapped"]), kek,
                                software_kcv(KeyPurpose.VAULT, key_data))
    assert info.kcv == software_kcv(KeyPurpose.VAULT, key_data)


@pytest.mark.parametrize("vector", VECTORS["aes_kcv"], ids=lambda v: v["kcv"])
def test_aes_kcv_known_answer(vector: dict[str, str]) -> None:
    """The AES KCV is the first 3 bytes of AES-ECB over a zero block (AESAVS known answer)."""
    assert software_kcv(KeyPurpose.VAULT, bytes.fromhex(vector["key"])) == vector["kcv"]


def test_software_key_store_agrees_with_the_token(store: KeyStore) -> None:
    """With the same keys, the in-memory fake and the token give the same tokens and
    fingerprints, and each opens the other's vault blobs: the formats are one."""
    from hsm.base import CardKeyStore
    from hsm.fake import SoftwareKeyStore

    tok_key, vault_key = os.urandom(32), os.urandom(32)
    for purpose, key in ((KeyPurpose.TOKENISATION, tok_key), (KeyPurpose.VAULT, vault_key)):
        delivery = wrap_for_import(purpose, key)
        store.import_wrapped(purpose, delivery.wrapped, TEST_TRANSPORT_KEY, delivery.kcv)
    fake = SoftwareKeyStore(tokenisation_keys={store.tokenisation_key_version: tok_key},
                            vault_keys={store.vault_key_version: vault_key})
    assert isinstance(fake, CardKeyStore) and isinstance(store, CardKeyStore)
    in_token, in_memory = store.tokenise(PAN, "2712"), fake.tokenise(PAN, "2712")
    assert (in_token.token, in_token.fingerprint, in_token.key_version) == \
        (in_memory.token, in_memory.fingerprint, in_memory.key_version)
    assert fake.detokenise(in_token.token, in_token.vault_blob).pan == PAN
    assert store.detokenise(in_memory.token, in_memory.vault_blob).pan == PAN
