"""Signature conversion and the verify helper (pure cryptography)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from hsm.errors import SignatureInvalidError
from hsm.fake import SoftwareSigner
from hsm.signing import der_to_raw, raw_to_der, verify_signature

ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@given(st.integers(1, ORDER - 1), st.integers(1, ORDER - 1))
def test_raw_der_round_trip(r: int, s: int) -> None:
    """r||s (PKCS#11) → DER Ecdsa-Sig-Value → r||s is the identity."""
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert der_to_raw(raw_to_der(raw)) == raw


def test_raw_must_be_64_bytes() -> None:
    """A raw P-256 signature of the wrong length is a caller mistake."""
    with pytest.raises(ValueError, match="64 bytes"):
        raw_to_der(bytes(63))


def test_verify_accepts_good_and_raises_on_bad() -> None:
    """verify_signature returns on a good signature and raises SignatureInvalidError otherwise."""
    signer = SoftwareSigner()
    signature = signer.sign(b"batch-1")
    verify_signature(signer.public_key_pem(), b"batch-1", signature)
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        verify_signature(signer.public_key_pem(), b"batch-2", signature)
    with pytest.raises(SignatureInvalidError):
        verify_signature(signer.public_key_pem(), b"batch-1", b"\x30\x00")
    with pytest.raises(SignatureInvalidError):
        verify_signature(SoftwareSigner().public_key_pem(), b"batch-1", signature)


def test_verify_refuses_non_p256_keys() -> None:
    """Only EC P-256 public keys verify; anything else is a ValueError."""
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="P-256"):
        verify_signature(rsa_pem, b"x", b"y")
    with pytest.raises(ValueError, match="PEM"):
        verify_signature(b"garbage", b"x", b"y")


def test_software_signer_rotation_keeps_old_public_keys() -> None:
    """The fake signer rotates like the token: old versions' public keys stay available."""
    signer = SoftwareSigner()
    old = signer.sign(b"x")
    assert signer.rotate() == 2 and signer.key_version == 2
    verify_signature(signer.public_key_pem(1), b"x", old)
    key = serialization.load_pem_public_key(signer.public_key_pem())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signer.sign(b"y"), b"y", ec.ECDSA(hashes.SHA256()))
