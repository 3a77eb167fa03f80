"""PANs are 13–19 digits (ISO/IEC 7812-1); the log masker masks a card number of any length
from 12 digits, so a short or malformed PAN is never logged in clear (issue #12 item 10)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hsm.cards import check_pan, mask_pan
from terminal.logs import LOG_FILE_NAME, configure_logging, luhn_valid, mask_pan_text


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


PAN_12 = _luhn_complete("41111111111")
PAN_22 = _luhn_complete("411111111111111111111")


def test_twelve_digit_pan_is_refused() -> None:
    """A Luhn-valid 12-digit number is not a PAN: check_pan refuses it without echoing it."""
    with pytest.raises(ValueError, match="13 to 19 digits") as info:
        check_pan(PAN_12)
    assert PAN_12 not in str(info.value)


@pytest.mark.parametrize(
    ("text",                          "clear"),
    [
        (f"pan={PAN_12}",                  PAN_12),
        (f"pan={PAN_22}",                  PAN_22),
        (f"pan={PAN_12[:4]} {PAN_12[4:8]} {PAN_12[8:]}", PAN_12),
    ],
)
def test_masker_covers_any_length(text: str, clear: str) -> None:
    """12-digit and over-long Luhn-valid runs are masked, grouped or not."""
    masked = mask_pan_text(text)
    assert clear not in masked.replace(" ", "")
    assert masked.endswith(clear[-4:])


def test_twelve_digits_keep_only_the_last_four() -> None:
    """For a 12-digit number first6+last4 would show 10 digits: only the last 4 remain."""
    assert mask_pan_text(PAN_12) == "********" + PAN_12[-4:]
    assert mask_pan(PAN_12) == "…" + PAN_12[-4:]


def test_short_numbers_are_left_alone() -> None:
    """Amounts, STANs and dates (under 12 digits) are not touched."""
    assert mask_pan_text("stan=000123 amount=250000 at 20261203") == (
        "stan=000123 amount=250000 at 20261203")


def test_a_logged_twelve_digit_pan_never_reaches_the_file(tmp_path: Path) -> None:
    """A 12-digit PAN in a log message or an int field is masked in the JSON log file."""
    configure_logging(tmp_path, console=False)
    try:
        logging.getLogger("etika.test").warning("card %s declined", PAN_12)
        logging.getLogger("etika.test").warning("as int", extra={"pan": int(PAN_12)})
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = (tmp_path / LOG_FILE_NAME).read_text()
    finally:
        configure_logging(None, console=False)
    assert PAN_12 not in text
    assert any(PAN_12[-4:] in json.dumps(json.loads(line)) for line in text.splitlines())
