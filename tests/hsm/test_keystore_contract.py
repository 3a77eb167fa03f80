"""The CardKeyStore rules, checked on the SoftHSM2 token's KeyStore and on the in-memory fake.

Each test runs twice: once against :class:`hsm.fake.SoftwareKeyStore` and once against
:class:`hsm.KeyStore` on the session's SoftHSM2 token (marker ``hsm``). Both get a token
registry of their own, so no test sees another's bindings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edge_sync.errors import SignatureError
from edge_sync.signing import verify_signature
from hsm import KeyPurpose, KeyStore
from hsm.base import CardKeyStore, Signer
from hsm.cards import CardData, luhn_valid
from hsm.errors import EnvelopeInvalidError, VaultBlobInvalidError
from hsm.fake import InMemoryTokenRegistry, SoftwareKeyStore
from hsm.p2pe import decrypt_card

PAN = "4761739001010119"
OTHER_PAN = "5413330089010434"
EXPIRY = "2712"


@pytest.fixture(params=["fake", pytest.param("token", marks=pytest.mark.hsm)])
def keystore(request: pytest.FixtureRequest) -> Iterator[SoftwareKeyStore | KeyStore]:
    if request.param == "fake":
        yield SoftwareKeyStore(InMemoryTokenRegistry())
        return
    session_store: KeyStore = request.getfixturevalue("hsm_keystore")
    yield KeyStore(session_store.owner, InMemoryTokenRegistry())
    # Rotations made through this store: let the session's store see the new versions.
    session_store.refresh()


def test_both_implement_the_protocol(keystore: SoftwareKeyStore | KeyStore) -> None:
    """Fake and token both satisfy CardKeyStore, and their signer() satisfies Signer."""
    assert isinstance(keystore, CardKeyStore)
    assert isinstance(keystore.signer(), Signer)


def test_token_is_deterministic_keeps_bin_and_last4_and_fails_luhn(
    keystore: SoftwareKeyStore | KeyStore,
) -> None:
    """Tokenising a PAN twice gives the same token; it keeps first 6/last 4 and fails Luhn."""
    first = keystore.tokenise(PAN, EXPIRY)
    again = keystore.tokenise(PAN, EXPIRY)
    other = keystore.tokenise(OTHER_PAN, EXPIRY)
    assert first.token == again.token == keystore.tokenise_pan(PAN).token
    assert (first.token[:6], first.token[-4:]) == (PAN[:6], PAN[-4:])
    assert len(first.token) == len(PAN) and first.token != PAN
    assert not luhn_valid(first.token)
    assert other.token != first.token
    assert PAN not in repr(first)


def test_fingerprint_is_stable_and_keyed(keystore: SoftwareKeyStore | KeyStore) -> None:
    """The fingerprint is the same on every call, differs per PAN, and is not a bare hash."""
    fingerprint = keystore.fingerprint(PAN)
    assert fingerprint == keystore.fingerprint(PAN) == keystore.tokenise_pan(PAN).fingerprint
    assert fingerprint != keystore.fingerprint(OTHER_PAN)
    assert len(bytes.fromhex(fingerprint)) == 32
    assert fingerprint != hashlib.sha256(PAN.encode()).hexdigest()
    # Keyed: another store with its own key gives another fingerprint for the same PAN.
    assert fingerprint != SoftwareKeyStore().fingerprint(PAN)


def test_vault_round_trip_and_tamper(keystore: SoftwareKeyStore | KeyStore) -> None:
    """detokenise opens what tokenise sealed; another token or a flipped bit is refused."""
    card = keystore.tokenise(PAN, EXPIRY)
    assert keystore.detokenise(card.token, card.vault_blob) == CardData(PAN, EXPIRY)
    other = keystore.tokenise(OTHER_PAN, EXPIRY)
    with pytest.raises(VaultBlobInvalidError):
        keystore.detokenise(other.token, card.vault_blob)
    flipped = bytearray(card.vault_blob)
    flipped[-1] ^= 1
    with pytest.raises(VaultBlobInvalidError):
        keystore.detokenise(card.token, bytes(flipped))


@pytest.mark.parametrize("psp_key", ["ec", "rsa"])
def test_encrypt_for_psp_opens_with_the_psp_private_key(
    keystore: SoftwareKeyStore | KeyStore, psp_key: str,
) -> None:
    """encrypt_for_psp gives an envelope the PSP's private key opens, bound to the context."""
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if psp_key == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    card = keystore.tokenise(PAN, EXPIRY)
    envelope = keystore.encrypt_for_psp(card.token, card.vault_blob, public_pem, b"tx-1")
    assert PAN.encode() not in envelope
    assert decrypt_card(private, envelope, b"tx-1") == CardData(PAN, EXPIRY)
    with pytest.raises(EnvelopeInvalidError):
        decrypt_card(private, envelope, b"tx-2")


def test_signature_verifies_with_the_public_key(keystore: SoftwareKeyStore | KeyStore) -> None:
    """sign() and signer().sign() verify under public_key_pem(); altered data does not."""
    data = b'{"batch": 1}'
    verify_signature(keystore.public_key_pem(), data, keystore.sign(data))
    signer = keystore.signer()
    assert signer.key_version == keystore.signing_key_version
    verify_signature(signer.public_key_pem(), data, signer.sign(data))
    with pytest.raises(SignatureError):
        verify_signature(keystore.public_key_pem(), data + b" ", keystore.sign(data))


def test_rotation_keeps_old_blobs_and_signatures_usable(
    keystore: SoftwareKeyStore | KeyStore,
) -> None:
    """After rotating every key, new work uses the new versions and old work still opens."""
    before = keystore.tokenise(PAN, EXPIRY)
    old_signature, old_version = keystore.sign(b"checkpoint"), keystore.signing_key_version
    versions = {purpose: keystore.rotate(purpose) for purpose in KeyPurpose}
    after = keystore.tokenise(PAN, EXPIRY)
    assert after.key_version == versions[KeyPurpose.TOKENISATION] == before.key_version + 1
    assert after.vault_key_version == versions[KeyPurpose.VAULT] > before.vault_key_version
    assert keystore.signing_key_version == versions[KeyPurpose.SIGNING] == old_version + 1
    assert after.fingerprint != before.fingerprint
    assert keystore.fingerprint(PAN, before.key_version) == before.fingerprint
    assert keystore.detokenise(before.token, before.vault_blob) == CardData(PAN, EXPIRY)
    assert keystore.detokenise(after.token, after.vault_blob) == CardData(PAN, EXPIRY)
    verify_signature(keystore.public_key_pem(old_version), b"checkpoint", old_signature)
    with pytest.raises(SignatureError):
        verify_signature(keystore.public_key_pem(), b"checkpoint", old_signature)
