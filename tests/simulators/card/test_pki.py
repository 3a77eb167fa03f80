"""Deterministic test PKI: keys from the seed, certificates that recover with the CA key."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.card import certs
from simulators.card.personalise import CA_BITS, ca_key, issuer_key
from simulators.card.pki import DeterministicRandom, is_probable_prime, rsa_key
from tests.simulators.card.terminal_side import check_sdad, recover_icc_key, rsa_recover


def test_same_seed_same_key() -> None:
    """The same label and seed give the same key; another seed gives another key."""
    a = rsa_key("test/same", 768)
    b = rsa_key.__wrapped__("test/same", 768)  # bypass the cache: really generate again
    assert (a.n, a.d) == (b.n, b.d)
    assert rsa_key("test/same", 768, seed=b"other").n != a.n


def test_keys_are_consistent() -> None:
    """n = p·q has the requested size, e = 3, and d inverts e (a sign/recover round trip)."""
    key = rsa_key("test/consistent", 1024)
    assert key.p * key.q == key.n and key.n.bit_length() == 1024 and key.e == 3
    block = b"\x6a" + bytes(range(126)) + b"\xbc"
    assert key.recover(key.sign(block)) == block


@pytest.mark.parametrize(
    ("n",                          "prime"),
    [
        (2**127 - 1,                True),
        (2**89 - 1,                 True),
        (561,                       False),  # Carmichael number
        (2**64 + 1,                 False),
        ((2**61 - 1) * (2**31 - 1), False),
    ],
)
def test_miller_rabin(n: int, prime: bool) -> None:
    """Miller–Rabin accepts known primes and rejects composites, Carmichael numbers included."""
    assert is_probable_prime(n, DeterministicRandom(b"t", "mr")) is prime


def test_drbg_is_stable() -> None:
    """The generator's output is pinned: changing it would change every CAPK."""
    assert DeterministicRandom(b"seed", "label").bytes(8).hex() == hashlib.sha256(
        hashlib.sha256(b"seed\x00label").digest() + bytes(8)
    ).hexdigest()[:16]


def test_issuer_certificate_recovers_with_the_ca_key() -> None:
    """Tag 90 recovers with the CA public key into the Book 2 Table 6 layout."""
    ca, iss = ca_key("A000000003", 0x92), issuer_key("visa", "A000000003")
    assert ca.n.bit_length() == CA_BITS
    cert = certs.issuer_certificate(ca, iss, "476173", "1230", b"\x00\x00\x01")
    block = rsa_recover(ca.modulus, ca.exponent, cert.certificate)
    assert (block[0], block[1], block[-1]) == (0x6A, 0x02, 0xBC)
    assert block[2:6] == bytes.fromhex("476173FF")
    assert block[6:8] == bytes.fromhex("1230") and block[11:13] == b"\x01\x01"
    assert block[13] == iss.size and block[14] == 1
    room = ca.size - 36
    assert block[15 : 15 + room] + cert.remainder == iss.modulus
    digest = hashlib.sha1(block[1 : 15 + room] + cert.remainder + cert.exponent).digest()  # noqa: S324
    assert block[15 + room : -1] == digest


def test_signed_static_data_layout() -> None:
    """Tag 93 recovers with the issuer key: format 03, DAC, BB padding, hash of static data."""
    iss = issuer_key("cb", "A000000042")
    ssad = certs.signed_static_data(iss, b"\xda\xc1", b"static")
    block = rsa_recover(iss.modulus, iss.exponent, ssad)
    assert block[:5] == bytes.fromhex("6A0301DAC1") and block[-1] == 0xBC
    assert set(block[5 : iss.size - 21]) == {0xBB}
    assert block[-21:-1] == hashlib.sha1(block[1:-21] + b"static").digest()  # noqa: S324


def test_signed_dynamic_data_refuses_oversize() -> None:
    """ICC dynamic data too long for the key is a caller mistake."""
    with pytest.raises(ValueError):
        certs.signed_dynamic_data(rsa_key("test/small", 512), bytes(60), b"")


@settings(max_examples=25, deadline=None)
@given(
    static=st.binary(max_size=300),
    pan=st.from_regex(r"\A[0-9]{12,19}\Z", fullmatch=True),
    ddol_data=st.binary(min_size=1, max_size=40),
)
def test_icc_chain_round_trip(static: bytes, pan: str, ddol_data: bytes) -> None:
    """For any static data and PAN, the ICC certificate and a DDA signature verify via the CA."""
    ca, iss = ca_key("A000000004", 0xF1), issuer_key("mastercard", "A000000004")
    icc = rsa_key("test/icc-round-trip", 1024)
    icert = certs.issuer_certificate(ca, iss, pan[:6], "1230", b"\x00\x00\x02")
    ccert = certs.icc_certificate(iss, icc, pan, "1230", b"\x00\x00\x03", static)
    data = {
        0x8F: b"\xf1",
        0x90: icert.certificate,
        0x92: icert.remainder,
        0x9F32: icert.exponent,
        0x9F46: ccert.certificate,
        0x9F47: ccert.exponent,
        0x9F48: ccert.remainder,
    }
    modulus, exponent = recover_icc_key("A000000004", data, static)
    assert modulus == icc.modulus
    sdad = certs.signed_dynamic_data(icc, b"\x02\xab\xcd", ddol_data)
    assert check_sdad(modulus, exponent, sdad, ddol_data) == b"\x02\xab\xcd"
