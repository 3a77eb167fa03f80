"""The simulated acquirer/issuer: card checks, cryptograms, PINs, limits, ledger."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from drivers.pinpad.messages import PinEntryRequest
from hsm.cards import CardData
from hsm.p2pe import encrypt_card
from simulators.card import issuer
from simulators.pinpad.device import DEFAULT_AES_BDK, DEFAULT_AES_KSN, PinPadDevice
from simulators.psp.acquirer import (
    LIMITED_PAN,
    LOST_PAN,
    LOW_BALANCE_PAN,
    STOLEN_PAN,
    Acquirer,
    EntryKind,
    with_luhn,
)
from simulators.psp.cards import icc_data
from simulators.psp.keys import private_key_path, public_key_path

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES")

VISA = "4761739001010010"
PUBLIC = public_key_path("iso8583").read_bytes()


@pytest.fixture
def acquirer() -> Acquirer:
    return Acquirer(private_key_path("iso8583").read_bytes())


def pay(acquirer: Acquirer, pan: str = VISA, *, amount: int = 2500, expiry: str = "3012",
        key: str | None = None, issuer_name: str = "visa", **kw: Any) -> tuple[str, Any]:
    key = key or str(uuid.uuid4())
    envelope = encrypt_card(PUBLIC, CardData(pan, expiry), key.encode())
    icc = kw.pop("icc", None) or icc_data(pan, issuer_name=issuer_name, amount=amount)
    return key, acquirer.authorise(key, envelope, amount, "MAD", icc=icc, **kw)


@pytest.mark.parametrize(
    ("pan",                              "expiry", "amount",  "code"),
    [
        (VISA,                               "3012",   2500,      "00"),
        (with_luhn("400000000000000"),       "3012",   2500,      "14"),
        (LOST_PAN,                           "3012",   2500,      "41"),
        (STOLEN_PAN,                         "3012",   2500,      "43"),
        (VISA,                               "2301",   2500,      "54"),
        (LOW_BALANCE_PAN,                    "3012",   2500,      "51"),
        (LIMITED_PAN,                        "3012",   20_000,    "61"),
    ],
)
def test_issuer_rules(acquirer: Acquirer, pan: str, expiry: str, amount: int,
                      code: str) -> None:
    """Unknown, lost, stolen, expired, short of funds, over the limit: each its own code."""
    _, decision = pay(acquirer, pan, amount=amount, expiry=expiry)
    assert decision.code == code
    assert acquirer.postings == (1 if code == "00" else 0)


def test_daily_limit_adds_up(acquirer: Acquirer) -> None:
    """Two payments within the per-transaction limit can still exceed the daily one."""
    assert pay(acquirer, LIMITED_PAN, amount=9_000)[1].code == "00"
    assert pay(acquirer, LIMITED_PAN, amount=9_000)[1].code == "61"


def test_arpc_verifies_on_the_card_side(acquirer: Acquirer) -> None:
    """The ARPC returned is what the card's keys expect (method 1: ARPC ‖ ARC)."""
    icc = icc_data(VISA, amount=2500)
    _, decision = pay(acquirer, icc=icc)
    keys = issuer.derive_card_keys(issuer.issuer_master_keys("visa"), VISA, 1)
    arc = issuer.verify_arpc_method_1(keys, icc[0x9F36], icc[0x9F26], decision.issuer_auth_data)
    assert arc == b"00"


def test_tampered_arqc_and_wrong_issuer_are_declined(acquirer: Acquirer) -> None:
    """A cryptogram that does not verify is declined 05, with no ARPC."""
    icc = icc_data(VISA, amount=2500)
    icc[0x9F26] = bytes(8)
    _, decision = pay(acquirer, icc=icc)
    assert (decision.code, decision.issuer_auth_data) == ("05", b"")
    _, decision = pay(acquirer, issuer_name="mastercard")
    assert decision.code == "05"


def test_envelope_bound_to_its_transaction(acquirer: Acquirer) -> None:
    """An envelope sealed for one transaction does not open under another's key."""
    envelope = encrypt_card(PUBLIC, CardData(VISA, "3012"), b"another-transaction")
    decision = acquirer.authorise(str(uuid.uuid4()), envelope, 2500, "MAD",
                                  icc=icc_data(VISA, amount=2500))
    assert (decision.code, decision.reason) == ("05", "P2PE ENVELOPE INVALID")


def _pin_block(pin: str, pan: str = VISA) -> tuple[bytes, bytes]:
    device = PinPadDevice.from_bdk(DEFAULT_AES_BDK, DEFAULT_AES_KSN, pin=pin)
    answer = device.encipher_pin(PinEntryRequest(pan=pan, amount_minor=2500,
                                                 currency_numeric=504, timeout_s=30))
    assert answer.pin_block is not None and answer.ksn is not None
    return answer.pin_block, answer.ksn


@pytest.mark.parametrize(
    ("pins",                          "codes"),
    [
        (["1234"],                        ["00"]),
        (["9999"],                        ["55"]),
        (["9999", "9999", "9999"],        ["55", "55", "75"]),
        (["9999", "1234"],                ["55", "00"]),
    ],
)
def test_pin_blocks_from_the_pin_pad(acquirer: Acquirer, pins: list[str],
                                     codes: list[str]) -> None:
    """PIN blocks from the PIN pad simulator verify with the BDK; tries run out at 3."""
    got = []
    for pin in pins:
        block, ksn = _pin_block(pin)
        got.append(pay(acquirer, pin_block=block, ksn=ksn)[1].code)
    assert got == codes


def test_corrupt_pin_block_is_unreadable(acquirer: Acquirer) -> None:
    """A block that does not decipher to a valid format is declined 81."""
    _, ksn = _pin_block("1234")
    _, decision = pay(acquirer, pin_block=bytes(16), ksn=ksn)
    assert decision.code == "81"


def test_replay_and_follow_ups(acquirer: Acquirer) -> None:
    """A replayed key answers the same; reversal, completion and refund move money once."""
    key, first = pay(acquirer, kind=EntryKind.AUTH)
    _, again = pay(acquirer, key=key, kind=EntryKind.AUTH)
    assert again.replayed and again.approval_code == first.approval_code
    assert acquirer.complete(key, 2000).approved
    assert acquirer.complete(key, 2000).replayed
    assert acquirer.refund(key, "r1", 1500).approved
    assert acquirer.refund(key, "r2", 1000).code == "13"  # more than is left
    assert acquirer.reverse(key).approved
    assert acquirer.reverse(key).replayed
    assert acquirer.account(VISA).balance == 10_000_000
    assert acquirer.postings == 4  # hold, capture, refund, reversal


def test_offline_advice_is_booked_even_overdrawn(acquirer: Acquirer) -> None:
    """The card approved offline: the advice is booked, never declined for funds."""
    _, decision = pay(acquirer, LOW_BALANCE_PAN, amount=5000, kind=EntryKind.ADVICE)
    assert decision.approved
    assert acquirer.account(LOW_BALANCE_PAN).balance == 1000 - 5000
