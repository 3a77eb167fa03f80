"""The simulator's --faults language."""

from __future__ import annotations

import pytest

from simulators.pinpad.errors import FaultSpecError
from simulators.pinpad.faults import Faults, parse_faults


@pytest.mark.parametrize(
    ("spec",                        "expected"),
    [
        ("",                            Faults()),
        ("noise",                       Faults(noise=True)),
        ("bad-lrc,nak=2",               Faults(bad_lrc=1, nak=2)),
        ("mute=3, slow=0.2",            Faults(mute=3, slow=0.2)),
        ("silent,hangup",               Faults(silent=True, hangup=True)),
        ("cancel,timeout=2",            Faults(cancel=1, timeout=2)),
        ("slow",                        Faults(slow=0.5)),
    ],
)  # fmt: skip
def test_parse(spec: str, expected: Faults) -> None:
    """Each documented item sets its fault; counts default to one."""
    assert parse_faults(spec) == expected


@pytest.mark.parametrize("spec", ["explode", "nak=x", "slow=-1", "noise=3", "mute=-2"])
def test_bad_specs(spec: str) -> None:
    """Unknown names and bad values raise FaultSpecError (a ValueError) naming the item."""
    with pytest.raises(FaultSpecError):
        parse_faults(spec)


def test_counted_faults_run_out() -> None:
    """A counted fault fires as many times as asked, then never again."""
    faults = parse_faults("nak=2")
    assert [faults.take("nak") for _ in range(3)] == [True, True, False]
