"""Fraud scoring: each rule, the combined score, levels, decisions, bounds and monotonicity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from terminal.payments.fraud import FraudInputError, FraudInputs, FraudScorer, FraudSettings

MOROCCO, FRANCE = 504, 250
SCORER = FraudScorer(FraudSettings())


def base(**changes: object) -> FraudInputs:
    """An unremarkable online payment of a known card at a merchant with a long history."""
    inputs = FraudInputs(
        card_fingerprint="fp-1",
        bin="476173",
        amount_minor=10_000,
        currency="MAD",
        merchant_country=MOROCCO,
        card_country=MOROCCO,
        merchant_history_count=200,
        merchant_amount_mean_minor=10_000.0,
        merchant_amount_stddev_minor=2_000.0,
    )
    return replace(inputs, **changes)  # type: ignore[arg-type]


def check(assessment_checks: list[dict[str, object]], name: str) -> dict[str, object]:
    return next(c for c in assessment_checks if c["name"] == name)


def test_an_unremarkable_payment_is_low_risk_and_approved() -> None:
    """Nothing risky: score 0.00, level low, decision approve, all seven checks listed."""
    result = SCORER.score(base())
    assert (result.score, result.level, result.decision) == (0.0, "low", "approve")
    assert [c["name"] for c in result.checks] == [
        "velocity", "amount", "blacklist", "bin_range", "country", "offline_exposure",
        "declines"]
    assert all({"name", "result", "weight", "detail"} <= set(c) for c in result.checks)


@pytest.mark.parametrize(
    ("changes",                                                     "name",             "result", "risk"),
    [
        ({"card_count_in_window": 2},                               "velocity",         "pass",   0.4),
        ({"card_count_in_window": 3},                               "velocity",         "warn",   0.6),
        ({"card_count_in_window": 9},                               "velocity",         "fail",   1.0),
        ({"amount_minor": 14_000},                                  "amount",           "pass",   0.0),
        ({"amount_minor": 18_000},                                  "amount",           "warn",   0.5),
        ({"amount_minor": 30_000},                                  "amount",           "fail",   1.0),
        ({"merchant_history_count": 3, "amount_minor": 99_000},     "amount",           "skipped", 0.0),
        ({"blacklisted_fingerprints": frozenset({"fp-1"})},         "blacklist",        "fail",   1.0),
        ({"blacklisted_fingerprints": frozenset({"fp-2"})},         "blacklist",        "pass",   0.0),
        ({"blacklisted_bin_ranges": [("476100", "476199")]},        "bin_range",        "fail",   1.0),
        ({"blacklisted_bin_ranges": [("4761", "4761")]},            "bin_range",        "fail",   1.0),
        ({"blacklisted_bin_ranges": [("476174", "476199")]},        "bin_range",        "pass",   0.0),
        ({"card_country": FRANCE},                                  "country",          "warn",   1.0),
        ({"card_country": None},                                    "country",          "skipped", 0.0),
        ({"offline": True, "offline_limit_minor": 100_000},         "offline_exposure", "pass",   0.1),
        ({"offline": True, "offline_limit_minor": 100_000,
          "offline_exposure_minor": 50_000},                        "offline_exposure", "warn",   0.6),
        ({"offline": True, "offline_limit_minor": 100_000,
          "offline_exposure_minor": 95_000},                        "offline_exposure", "fail",   1.0),
        ({"offline": True},                                         "offline_exposure", "skipped", 0.0),
        ({"card_declines_in_window": 1},                            "declines",         "pass",   0.3333),
        ({"card_declines_in_window": 3},                            "declines",         "fail",   1.0),
    ],
)
def test_each_rule_grades_its_own_risk(
    changes: dict[str, object], name: str, result: str, risk: float
) -> None:
    """Each rule reports pass/warn/fail/skipped and its risk from the inputs it looks at."""
    found = check(SCORER.score(base(**changes)).checks, name)
    assert (found["result"], found["risk"]) == (result, pytest.approx(risk, abs=1e-4))


@pytest.mark.parametrize(
    ("changes",                                                      "score", "level",    "decision"),
    [
        ({"card_country": FRANCE},                                   0.20,    "low",      "approve"),
        ({"card_count_in_window": 5},                                0.50,    "medium",   "review"),
        ({"card_count_in_window": 5, "card_declines_in_window": 3},  0.75,    "high",     "review"),
        ({"card_count_in_window": 5, "card_declines_in_window": 3,
          "card_country": FRANCE},                                   0.80,    "high",     "decline"),
        ({"blacklisted_fingerprints": frozenset({"fp-1"})},          1.00,    "critical", "decline"),
    ],
)
def test_checks_combine_into_score_level_and_decision(
    changes: dict[str, object], score: float, level: str, decision: str
) -> None:
    """score = 1 − Π(1 − weight·risk), rounded to 0.01, then the profile's thresholds."""
    result = SCORER.score(base(**changes))
    assert (result.score, result.level, result.decision) == (score, level, decision)


