"""etika_argtypes: the one set of CLI argument types every command group uses (#10.6)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

import etika_argtypes as types

CASES: list[tuple[Callable[[str], Any], str, Any]] = [
    # type                    text             value (None: refused)
    (types.seconds,           "2.5",           2.5),
    (types.seconds,           "0",             None),
    (types.seconds,           "nan",           None),
    (types.seconds,           "inf",           None),
    (types.port,              "8883",          8883),
    (types.port,              "0",             None),
    (types.port,              "65536",         None),
    (types.port_or_zero,      "0",             0),
    (types.positive_int,      "1",             1),
    (types.positive_int,      "0",             None),
    (types.session_expiry,    "4294967295",    4294967295),
    (types.session_expiry,    "4294967296",    None),
    (types.key_version,       "2",             2),
    (types.key_version,       "0",             None),
    (types.baud,              "9600",          9600),
    (types.baud,              "-1",            None),
    (types.milliseconds,      "0",             0),
    (types.milliseconds,      "86400001",      None),
    (types.business_date,     "2026-11-22",    dt.date(2026, 11, 22)),
    (types.business_date,     "22/11/2026",    None),
    (types.card_bin,          "476173",        "476173"),
    (types.card_bin,          "4761",          None),
    (types.aid_hex,           "A0000000031010", "A0000000031010"),
    (types.aid_hex,           "A000",          None),
    (types.not_empty,         " ",             None),
]


@pytest.mark.parametrize(("kind", "text", "value"), CASES,
                         ids=[f"{k.__name__}:{t!r}" for k, t, _ in CASES])
def test_argument_type(kind: Callable[[str], Any], text: str, value: Any) -> None:
    """Each type returns the value, or refuses the text as argparse expects."""
    if value is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    else:
        assert kind(text) == value
