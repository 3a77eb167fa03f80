"""`etika sim card`: option errors are one-line messages with a non-zero exit."""

from __future__ import annotations

import pytest

from terminal.cli.main import main


@pytest.mark.parametrize(
    ("argv",                                             "message"),
    [
        (["sim", "card"],                                  "--profile NAME is required"),
        (["sim", "card", "--profile", "amex"],             "unknown card profile 'amex'"),
        (["sim", "card", "--profile", "cb", "--faults", "x"], "unknown fault 'x'"),
        (["sim", "card", "--profile", "cb", "--contactless"], "no contactless interface"),
    ],
)
def test_bad_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each wrong option ends with `etika: error: ...` and exit status 2, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("etika: error: ") and message in err and "Traceback" not in err


def test_list_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    """--list-profiles prints every profile name with its description."""
    assert main(["sim", "card", "--list-profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("visa-credit", "mastercard-debit", "bancontact-maestro", "cb",
                 "domestic-visa", "visa-expired", "visa-blocked"):
        assert name in out
