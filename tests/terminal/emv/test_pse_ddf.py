"""PSE directory entries that name a DDF (tag 9D) are followed (#13 item 13).

EMV 4.4 Book 1 §12.3.2: an ADF entry (4F) is a candidate; a DDF entry (9D) is selected
and its own directory read the same way, then the previous directory resumes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import simulators.card.reader as reader_module
from drivers.scripted import ScriptedReader
from terminal.emv import apdu
from terminal.emv.apdu import CardChannel
from terminal.emv.config import AidConfig, KernelConfig, TransactionData
from terminal.emv.kernel import EmvKernel
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.selection import PSE, Candidate, build_candidates
from terminal.emv.tlv import encode
from terminal.profile import load_profile

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

DEFAULT = Path(__file__).resolve().parents[3] / "firmware-config" / "default"
VISA = bytes.fromhex("A0000000031010")
MASTERCARD = bytes.fromhex("A0000000041010")
DDF = b"ETIKA.DDF01"
OK = (0x90, 0x00)


@pytest.fixture(scope="module")
def config() -> KernelConfig:
    return replace(kernel_config_from_profile(load_profile(DEFAULT)),
                   random_bytes=lambda n: b"\xff" * n)


def _fci(name: bytes, sfi: int) -> bytes:
    return encode(0x6F, encode(0x84, name) + encode(0xA5, encode(0x88, bytes([sfi]))))


def _adf(aid: bytes, priority: int) -> bytes:
    return encode(0x61, encode(0x4F, aid) + encode(0x87, bytes([priority])))


def _ddf(name: bytes) -> bytes:
    return encode(0x61, encode(0x9D, name))


async def _candidates(reader: ScriptedReader, config: KernelConfig) -> list[Candidate]:
    session = await reader.connect(await reader.wait_for_card())
    return await build_candidates(CardChannel(session), config)  # type: ignore[arg-type]


async def test_simulated_card_behind_a_ddf_is_a_candidate(config: KernelConfig) -> None:
    """The `domestic-visa-ddf` card's Visa application, listed only in the DDF, is found."""
    reader = reader_module.in_process_reader("domestic-visa-ddf")
    session = await reader.connect(await reader.wait_for_card())
    found = await build_candidates(CardChannel(session), config)  # type: ignore[arg-type]
    assert [c.aid.hex().upper() for c in found] == ["D5040000011010", "A0000000031010"]


async def test_transaction_with_the_application_behind_the_ddf(config: KernelConfig) -> None:
    """Choosing the DDF's application runs the whole transaction on it (DDA, TC offline)."""
    reader = reader_module.in_process_reader("domestic-visa-ddf")
    session = await reader.connect(await reader.wait_for_card())

    async def choose_visa(candidates: object) -> Candidate:
        return next(c for c in candidates if c.aid == VISA)  # type: ignore[attr-defined]

    data = TransactionData(amount=2500, currency_numeric=504, when=datetime(2026, 11, 22))
    result = await EmvKernel(config, chooser=choose_visa).transact(session, data)  # type: ignore[arg-type]
    assert (result.aid, result.oda, result.oda_result) == ("A0000000031010", "dda", "ok")


async def test_ddf_read_where_it_stands_then_the_pse_resumes(config: KernelConfig) -> None:
    """SELECT DDF, its records, SELECT PSE again, then the PSE's next record (order kept)."""
    reader = ScriptedReader([
        (_fci(PSE, 1), *OK),
        (encode(0x70, _ddf(DDF)), *OK),                # PSE record 1: the DDF
        (_fci(DDF, 2), *OK),                           # SELECT DDF
        (encode(0x70, _adf(MASTERCARD, 2)), *OK),      # DDF record 1
        (b"", 0x6A, 0x83),                             # DDF: no record 2
        (_fci(PSE, 1), *OK),                           # SELECT PSE again
        (encode(0x70, _adf(VISA, 2)), *OK),            # PSE record 2
        (b"", 0x6A, 0x83),
    ])
    found = await _candidates(reader, config)
    assert [c.aid for c in found] == [MASTERCARD, VISA]
    assert reader.sent[2] == apdu.select(DDF) and reader.sent[5] == apdu.select(PSE)
    assert reader.sent[3] == apdu.read_record(2, 1) and reader.sent[6] == apdu.read_record(1, 2)


async def test_a_ddf_naming_itself_is_not_followed_again(config: KernelConfig) -> None:
    """A DDF whose directory lists the same DDF (a loop) is read once, not forever."""
    reader = ScriptedReader([
        (_fci(PSE, 1), *OK),
        (encode(0x70, _ddf(DDF)), *OK),
        (_fci(DDF, 2), *OK),
        (encode(0x70, _ddf(DDF) + _adf(VISA, 1)), *OK),  # loops back to itself
        (b"", 0x6A, 0x83),
        (_fci(PSE, 1), *OK),
        (b"", 0x6A, 0x83),
    ])
    found = await _candidates(reader, config)
    assert [c.aid for c in found] == [VISA]
    assert reader.sent.count(apdu.select(DDF)) == 1


async def test_missing_ddf_is_skipped(config: KernelConfig) -> None:
    """A DDF the card cannot select (6A82) adds nothing; the PSE's other entries count."""
    reader = ScriptedReader([
        (_fci(PSE, 1), *OK),
        (encode(0x70, _ddf(DDF) + _adf(VISA, 1)), *OK),
        (b"", 0x6A, 0x82),                             # SELECT DDF: not found
        (_fci(PSE, 1), *OK),
        (b"", 0x6A, 0x83),
    ])
    assert [c.aid for c in await _candidates(reader, config)] == [VISA]


async def test_malformed_ddf_directory_falls_back_to_the_list_of_aids() -> None:
    """A DDF record that is not TLV makes the directory unusable: list of AIDs instead."""
    config = KernelConfig(aids=(AidConfig(aid=VISA),))
    reader = ScriptedReader([
        (_fci(PSE, 1), *OK),
        (encode(0x70, _ddf(DDF)), *OK),
        (_fci(DDF, 2), *OK),
        (b"\x70\x05\x61", *OK),                        # truncated
        (encode(0x6F, encode(0x84, VISA)), *OK),       # list of AIDs: SELECT Visa
    ])
    assert [c.aid for c in await _candidates(reader, config)] == [VISA]
    assert reader.sent[-1] == apdu.select(VISA)
