"""The kernel against the project's card simulator, in-process (every profile, with faults)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import simulators.card.reader as reader_module
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.errors import ApplicationBlockedError
from terminal.emv.kernel import EmvKernel, TransactionResult
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.selection import Candidate
from terminal.emv.tvr import Tvr, TvrBit
from terminal.profile import load_profile

# pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

WHEN = datetime(2026, 11, 22, 10, 0)


@pytest.fixture(scope="module")
def config() -> KernelConfig:
    profile_dir = Path(__file__).parents[3] / "firmware-config" / "default"
    # Random selection off: these tests pin outcomes, not the dice.
    return replace(kernel_config_from_profile(load_profile(profile_dir)),
                   random_bytes=lambda n: b"\xff" * n)


async def transact(config: KernelConfig, profile: str, *, amount: int = 2500,
                   faults: tuple[str, ...] = (), contactless: bool = False,
                   online: bool = True, **kw: object) -> TransactionResult:
    reader = reader_module.in_process_reader(
        profile, "contactless" if contactless else "contact", faults)
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=amount, currency_numeric=504, when=WHEN,
                           online_available=online)
    return await EmvKernel(config, **kw).transact(session, data,  # type: ignore[arg-type]
                                                  contactless=contactless)


@pytest.mark.parametrize(
    ("profile",          "contactless", "oda",  "aid"),
    [
        ("visa-credit",      False,         "dda",  "A0000000031010"),
        ("visa-credit",      True,          "fdda", "A0000000031010"),
        ("mastercard-debit", False,         "cda",  "A0000000041010"),
        ("cb",               False,         "sda",  "A0000000421010"),
        ("domestic-visa",    False,         "dda",  "D5040000011010"),
    ],
)
async def test_profiles_authenticate(config: KernelConfig, profile: str, contactless: bool,
                                     oda: str, aid: str) -> None:
    """Each profile's offline data authentication verifies with the profile's CAPKs."""
    result = await transact(config, profile, contactless=contactless)
    assert (result.aid, result.oda, result.oda_result) == (aid, oda, "ok")
    # Random selection is off (the injected source never selects): one outcome per card.
    assert (result.cryptogram, result.decision) == ("TC", "approved_offline")


@pytest.mark.parametrize(
    ("fault",              "profile",          "bit"),
    [
        ("tamper-ssad",        "cb",               TvrBit.SDA_FAILED),
        ("tamper-sdad",        "visa-credit",      TvrBit.DDA_FAILED),
        ("tamper-icc-cert",    "visa-credit",      TvrBit.DDA_FAILED),
        ("tamper-issuer-cert", "visa-credit",      TvrBit.DDA_FAILED),
        ("tamper-sdad",        "mastercard-debit", TvrBit.CDA_FAILED),
    ],
)
async def test_tampered_cards_fail_oda_and_go_on(config: KernelConfig, fault: str, profile: str,
                                                 bit: TvrBit) -> None:
    """A tampered signature/certificate sets its TVR bit; the TACs decide (AAC offline)."""
    result = await transact(config, profile, faults=(fault,), online=False)
    assert result.oda_result == "failed"
    assert bit in Tvr(bytes.fromhex(result.tvr))
    assert result.cryptogram == "AAC"


async def test_t0_card(config: KernelConfig) -> None:
    """A card answering 61xx/6Cxx transacts like any other."""
    result = await transact(config, "visa-credit", faults=("t0",))
    assert result.oda_result == "ok"


async def test_expired_card(config: KernelConfig) -> None:
    """visa-expired: TVR expired application; no host → declined."""
    result = await transact(config, "visa-expired", online=False)
    assert TvrBit.EXPIRED_APPLICATION in Tvr(bytes.fromhex(result.tvr))
    assert (result.cryptogram, result.decision) == ("AAC", "declined_unable_online")


async def test_blocked_card(config: KernelConfig) -> None:
    """visa-blocked: ApplicationBlockedError (6283)."""
    with pytest.raises(ApplicationBlockedError):
        await transact(config, "visa-blocked")


async def test_co_badged_card_offers_both_applications(config: KernelConfig) -> None:
    """domestic-visa: both applications reach the chooser; choosing Visa transacts on Visa."""
    offered: list[list[str]] = []

    async def chooser(candidates: Sequence[Candidate]) -> Candidate:
        offered.append([c.aid.hex().upper() for c in candidates])
        return next(c for c in candidates if c.config.network == "visa")

    result = await transact(config, "domestic-visa", chooser=chooser)
    assert offered == [["D5040000011010", "A0000000031010"]]
    assert result.aid == "A0000000031010"
