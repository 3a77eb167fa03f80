"""Logging: JSON lines in the data dir, and card numbers masked wherever they appear."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from terminal.logs import LOG_FILE_NAME, configure_logging, luhn_valid, mask_pan_text

TEST_PANS = ["4111111111111111", "5500000000000004", "4000000000000002", "374245455400126",
             "6011000990139424", "4761739001010010"]


def _with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable: one check digit always fits")


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "logs"
    configure_logging(directory, console=False)
    yield directory
    configure_logging(None, console=False)


@pytest.mark.parametrize(
    ("text",                                   "expected"),
    [
        ("pan 4111111111111111 read",              "pan 411111******1111 read"),
        ("4111 1111 1111 1111",                    "411111******1111"),
        ("5500-0000-0000-0004",                    "550000******0004"),
        ("track 4111111111111111D2512201",         "track 411111******1111D2512201"),
        ("not luhn 4111111111111112",              "not luhn 4111111111111112"),
        ("too short 411111111116",                 "too short 411111111116"),
        ("stan 000123 amount 000000001250",        "stan 000123 amount 000000001250"),
    ],
)
def test_mask_pan_text(text: str, expected: str) -> None:
    """Luhn-valid 13-19 digit runs are masked to first 6 / last 4; other numbers stay."""
    assert mask_pan_text(text) == expected


@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18),
    before=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    after=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
)
def test_no_luhn_valid_pan_survives_masking(body: str, before: str, after: str) -> None:
    """Whatever surrounds it, a Luhn-valid PAN never comes out of the mask in clear."""
    pan = _with_check_digit(body)
    masked = mask_pan_text(before + pan + after)
    assert pan not in masked
    assert masked.startswith(before) and masked.endswith(after)


def test_every_event_field_is_masked_in_the_json_file(log_dir: Path) -> None:
    """Nested values, ints, bytes, exceptions and stdlib records are all masked on disk."""
    log = structlog.get_logger("test")
    log.info("card", pan=TEST_PANS[0], nested={"list": [TEST_PANS[1]]}, number=int(TEST_PANS[2]),
             raw=TEST_PANS[3].encode(), timestamp_ms=1700000000000)
    try:
        raise ValueError(f"declined {TEST_PANS[4]}")
    except ValueError:
        log.exception("failure")
    logging.getLogger("some.library").warning("saw %s", TEST_PANS[5])
    text = (log_dir / LOG_FILE_NAME).read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines][:2] == ["card", "failure"]
    assert lines[0]["timestamp_ms"] == 1700000000000  # not a PAN: left alone
    for pan in TEST_PANS:
        assert pan not in text
    assert not any(luhn_valid(run) for run in re.findall(r"\d{13,19}", text)
                   if run != "1700000000000")
