"""Issuer-side helpers: Option A keys, session keys, ARQC verification, ARPC, script MACs."""

from __future__ import annotations

import pytest
from pyemv import kd

from simulators.card import issuer

PAN, PSN = "4761739001010010", 1
TAGS = {
    0x9F02: bytes.fromhex("000000002500"),
    0x9F03: bytes(6),
    0x9F1A: bytes.fromhex("0504"),
    0x95: bytes(5),
    0x5F2A: bytes.fromhex("0504"),
    0x9A: bytes.fromhex("261122"),
    0x9C: b"\x00",
    0x9F37: bytes.fromhex("1A2B3C4D"),
    0x82: bytes.fromhex("3800"),
    0x9F36: bytes.fromhex("0007"),
    0x9F10: bytes.fromhex("06011203A00000"),
}


def test_option_a_known_answer() -> None:
    """Option A derivation gives Book 2 A1.4.1's result for pyemv's published vector."""
    imk = issuer.IssuerMasterKeys(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), b"", b"")
    assert kd.derive_icc_mk_a(imk.ac, "12345678901234567", "01").hex().upper() == (
        "73AD54688CEF2934B0979857E3C719F1"
    )


def test_session_key_known_answer() -> None:
    """The common session key derivation matches Book 2 A1.3.1's published example."""
    mk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert issuer.session_key(mk, bytes.fromhex("001C")).hex().upper() == (
        "E9FB384AF807B940FEDCEA613461B0C4"
    )


def test_master_keys_are_deterministic_and_distinct() -> None:
    """Each test issuer has its own stable keys; the repr shows check values only."""
    visa = issuer.issuer_master_keys("visa")
    assert visa == issuer.issuer_master_keys("visa")
    assert visa.ac != issuer.issuer_master_keys("mastercard").ac
    assert visa.ac.hex() not in repr(visa) and "kcv" in repr(visa)
    with pytest.raises(ValueError):
        issuer.issuer_master_keys("nobody")


def test_arqc_round_trip() -> None:
    """A cryptogram from the card keys verifies with the IMK; any changed field fails."""
    imk = issuer.issuer_master_keys("visa")
    arqc = issuer.generate_ac(issuer.derive_card_keys(imk, PAN, PSN), TAGS)
    issuer.verify_arqc(imk, PAN, PSN, TAGS, arqc)
    with pytest.raises(issuer.CryptogramMismatchError):
        issuer.verify_arqc(imk, PAN, PSN, {**TAGS, 0x9F02: bytes.fromhex("000000009999")}, arqc)
    with pytest.raises(issuer.CryptogramMismatchError):
        issuer.verify_arqc(imk, PAN, 2, TAGS, arqc)


def test_cryptogram_data_needs_every_tag() -> None:
    """Missing cryptogram input is a caller mistake, not a silent zero."""
    with pytest.raises(ValueError, match="9F37"):
        issuer.cryptogram_data({k: v for k, v in TAGS.items() if k != 0x9F37})


@pytest.mark.parametrize("method", [1, 2])
def test_arpc_verifies_on_the_card_side(method: int) -> None:
    """ARPC method 1 and 2 made by the issuer verify with the card's keys; a flipped bit fails."""
    imk = issuer.issuer_master_keys("domestic")
    keys = issuer.derive_card_keys(imk, PAN, PSN)
    arqc = issuer.generate_ac(keys, TAGS)
    atc = TAGS[0x9F36]
    if method == 1:
        tag_91 = issuer.arpc_method_1(imk, PAN, PSN, atc, arqc, b"00")
        assert issuer.verify_arpc_method_1(keys, atc, arqc, tag_91) == b"00"
        check = issuer.verify_arpc_method_1
    else:
        tag_91 = issuer.arpc_method_2(imk, PAN, PSN, atc, arqc, bytes.fromhex("00800000"))
        assert issuer.verify_arpc_method_2(keys, atc, arqc, tag_91) == bytes.fromhex("00800000")
        check = issuer.verify_arpc_method_2
    with pytest.raises(issuer.CryptogramMismatchError):
        check(keys, atc, arqc, bytes([tag_91[0] ^ 1]) + tag_91[1:])


def test_script_command_mac() -> None:
    """A script command carries Lc including the 4-byte MAC the card recomputes."""
    imk = issuer.issuer_master_keys("visa")
    keys = issuer.derive_card_keys(imk, PAN, PSN)
    arqc, atc = bytes(range(8)), b"\x00\x07"
    command = issuer.script_command(imk, PAN, PSN, atc, arqc, bytes.fromhex("841E0000"))
    assert command[:5] == bytes.fromhex("841E000004")
    assert command[5:] == issuer.script_mac(keys, command[:5], atc, arqc, b"")
    script = issuer.issuer_script(0x72, [command], b"\x00\x00\x00\x01")
    assert script.startswith(b"\x72") and command in script
