"""P2PE: card data encrypted for one PSP's public key; the PSP side decrypts.

Pure ``cryptography``: the terminal needs only the PSP's *public* key (PEM, from the
profile), the PSP (simulator) its private key, and neither needs PKCS#11.

Envelope format (all bytes; the first byte names the scheme)::

    0x01  RSA-OAEP-SHA256   (RSA public key, 2048 bits or more)
          [0]      0x01
          [1:]     RSAES-OAEP ciphertext of the payload (RFC 8017 §7.1), hash SHA-256,
                   MGF1 with SHA-256, label = context; as long as the modulus

    0x02  ECIES-P256-HKDF-SHA256-AES256GCM   (EC P-256 public key)
          [0]      0x02
          [1:66]   ephemeral public key E, uncompressed SEC1 point 04 || X || Y
          [66:78]  nonce, 12 random bytes
          [78:]    AES-256-GCM ciphertext of the payload, then the 16-byte tag
          Z   = ECDH(e, PSP public key): the shared x-coordinate, 32 bytes (SEC1 §3.3.1)
          key = HKDF-SHA256(IKM=Z, salt=E (65 bytes), info="etika-p2pe-v1", L=32) (RFC 5869)
          AAD = envelope[0:66] || context

    payload = UTF-8 JSON, keys sorted, no spaces: {"expiry":"YYMM","pan":"<digits>"}

``context`` (default empty) binds the envelope to its use, e.g. the transaction UUID as
bytes: the PSP must pass the same context to decrypt, so an envelope cannot be replayed
into another transaction.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hsm.cards import CardData
from hsm.errors import EnvelopeInvalidError

__all__ = ["SCHEME_ECIES_P256", "SCHEME_RSA_OAEP_SHA256", "decrypt_card", "encrypt_card"]

SCHEME_RSA_OAEP_SHA256 = 0x01
SCHEME_ECIES_P256 = 0x02
HKDF_INFO = b"etika-p2pe-v1"
POINT_BYTES = 65
NONCE_BYTES = 12
MIN_RSA_BITS = 2048


def _payload(card: CardData) -> bytes:
    return json.dumps({"expiry": card.expiry, "pan": card.pan},
                      sort_keys=True, separators=(",", ":")).encode()


def _oaep(context: bytes) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=context or None)


def _ecies_key(shared: bytes, point: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=point, info=HKDF_INFO).derive(shared)


def encrypt_card(psp_public_key_pem: bytes, card: CardData, context: bytes = b"") -> bytes:
    """An envelope only the holder of the PSP's private key can open (format above)."""
    try:
        public = serialization.load_pem_public_key(psp_public_key_pem)
    except ValueError as exc:
        raise ValueError(f"the PSP public key is not a PEM public key: {exc}") from exc
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise ValueError(f"the PSP RSA key has {public.key_size} bits; 2048 at least")
        return bytes([SCHEME_RSA_OAEP_SHA256]) + public.encrypt(_payload(card), _oaep(context))
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        point = ephemeral.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        key = _ecies_key(ephemeral.exchange(ec.ECDH(), public), point)
        nonce = os.urandom(NONCE_BYTES)
        head = bytes([SCHEME_ECIES_P256]) + point
        return head + nonce + AESGCM(key).encrypt(nonce, _payload(card), head + context)
    raise ValueError("the PSP public key must be RSA (2048+ bits) or EC P-256")


def _invalid(reason: str) -> EnvelopeInvalidError:
    return EnvelopeInvalidError(
        f"the P2PE envelope does not open: {reason}; check the PSP key pair and the "
        "context (transaction id) both sides use"
    )


def decrypt_card(
    psp_private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes,
    envelope: bytes,
    context: bytes = b"",
) -> CardData:
    """Open an envelope with the PSP's private key (object, or unencrypted PEM bytes)."""
    if isinstance(psp_private_key, bytes):
        loaded = serialization.load_pem_private_key(psp_private_key, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the PSP private key must be RSA or EC P-256")
        psp_private_key = loaded
    if not envelope:
        raise _invalid("it is empty")
    scheme = envelope[0]
    try:
        if scheme == SCHEME_RSA_OAEP_SHA256:
            if not isinstance(psp_private_key, rsa.RSAPrivateKey):
                raise _invalid("it is RSA-OAEP but the PSP key is not RSA")
            payload = psp_private_key.decrypt(envelope[1:], _oaep(context))
        elif scheme == SCHEME_ECIES_P256:
            if not isinstance(psp_private_key, ec.EllipticCurvePrivateKey):
                raise _invalid("it is ECIES but the PSP key is not EC")
            head = envelope[: 1 + POINT_BYTES]
            nonce = envelope[1 + POINT_BYTES : 1 + POINT_BYTES + NONCE_BYTES]
            body = envelope[1 + POINT_BYTES + NONCE_BYTES :]
            ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), head[1:])
            key = _ecies_key(psp_private_key.exchange(ec.ECDH(), ephemeral), head[1:])
            payload = AESGCM(key).decrypt(nonce, body, head + context)
        else:
            raise _invalid(f"unknown scheme byte {scheme:#04x}")
        fields = json.loads(payload)
        return CardData(pan=fields["pan"], expiry=fields["expiry"])
    except EnvelopeInvalidError:
        raise
    except (InvalidTag, ValueError, KeyError, TypeError) as exc:
        # ValueError covers OAEP decryption failure, bad points and bad JSON; the message
        # never includes the payload.
        raise _invalid(type(exc).__name__) from None
