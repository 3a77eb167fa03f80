"""``etika card read|transact`` on the in-process card simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.cli.main import main
from tests.fixtures.fixed_dice import profile_without_random_selection

# pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

TRANSACT_KEYS = {"aid", "label", "pan_masked", "expiry", "oda", "oda_result", "cvm", "tvr",
                 "tsi", "first_cryptogram", "cryptogram", "decision", "reason"}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_read_prints_identity_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """card read --json: aid, label and first6…last4 PAN only; no expiry (issue #12 item 10)."""
    out = run_json(capsys, "card", "read", "--simulated", "visa-credit", "--json")
    assert out == {"aid": "A0000000031010", "label": "VISA CREDIT",
                   "pan_masked": "476173…0010"}


def test_read_shows_expiry_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    """card read --show-expiry adds the expiry; the default output never prints it."""
    out = run_json(capsys, "card", "read", "--simulated", "visa-credit", "--json",
                   "--show-expiry")
    assert out["expiry"] == "3012"


@pytest.mark.parametrize(
    ("profile",          "amount", "extra",                   "oda", "cryptogram", "decision"),
    [
        ("visa-credit",      "25.00",  (),                        "dda", "TC",  "approved_offline"),
        ("mastercard-debit", "750.00", ("--issuer", "simulated"), "cda", "TC",  "approved_online"),
        ("cb",               "750.00", ("--offline",),            "sda", "AAC", "declined_unable_online"),
        ("domestic-visa",    "750.00", ("--issuer", "simulated"), "dda", "TC",  "approved_online"),
        ("visa-expired",     "25.00",  ("--issuer", "simulated"), "dda", "AAC", "declined_online"),
    ],
)
def test_transact_profiles(capsys: pytest.CaptureFixture[str], tmp_path: Path, profile: str,
                           amount: str, extra: tuple[str, ...], oda: str, cryptogram: str,
                           decision: str) -> None:
    """card transact --json prints every key; the simulated issuer really verifies the ARQC."""
    fixed = profile_without_random_selection(tmp_path)
    out = run_json(capsys, "--profile", str(fixed), "card", "transact", "--amount", amount,
                   "--currency", "MAD", "--simulated", profile, "--json", *extra)
    assert set(out) == TRANSACT_KEYS
    assert (out["oda"], out["oda_result"], out["cryptogram"], out["decision"]) == (
        oda, "ok", cryptogram, decision)
    assert len(out["tvr"]) == 10 and len(out["tsi"]) == 4


def test_transact_contactless(capsys: pytest.CaptureFixture[str]) -> None:
    """--contactless runs PPSE + qVSDC with fDDA."""
    out = run_json(capsys, "card", "transact", "--amount", "25.00", "--simulated",
                   "visa-credit", "--contactless", "--json")
    assert (out["oda"], out["oda_result"], out["cryptogram"]) == ("fdda", "ok", "TC")


@pytest.mark.parametrize(
    ("argv",                                                          "status", "message"),
    [
        (["card", "transact", "--amount", "5", "--simulated", "visa-blocked"], 1, "blocked"),
        (["card", "transact", "--amount", "5x", "--simulated", "cb"],          2, "not an amount"),
        (["card", "read", "--simulated", "nope"],                              2, "unknown card profile"),
        (["card", "transact", "--amount", "5", "--issuer", "simulated"],      2, "needs --simulated"),
        (["card", "transact", "--amount", "5", "--currency", "XYZ",
          "--simulated", "cb"],                                                2, "not accepted"),
    ],
)
def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], status: int,
                             message: str) -> None:
    """A card or usage error exits non-zero with one line on stderr, no traceback."""
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("etika: error:") and message in err


def test_no_pan_in_output(capsys: pytest.CaptureFixture[str]) -> None:
    """Neither the human nor the JSON output shows the clear PAN."""
    from simulators.card.profiles import get_profile

    pan = get_profile("visa-credit").apps[0].pan
    for extra in ([], ["--json"]):
        assert main(["card", "transact", "--amount", "750", "--simulated", "visa-credit",
                     *extra]) == 0
        out = capsys.readouterr()
        # The run did print the card (masked): an empty output would prove nothing.
        assert f"{pan[:6]}…{pan[-4:]}" in out.out
        assert pan not in out.out and pan not in out.err


@pytest.mark.parametrize(
    ("aid",            "expected"),
    [
        (None,             "D5040000011010"),
        ("A000000003",     "A0000000031010"),
    ],
)
def test_aid_option_chooses_among_applications(capsys: pytest.CaptureFixture[str],
                                               aid: str | None, expected: str) -> None:
    """The co-badged card: priority picks domestic; --aid picks Visa."""
    extra = ["--aid", aid] if aid else []
    out = run_json(capsys, "card", "read", "--simulated", "domestic-visa", "--json", *extra)
    assert out["aid"] == expected


def test_aid_option_names_what_the_card_offers(capsys: pytest.CaptureFixture[str]) -> None:
    """An --aid the card does not have fails with the list of its applications."""
    assert main(["card", "read", "--simulated", "domestic-visa", "--aid", "A000000004"]) == 1
    err = capsys.readouterr().err
    assert "D5040000011010" in err and "A0000000031010" in err
