"""Mastercard contactless in M/Chip mode, EMV Contactless Book C-2 essentials (#13 item 14).

PPSE, PDOL with Terminal Risk Management Data (9F1D), CDA in the one GENERATE AC, the
CVM-required limit, on-device cardholder verification, no second GENERATE AC.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from simulators.card.plugin import open_simulated_reader
from simulators.card.reader import in_process_reader
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.errors import TransactionNotAllowedError
from terminal.emv.kernel import EmvKernel, TransactionResult
from terminal.emv.mchip_contactless import terminal_risk_management_data
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.tvr import Tvr, TvrBit
from terminal.profile import load_profile

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

DEFAULT = Path(__file__).resolve().parents[3] / "firmware-config" / "default"
GPO, GENERATE_AC = b"\x80\xa8", b"\x80\xae"


@pytest.fixture(scope="module")
def config() -> KernelConfig:
    return replace(kernel_config_from_profile(load_profile(DEFAULT)),
                   random_bytes=lambda n: b"\xff" * n)


async def tap(config: KernelConfig, card: str, amount: int, *, issuer: bool = False,
              faults: tuple[str, ...] = ()) -> tuple[TransactionResult, list[bytes]]:
    reader = (in_process_reader(card, "contactless", faults) if faults
              else open_simulated_reader(card, "contactless"))
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=amount, currency_numeric=504, when=datetime(2026, 11, 22))
    authoriser = reader.online_authoriser() if issuer else None  # type: ignore[attr-defined]
    kernel = EmvKernel(config, authoriser=authoriser)
    result = await kernel.transact(session, data, contactless=True)  # type: ignore[arg-type]
    return result, reader.sent


def _pdol_9f1d(sent: list[bytes]) -> bytes:
    (gpo,) = [c for c in sent if c[:2] == GPO]
    return gpo[7:15]  # 80 A8 00 00 Lc 83 L | 9F1D (8) 9F35 9F1A


async def test_small_tap_is_an_offline_tc_with_cda(config: KernelConfig) -> None:
    """Under the floor limit: CDA verified, no CVM, one GENERATE AC, approved offline."""
    result, sent = await tap(config, "mastercard-contactless", 2500)
    assert (result.interface, result.oda, result.oda_result) == ("contactless", "cda", "ok")
    assert (result.cvm, result.cryptogram, result.decision) == ("no_cvm", "TC", "approved_offline")
    assert sum(c[:2] == GENERATE_AC for c in sent) == 1
    assert sent[[c[:2] for c in sent].index(GENERATE_AC)][2] & 0x10  # CDA requested (P1 b5)
    trm = _pdol_9f1d(sent)
    assert trm[0] == 0x08 | 0x04 and not trm[1] & 0x80 and trm[2] & 0x80  # no CVM only


async def test_above_the_cvm_limit_the_cvm_list_runs_and_it_goes_online(
        config: KernelConfig) -> None:
    """Above the CVM-required limit: 9F1D says so, the card's CVM list gives signature (no PIN
    pad), the ARQC is approved by the issuer without a second GENERATE AC."""
    result, sent = await tap(config, "mastercard-contactless", 40000, issuer=True)
    assert (result.cvm, result.first_cryptogram, result.decision) == (
        "signature", "ARQC", "approved_online")
    assert sum(c[:2] == GENERATE_AC for c in sent) == 1
    trm = _pdol_9f1d(sent)
    assert trm[1] & 0x80 and trm[0] & 0x20  # CVM limit exceeded, signature capability


@pytest.mark.parametrize(
    ("amount", "cvm",     "results"),
    [
        (2500,   "no_cvm",  "3F0002"),
        (40000,  "cdcvm",   "010002"),
    ],
)
async def test_phone_verifies_its_owner(config: KernelConfig, amount: int, cvm: str,
                                        results: str) -> None:
    """AIP byte 1 b2 (on-device CVM): above the limit CDCVM 01 00 02, below 3F 00 02."""
    result, _ = await tap(config, "mastercard-mobile", amount)
    assert (result.cvm, result.cvm_results) == (cvm, results)
    assert result.oda_result == "ok"


async def test_failed_cda_declines(config: KernelConfig) -> None:
    """A tampered CDA signature voids the TC: CDA failed in the TVR, declined (Book 2 §6.6)."""
    result, _ = await tap(config, "mastercard-contactless", 2500, faults=("tamper-sdad",))
    assert TvrBit.CDA_FAILED in Tvr(bytes.fromhex(result.tvr))
    assert (result.cryptogram, result.decision) == ("AAC", "declined_offline")


async def test_above_the_contactless_limit_insert_the_card(config: KernelConfig) -> None:
    """An amount over the reader's contactless transaction limit is refused before GPO."""
    with pytest.raises(TransactionNotAllowedError, match="contactless limit"):
        await tap(config, "mastercard-contactless", 250000)


async def test_unable_to_go_online_declines(config: KernelConfig) -> None:
    """An ARQC with no host: the card has left the field, so it is declined, not decided by
    a second GENERATE AC."""
    result, sent = await tap(config, "mastercard-contactless", 40000)
    assert result.decision == "declined_unable_online"
    assert sum(c[:2] == GENERATE_AC for c in sent) == 1


def test_terminal_risk_management_data_layout() -> None:
    """9F1D from 9F33 byte 2: online PIN, signature, no CVM, CDCVM; limit flag; EMV mode."""
    assert terminal_risk_management_data(bytes.fromhex("E0F8C8"), True) == bytes.fromhex(
        "6C80800000000000")
    assert terminal_risk_management_data(bytes.fromhex("E008C8"), False) == bytes.fromhex(
        "0C00800000000000")
