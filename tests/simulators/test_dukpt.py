"""DUKPT against the published vectors: ANSI X9.24-1:2009 A.4 and X9.24-3:2017 supplement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.pinpad.dukpt import (
    DukptOriginator,
    KsnExhaustedError,
    aes_derivation_key,
    aes_initial_key,
    aes_pin_key,
    tdes_encrypt,
    tdes_initial_key,
    tdes_pin_key,
    tdes_transaction_key,
)
from simulators.pinpad.pinblock import decipher_pin_block, encipher_pin_block

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TDES = json.loads((VECTORS / "dukpt_tdes_x9_24_1.json").read_text())
AES = json.loads((VECTORS / "dukpt_aes_x9_24_3.json").read_text())
TDES_STEPS = TDES["initial_sequence"] + TDES["rollover_sequence"]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_tdes_initial_key() -> None:
    """IPEK from the X9.24-1 test BDK and KSN (A.4: 6AC292FA...)."""
    assert tdes_initial_key(h(TDES["bdk"]), h(TDES["initial_ksn"])) == h(TDES["initial_key"])


@pytest.mark.parametrize("step", TDES_STEPS, ids=[s["ksn"] for s in TDES_STEPS])
def test_tdes_transaction_keys_and_pin_blocks(step: dict[str, str]) -> None:
    """Each published KSN gives the published key and format 0 PIN block (PIN 1234)."""
    ik, ksn = h(TDES["initial_key"]), h(step["ksn"])
    assert tdes_transaction_key(ik, ksn) == h(step["transaction_key"])
    pin_key = tdes_pin_key(ik, ksn)
    assert tdes_encrypt(pin_key, h(TDES["clear_pin_block"])) == h(step["encrypted_pin_block"])
    assert encipher_pin_block(0, pin_key, TDES["pin"], TDES["pan"]) == h(
        step["encrypted_pin_block"]
    )
    assert decipher_pin_block(0, pin_key, h(step["encrypted_pin_block"]), TDES["pan"]) == "1234"


@pytest.mark.parametrize(
    "case", TDES["next_ksn_after"], ids=[c["ksn"] for c in TDES["next_ksn_after"]]
)
def test_tdes_counter_skips_counters_with_more_than_ten_bits(case: dict[str, str]) -> None:
    """The originator's next KSN follows the A.4.3 rollover sequence."""
    originator = DukptOriginator(h(TDES["initial_key"]), h(case["ksn"]))
    ksn, _ = originator.next_pin_key()
    assert ksn == h(case["next"])


def test_aes_initial_key() -> None:
    """Initial key from the X9.24-3 AES-128 test BDK and key ID (B.1: 1273671E...)."""
    ksn = h(AES["initial_key_id"] + "00000000")
    assert aes_initial_key(h(AES["bdk"]), ksn) == h(AES["initial_key"])


@pytest.mark.parametrize(
    "case", AES["derivation_keys"], ids=[c["ksn"] for c in AES["derivation_keys"]]
)
def test_aes_derivation_keys(case: dict[str, str]) -> None:
    """Intermediate derivation keys for initial, rollover and last counters."""
    assert aes_derivation_key(h(AES["initial_key"]), h(case["ksn"])) == h(case["derivation_key"])


@pytest.mark.parametrize(
    "case", AES["pin_encryption_keys"], ids=[c["ksn"] for c in AES["pin_encryption_keys"]]
)
def test_aes_pin_encryption_keys(case: dict[str, str]) -> None:
    """AES-128 PIN encryption working keys (key usage 1000) for counters 1, 2, 3, 8."""
    assert aes_pin_key(h(AES["initial_key"]), h(case["ksn"])) == h(case["pin_key"])


AES256 = AES["aes256"]


def test_aes256_initial_key() -> None:
    """An AES-256 BDK gives the supplement's AES-256 initial key (two derivation blocks)."""
    ksn = h(AES["initial_key_id"] + "00000000")
    assert aes_initial_key(h(AES256["bdk"]), ksn) == h(AES256["initial_key"])


@pytest.mark.parametrize("case", AES256["keys"], ids=[c["ksn"] for c in AES256["keys"]])
def test_aes256_derivation_and_pin_keys(case: dict[str, str]) -> None:
    """AES-256 derivation keys and AES-256 PIN working keys from the supplement."""
    ik, ksn = h(AES256["initial_key"]), h(case["ksn"])
    assert aes_derivation_key(ik, ksn) == h(case["derivation_key"])
    assert aes_pin_key(ik, ksn) == h(case["pin_key"])


def test_format4_known_decipherment() -> None:
    """A published format 4 block deciphers to its PIN under its AES key."""
    case = AES["format4_decipher_example"]
    assert decipher_pin_block(4, h(case["key"]), h(case["pin_block"]), case["pan"]) == case["pin"]


@pytest.mark.parametrize(
    ("bdk",          "ksn"),
    [
        (TDES["bdk"],    TDES["initial_ksn"]),
        (AES["bdk"],     AES["initial_key_id"] + "00000000"),
    ],
)  # fmt: skip
def test_counter_advances_and_no_key_is_used_twice(bdk: str, ksn: str) -> None:
    """Every PIN takes a new, larger counter and a key never seen before."""
    originator = DukptOriginator.from_bdk(h(bdk), h(ksn))
    ksns, keys = set(), set()
    for _ in range(300):
        next_ksn, key = originator.next_pin_key()
        ksns.add(next_ksn)
        keys.add(key)
    assert len(ksns) == len(keys) == 300
    assert originator.used_counters == sorted(set(originator.used_counters))


def test_tdes_counter_exhaustion() -> None:
    """After the last valid 21-bit counter the originator refuses (re-injection needed)."""
    originator = DukptOriginator(h(TDES["initial_key"]), h("FFFF9876543210FFFC00"))
    with pytest.raises(KsnExhaustedError):
        originator.next_pin_key()


@pytest.mark.parametrize(
    ("key_len", "ksn_len"),
    [
        (16,        9),
        (8,         10),
        (20,        12),
    ],
)  # fmt: skip
def test_bad_lengths_are_caller_mistakes(key_len: int, ksn_len: int) -> None:
    """Wrong key or KSN lengths raise ValueError."""
    with pytest.raises(ValueError):
        DukptOriginator(bytes(key_len), bytes(ksn_len))
