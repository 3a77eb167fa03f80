"""``etika card transact`` for every simulator profile through pcscd + vpcd + pyscard."""

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


@pytest.mark.parametrize(
    ("profile",          "interface",   "argv",                         "oda",  "cryptogram", "decision"),
    [
        ("visa-credit",      "contact",     ["--amount", "25.00"],          "dda",  "TC",  "approved_offline"),
        ("visa-credit",      "contactless", ["--amount", "25.00", "--contactless"], "fdda", "TC", "approved_offline"),
        ("mastercard-debit", "contact",     ["--amount", "25.00"],          "cda",  "TC",  "approved_offline"),
        ("cb",               "contact",     ["--amount", "25.00"],          "sda",  "TC",  "approved_offline"),
        ("domestic-visa",    "contact",     ["--amount", "25.00"],          "dda",  "TC",  "approved_offline"),
        ("visa-credit",      "contact",     ["--amount", "750.00", "--offline"], "dda", "AAC", "declined_unable_online"),
        ("visa-expired",     "contact",     ["--amount", "25.00", "--offline"],  "dda", "AAC", "declined_unable_online"),
    ],
)
def test_transact_over_pcscd(vpcd_card: Callable[..., object], capsys: pytest.CaptureFixture[str],
                             tmp_path: Path, profile: str, interface: str, argv: list[str],
                             oda: str, cryptogram: str, decision: str) -> None:
    """Each profile completes on the real stack with the expected ODA and cryptogram."""
    vpcd_card(profile, interface=interface)
    fixed = profile_without_random_selection(tmp_path)  # one outcome per row, no dice
    status = main(["--profile", str(fixed), "card", "transact", "--currency", "MAD",
                   "--reader", READER, "--timeout", "10", "--json", *argv])
    out = capsys.readouterr()
    assert status == 0, out.err
    result = json.loads(out.out)
    assert (result["oda"], result["oda_result"], result["cryptogram"], result["decision"]) == (
        oda, "ok", cryptogram, decision)


def test_blocked_application_over_pcscd(vpcd_card: Callable[..., object],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The blocked card exits 1 with a one-line reason."""
    vpcd_card("visa-blocked")
    status = main(["card", "transact", "--amount", "5", "--reader", READER, "--timeout", "10"])
    err = capsys.readouterr().err
    assert status == 1 and "blocked" in err and err.count("\n") == 1


def test_read_over_pcscd(vpcd_card: Callable[..., object],
                         capsys: pytest.CaptureFixture[str]) -> None:
    """card read prints the masked identity from the real reader."""
    vpcd_card("domestic-visa")
    assert main(["card", "read", "--reader", READER, "--timeout", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["aid"] == "D5040000011010" and "…" in result["pan_masked"]


@pytest.mark.parametrize("fault", ["tamper-sdad", "tamper-icc-cert"])
def test_tampered_card_over_pcscd(vpcd_card: Callable[..., object],
                                  capsys: pytest.CaptureFixture[str], fault: str) -> None:
    """A tampered signature or certificate fails ODA; the TACs send it online → declined offline."""
    vpcd_card("visa-credit", faults=(fault,))
    assert main(["card", "transact", "--amount", "25.00", "--reader", READER, "--offline",
                 "--timeout", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["oda_result"] == "failed"
    assert int(result["tvr"][:2], 16) & 0x08  # TVR byte 1 b4: DDA failed
    assert result["cryptogram"] == "AAC"
