"""Card-simulator profiles for kernel defects of issue #13, through pcscd + vpcd + pyscard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal.cli.main import main
from tests.fixtures.fixed_dice import profile_without_random_selection

pytestmark = [
    pytest.mark.hardware,
    # pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
    pytest.mark.filterwarnings("ignore:.*TripleDES.*"),
]

READER = "Virtual PCD 00 00"


def test_proprietary_sfi12_record_is_not_parsed_over_pcscd(
    vpcd_card: Callable[..., object], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Book 3 §10.2: a non-TLV record in SFI 12 does not stop the transaction (visa-sfi12)."""
    vpcd_card("visa-sfi12")
    fixed = profile_without_random_selection(tmp_path)
    status = main(["--profile", str(fixed), "card", "transact", "--amount", "25.00",
                   "--currency", "MAD", "--reader", READER, "--timeout", "10", "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    result = json.loads(out.out)
    assert (result["oda"], result["oda_result"], result["cryptogram"], result["decision"]) == (
        "dda", "ok", "TC", "approved_offline")


def test_card_blocked_during_the_aid_search_over_pcscd(
    vpcd_card: Callable[..., object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Book 1 §12.3.3: 6A81 to SELECT in the list-of-AIDs search ends the session (exit 1,
    one line saying the card is blocked)."""
    vpcd_card("card-blocked")
    status = main(["card", "transact", "--amount", "5", "--reader", READER, "--timeout", "10"])
    err = capsys.readouterr().err
    assert status == 1 and "blocked" in err and err.count("\n") == 1
