"""Whatever a card answers, the EMV kernel ends in a result or its own error (issue #17).

The whole kernel — selection, then the contact flow, qVSDC or M/Chip contactless, or a
card read — runs
over :class:`simulators.card.hostile.HostileCardReader`: a simulated card (the driver's
scripted reader underneath) whose every answer hypothesis may keep or change (status word,
truncation, a data object emptied, cut, lengthened, dropped, added or repeated, raw bytes,
a flipped byte), with the host and PIN pads chosen by the same input. The same inputs
replay through ``fuzz/fuzz_kernel.py`` (atheris).
"""

from __future__ import annotations

import asyncio
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etika_errors import EtikaError
from simulators.card.hostile import (
    AMOUNTS,
    SCENARIOS,
    Op,
    default_config,
    reads_only,
    run_scenario,
)
from terminal.emv.errors import EmvError
from terminal.emv.result import TransactionResult

# pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
warnings.filterwarnings("ignore", message=".*TripleDES.*")

CONFIG = default_config()
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def hostile_cards(draw: st.DrawFn) -> bytes:
    """A scenario (card, interface, amount, host and pads), then one change per answer:
    mostly structural ones, so that a well-formed card with one bad object goes deep."""
    head = bytes([draw(st.integers(0, len(SCENARIOS) - 1)),
                  draw(st.integers(0, len(AMOUNTS) - 1)), draw(st.integers(0, 255))])
    answers = draw(st.lists(
        st.one_of(st.just(bytes([Op.KEEP])),
                  st.tuples(st.sampled_from(list(Op)), st.binary(max_size=12)).map(
                      lambda t: bytes([t[0]]) + t[1])),
        max_size=24))
    return head + b"".join(answers)


def _outcome(data: bytes) -> TransactionResult | EmvError:
    try:
        return asyncio.run(run_scenario(CONFIG, data))
    except EmvError as exc:
        return exc


@FUZZ
@given(data=st.one_of(hostile_cards(), st.binary(min_size=3, max_size=300)))
def test_kernel_over_a_hostile_card_ends_in_a_result_or_its_own_error(data: bytes) -> None:
    """Any card behaviour: a TransactionResult with a decision, or an EmvError (an
    EtikaError of terminal.emv.errors) — never IndexError, ValueError or the like."""
    outcome = _outcome(data)
    if isinstance(outcome, EmvError):
        assert isinstance(outcome, EtikaError) and outcome.message
        return
    if reads_only(data):
        assert outcome.aid and not outcome.cryptogram  # a read computes no cryptogram
        return
    assert outcome.decision and outcome.cryptogram in ("TC", "ARQC", "AAC")


def test_an_unchanged_card_completes_on_every_scenario() -> None:
    """The harness itself: with no change to any answer, each scenario ends in a result
    (so the fuzz targets start from transactions that reach GENERATE AC)."""
    for index, (profile, interface) in enumerate(SCENARIOS):
        outcome = _outcome(bytes([index, 2, 1]))
        assert isinstance(outcome, TransactionResult), (profile, interface, outcome)
        assert outcome.decision, (profile, interface)
