"""P2PE envelopes: RSA-OAEP-SHA256 and ECIES-P256, as documented in hsm/p2pe.py."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm.cards import CardData
from hsm.errors import EnvelopeInvalidError
from hsm.p2pe import SCHEME_ECIES_P256, SCHEME_RSA_OAEP_SHA256, decrypt_card, encrypt_card
from tests.hsm.pans import with_check_digit

CARD = CardData(pan="4761739001010119", expiry="2712")
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("key",     "scheme",                  "length"),
    [
        (RSA_KEY,   SCHEME_RSA_OAEP_SHA256,    1 + 256),
        (EC_KEY,    SCHEME_ECIES_P256,         None),
    ],
)
def test_round_trip_and_scheme_byte(key, scheme: int, length: int | None) -> None:  # type: ignore[no-untyped-def]
    """The envelope starts with its scheme byte and the PSP's private key opens it."""
    envelope = encrypt_card(pem(key), CARD, b"txn-1")
    assert envelope[0] == scheme
    if length is not None:
        assert len(envelope) == length
    assert CARD.pan.encode() not in envelope
    assert decrypt_card(key, envelope, b"txn-1") == CARD


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["rsa", "ecies"])
def test_wrong_context_or_tampering_is_rejected(key) -> None:  # type: ignore[no-untyped-def]
    """Another context (transaction id) or a flipped byte makes the envelope not open."""
    envelope = encrypt_card(pem(key), CARD, b"txn-1")
    with pytest.raises(EnvelopeInvalidError, match="does not open"):
        decrypt_card(key, envelope, b"txn-2")
    for index in (1, len(envelope) // 2, len(envelope) - 1):
        bad = bytearray(envelope)
        bad[index] ^= 0x01
        with pytest.raises(EnvelopeInvalidError):
            decrypt_card(key, bytes(bad), b"txn-1")


def test_wrong_key_type_and_unknown_scheme() -> None:
    """An envelope for one key type does not open with another; unknown schemes are named."""
    with pytest.raises(EnvelopeInvalidError, match="not RSA"):
        decrypt_card(EC_KEY, encrypt_card(pem(RSA_KEY), CARD))
    with pytest.raises(EnvelopeInvalidError, match="unknown scheme byte 0x07"):
        decrypt_card(EC_KEY, b"\x07" + bytes(100))
    with pytest.raises(EnvelopeInvalidError, match="empty"):
        decrypt_card(EC_KEY, b"")


def test_weak_or_foreign_public_keys_are_refused() -> None:
    """RSA below 2048 bits and curves other than P-256 are caller mistakes (ValueError)."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the weak key under test)
    with pytest.raises(ValueError, match="2048"):
        encrypt_card(pem(small), CARD)
    with pytest.raises(ValueError, match="P-256"):
        encrypt_card(pem(ec.generate_private_key(ec.SECP384R1())), CARD)
    with pytest.raises(ValueError, match="PEM"):
        encrypt_card(b"not a key", CARD)


def test_ecies_format_as_documented() -> None:
    """An independent decoder following the docstring's byte layout opens an ECIES envelope."""
    envelope = encrypt_card(pem(EC_KEY), CARD, b"ctx")
    point, nonce, body = envelope[1:66], envelope[66:78], envelope[78:]
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    shared = EC_KEY.exchange(ec.ECDH(), ephemeral)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=point,
               info=b"etika-p2pe-v1").derive(shared)
    payload = AESGCM(key).decrypt(nonce, body, envelope[:66] + b"ctx")
    assert payload == b'{"expiry":"2712","pan":"4761739001010119"}'
    assert json.loads(payload) == {"expiry": "2712", "pan": "4761739001010119"}


def test_private_key_as_pem_bytes() -> None:
    """decrypt_card accepts the PSP's private key as unencrypted PEM (the simulator's file)."""
    private_pem = EC_KEY.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    assert decrypt_card(private_pem, encrypt_card(pem(EC_KEY), CARD)) == CARD


@settings(max_examples=30, deadline=None)
@given(st.integers(10**11, 10**18 - 1).map(lambda n: with_check_digit(str(n))),
       st.integers(0, 99).map(lambda y: f"{y:02d}"), st.integers(1, 12).map(lambda m: f"{m:02d}"),
       st.binary(max_size=40), st.sampled_from(["ec", "rsa"]))
def test_hypothesis_round_trip(pan: str, yy: str, mm: str, context: bytes, kind: str) -> None:
    """Any valid card and context round-trips through either scheme."""
    key = EC_KEY if kind == "ec" else RSA_KEY
    card = CardData(pan=pan, expiry=yy + mm)
    assert decrypt_card(key, encrypt_card(pem(key), card, context), context) == card
