"""Every transaction result says why it ended so, in words (issue #16 item 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from terminal.emv.config import TransactionData
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.reasons import describe_outcome
from terminal.emv.tvr import Tvr, TvrBit

from .cardkit import QVSDC_PDOL, App, KitCard, KitReader, aid_config, kernel_config

WHEN = datetime(2026, 11, 22, 10, 30)


class Issuer:
    def __init__(self, arc: bytes) -> None:
        self.arc = arc

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        return OnlineResponse(arc=self.arc)


async def transact(app: App, *, amount: int = 2500, arc: bytes | None = None,
                   contactless: bool = False, dice: int = 0xFF, **txn: Any) -> TransactionResult:
    if contactless:
        app.qvsdc, app.pdol = True, QVSDC_PDOL
    reader = KitReader(KitCard(app))
    session = await reader.connect(await reader.wait_for_card())
    config = kernel_config(aid_config(target_percent=20, max_target_percent=50),
                           random_bytes=lambda n: bytes([dice]) * n)
    kernel = EmvKernel(config, authoriser=Issuer(arc) if arc is not None else None)
    data = TransactionData(amount=amount, currency_numeric=504, when=WHEN, **txn)
    return await kernel.transact(session, data, contactless=contactless)


@pytest.mark.parametrize(
    ("case",              "app_kw",                "kw",                           "reason"),
    [
        ("offline",           {},                      {},                             "approved offline by the card (TC)"),
        ("random, no host",   {},                      {"dice": 0x00},                 "random selection for online, no host reachable; declined"),
        ("velocity",          {"lcol": 1, "ucol": 2},  {},                             "consecutive offline limit reached on the card, no host reachable; declined"),
        ("wrong PIN",         {},                      {"amount": 60000, "arc": b"55"}, "wrong PIN (issuer code 55)"),
        ("issuer approves",   {},                      {"amount": 60000, "arc": b"00"}, "approved online by the issuer"),
        ("card declines",     {"decide": "aac"},       {},                             "card declined (AAC)"),
        ("expired",           {"expiry": "241231"},    {"online_available": False},    "card expired, no host reachable; declined"),
        ("contactless, no host", {"oda": "dda"},       {"amount": 20000, "contactless": True},
         "the card asked to go online, no host reachable; declined"),
    ],
)
async def test_every_result_has_a_reason_in_words(case: str, app_kw: dict[str, Any],
                                                  kw: dict[str, Any], reason: str) -> None:
    """The reason follows the decision and the TVR; it is in the JSON too."""
    result = await transact(App(**app_kw), **kw)
    assert result.reason == reason, case
    assert result.as_json()["reason"] == reason


def test_cda_failure_after_an_issuer_approval_is_named() -> None:
    """The issuer approved, the card's CDA signature failed: the reason says which."""
    tvr = Tvr()
    tvr.set(TvrBit.CDA_FAILED)
    assert describe_outcome("declined_online", tvr, arc="00") == (
        "approved by the issuer, but the card's signature check (CDA) failed")


def test_a_specific_pin_reason_hides_the_generic_one() -> None:
    """PIN try limit exceeded is named; "cardholder verification failed" is not repeated."""
    tvr = Tvr()
    tvr.set(TvrBit.CARDHOLDER_VERIFICATION_FAILED)
    tvr.set(TvrBit.PIN_TRY_LIMIT_EXCEEDED)
    assert describe_outcome("declined_offline", tvr, arc="Z1") == (
        "declined offline: PIN try limit exceeded")