def test_thresholds_and_weights_come_from_the_settings() -> None:
    """A stricter profile declines what the default only reviews."""
    strict = FraudScorer(FraudSettings(review_at=0.1, decline_at=0.2, level_medium=0.1,
                                       level_high=0.15, level_critical=0.2))
    assert strict.score(base(card_country=FRANCE)).decision == "decline"
    quiet = FraudScorer(FraudSettings(weights={"country": 0.0}))  # type: ignore[arg-type]
    assert quiet.score(base(card_country=FRANCE)).score == 0.0


def test_disabled_scoring_approves_and_says_so() -> None:
    """enabled = false: score 0, approve, and the one check explains it was skipped."""
    result = FraudScorer(FraudSettings(enabled=False)).score(
        base(blacklisted_fingerprints=frozenset({"fp-1"})))
    assert (result.score, result.decision) == (0.0, "approve")
    assert result.checks[0]["result"] == "skipped"


def test_row_matches_the_fraud_checks_table() -> None:
    """as_row gives seed 000's fraud_checks columns, the score as DECIMAL(3,2) text."""
    row = SCORER.score(base(card_country=FRANCE)).as_row()
    assert row["risk_score"] == "0.20"
    assert set(row) == {"risk_score", "risk_level", "checks_performed", "decision"}


@pytest.mark.parametrize(
    ("changes",                                        "field"),
    [
        ({"bin": "4761"},                              "bin"),
        ({"bin": "47617a"},                            "bin"),
        ({"card_fingerprint": ""},                     "card_fingerprint"),
        ({"amount_minor": -1},                         "amount_minor"),
        ({"card_count_in_window": True},               "card_count_in_window"),
        ({"merchant_amount_mean_minor": float("nan")}, "merchant_amount_mean_minor"),
        ({"blacklisted_bin_ranges": [("4800", "4700")]}, "blacklisted_bin_ranges"),
    ],
)
def test_malformed_inputs_are_refused_by_name(changes: dict[str, object], field: str) -> None:
    """A caller mistake is a FraudInputError naming the field, not a crash in a rule."""
    with pytest.raises(FraudInputError, match=field):
        base(**changes)


def test_the_settings_refuse_thresholds_out_of_order() -> None:
    """review_at above decline_at (or levels out of order) is a profile error."""
    with pytest.raises(ValidationError, match="review_at"):
        FraudSettings(review_at=0.9, decline_at=0.5)


# --- properties ----------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=50)
amounts = st.integers(min_value=0, max_value=10**9)
risky_inputs = st.builds(
    base,
    amount_minor=amounts,
    card_count_in_window=counts,
    card_declines_in_window=counts,
    card_country=st.sampled_from([None, MOROCCO, FRANCE]),
    offline=st.booleans(),
    offline_exposure_minor=amounts,
    offline_limit_minor=st.one_of(st.none(), amounts),
    blacklisted_fingerprints=st.sampled_from([frozenset(), frozenset({"fp-1"})]),
)
weights = st.builds(
    dict, velocity=st.floats(0, 1), amount=st.floats(0, 1), country=st.floats(0, 1),
    declines=st.floats(0, 1), offline_exposure=st.floats(0, 1), blacklist=st.floats(0, 1))


@settings(max_examples=80, deadline=None)
@given(inputs=risky_inputs, weights=weights)
def test_score_stays_within_zero_and_one(inputs: FraudInputs, weights: dict[str, float]) -> None:
    """Whatever the inputs and weights, the score is in [0, 1] and each risk in [0, 1]."""
    result = FraudScorer(FraudSettings(weights=weights)).score(inputs)  # type: ignore[arg-type]
    assert 0.0 <= result.score <= 1.0
    assert all(0.0 <= c["risk"] <= 1.0 for c in result.checks)


@settings(max_examples=80, deadline=None)
@given(
    inputs=risky_inputs,
    more_count=counts, more_declines=counts, more_amount=amounts, more_exposure=amounts,
    foreign=st.booleans(), blacklist=st.booleans(),
)
def test_score_never_falls_when_risk_rises(
    inputs: FraudInputs, more_count: int, more_declines: int, more_amount: int,
    more_exposure: int, foreign: bool, blacklist: bool,
) -> None:
    """More velocity, declines, amount, exposure, a foreign card or a blacklist hit never lower
    the score, and the level and decision never get milder."""
    riskier = replace(
        inputs,
        card_count_in_window=inputs.card_count_in_window + more_count,
        card_declines_in_window=inputs.card_declines_in_window + more_declines,
        amount_minor=inputs.amount_minor + more_amount,
        offline_exposure_minor=inputs.offline_exposure_minor + more_exposure,
        card_country=FRANCE if foreign and inputs.card_country is not None
        else inputs.card_country,
        blacklisted_fingerprints=frozenset({"fp-1"}) if blacklist
        else inputs.blacklisted_fingerprints,
    )
    before, after = SCORER.score(inputs), SCORER.score(riskier)
    order = {"low": 0, "medium": 1, "high": 2, "critical": 3,
             "approve": 0, "review": 1, "decline": 2}
    assert after.score >= before.score
    assert order[after.level] >= order[before.level]
    assert order[after.decision] >= order[before.decision]
