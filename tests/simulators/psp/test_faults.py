"""The PSP simulators' --faults language."""

from __future__ import annotations

import pytest

from simulators.psp.faults import FaultSpecError, parse_faults


@pytest.mark.parametrize(
    ("spec",                      "attribute",      "value"),
    [
        ("latency=0.2",               "latency",        0.2),
        ("latency",                   "latency",        0.5),
        ("timeout",                   "timeout",        1),
        ("timeout=3",                 "timeout",        3),
        ("drop-after=2",              "drop_after",     2),
        ("duplicate=1, malformed=2",  "malformed",      2),
        ("truncated=4",               "truncated",      4),
        ("decline=51",                "decline_code",   "51"),
        ("decline=05:2",              "decline_count",  2),
    ],
)
def test_parse(spec: str, attribute: str, value: object) -> None:
    """Each fault form sets its field."""
    assert getattr(parse_faults(spec), attribute) == value


@pytest.mark.parametrize(
    ("spec",             "message"),
    [
        ("bogus",            "unknown fault"),
        ("timeout=-1",       "bad value"),
        ("latency=abc",      "bad value"),
        ("decline=00",       "bad value"),
        ("decline",          "bad value"),
        ("decline=51:0",     "bad value"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    """A bad spec is a FaultSpecError naming the item."""
    with pytest.raises(FaultSpecError, match=message):
        parse_faults(spec)


def test_counted_faults_run_out() -> None:
    """Counted faults fire their count, then stop; a counted decline too."""
    faults = parse_faults("timeout=2,decline=51:1")
    assert [faults.take("timeout") for _ in range(3)] == [True, True, False]
    assert [faults.take_decline() for _ in range(2)] == ["51", None]


def test_uncounted_decline_is_permanent() -> None:
    """decline=CODE without a count declines every authorisation."""
    faults = parse_faults("decline=91")
    assert [faults.take_decline() for _ in range(3)] == ["91", "91", "91"]
