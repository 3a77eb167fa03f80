"""Known-answer vectors (tests/vectors/emv_kernel.json): TLV, DOL, TVR/TSI bit positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from terminal.emv import tlv
from terminal.emv.dol import build_dol, parse_dol
from terminal.emv.tvr import Tsi, TsiBit, Tvr, TvrBit

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "vectors" / "emv_kernel.json").read_text()
)


@pytest.mark.parametrize("vector", VECTORS["tlv"], ids=lambda v: v["name"])
def test_tlv_vectors(vector: dict[str, Any]) -> None:
    """Each vector decodes to the expected first-occurrence values."""
    flat = tlv.flatten(tlv.decode(bytes.fromhex(vector["hex"])))
    for tag, value in vector["flat"].items():
        assert flat[int(tag, 16)].hex().upper() == value


@pytest.mark.parametrize("vector", VECTORS["dol"], ids=lambda v: v["name"])
def test_dol_vectors(vector: dict[str, Any]) -> None:
    """The DOL parses into its entries and builds the expected data."""
    dol = bytes.fromhex(vector["dol"])
    assert parse_dol(dol) == [(int(t, 16), n) for t, n in vector["entries"]]
    data = {int(t, 16): bytes.fromhex(v) for t, v in vector["data"].items()}
    assert build_dol(dol, data).hex().upper() == vector["built"].upper()


@pytest.mark.parametrize("vector", VECTORS["tvr"], ids=lambda v: v["hex"])
def test_tvr_bits(vector: dict[str, Any]) -> None:
    """Named TVR bits land on the byte/bit EMV 4.4 Book 3 Annex C5 gives."""
    tvr = Tvr()
    for name in vector["bits"]:
        tvr.set(TvrBit[name])
    assert tvr.hex() == vector["hex"]
    assert {b.name for b in Tvr(bytes.fromhex(vector["hex"])).set_bits()} == set(vector["bits"])


@pytest.mark.parametrize("vector", VECTORS["tsi"], ids=lambda v: v["hex"])
def test_tsi_bits(vector: dict[str, Any]) -> None:
    """Named TSI bits land on the byte/bit of Annex C6."""
    tsi = Tsi()
    for name in vector["bits"]:
        tsi.set(TsiBit[name])
    assert tsi.hex() == vector["hex"]
