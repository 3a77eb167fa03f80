"""One ``--faults`` parser for every simulator: the same forms, the same refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from etika_errors import EtikaError
from simulators.card.run import build_card
from simulators.faults import Count, Flag, Seconds, Valued, parse_fault_spec
from simulators.pinpad.faults import parse_faults as pinpad_faults
from simulators.psp.faults import parse_faults as psp_faults


def _card(spec: str) -> object:
    return build_card("cb", faults=spec)


PARSERS: dict[str, Callable[[str], object]] = {"card": _card, "pinpad": pinpad_faults,
                                               "psp": psp_faults}


@pytest.mark.parametrize("simulator", sorted(PARSERS))
def test_unknown_fault_is_refused_alike(simulator: str) -> None:
    """Every simulator names an unknown fault the same way and lists what it knows."""
    with pytest.raises(EtikaError, match=r"unknown fault 'bogus'; known: "):
        PARSERS[simulator]("bogus")


@pytest.mark.parametrize(
    ("simulator",  "spec"),
    [
        ("card",       "t0=1"),          # a flag given a value
        ("pinpad",     "noise=3"),       # a flag given a value
        ("pinpad",     "nak=-1"),
        ("pinpad",     "slow=nan"),
        ("psp",        "latency=1e999"),
        ("psp",        "timeout=x"),
        ("psp",        "decline"),       # needs CODE
    ],
)
def test_bad_value_names_the_item_and_its_form(simulator: str, spec: str) -> None:
    """A known fault with a bad value is a 'bad value' error quoting the item and its form."""
    with pytest.raises(EtikaError, match=r"bad value in fault .* \(the form is "):
        PARSERS[simulator](spec)


def test_forms_parse_defaults_and_values() -> None:
    """Flags, counts with defaults, bounded seconds and custom values parse by their form."""
    forms = {"on": Flag(), "n": Count(default=2), "wait": Seconds(default=0.5, maximum=5),
             "code": Valued(lambda v: v.upper(), "CODE")}
    assert parse_fault_spec(" on , n, wait=1.5,code=ab", forms, ValueError) == {
        "on": True, "n": 2, "wait": 1.5, "code": "AB"}
    assert parse_fault_spec(None, forms, ValueError) == {}


def test_pinpad_and_psp_keep_their_fields() -> None:
    """The shared parser fills each simulator's own fault state."""
    pad = pinpad_faults("noise,bad-lrc=2,slow=0.1,cancel")
    assert (pad.noise, pad.bad_lrc, pad.slow, pad.cancel) == (True, 2, 0.1, 1)
    psp = psp_faults("drop-after=2,decline=05:3,latency")
    assert (psp.drop_after, psp.decline_code, psp.decline_count, psp.latency) == (2, "05", 3, 0.5)
