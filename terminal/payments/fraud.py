"""Fraud scoring: a 0.00–1.00 risk score from a handful of explainable rules.

:class:`FraudScorer` is pure: the payment manager gathers the numbers (how often this card
fingerprint paid or was declined lately, the merchant's own amount statistics, the offline
exposure, the blacklists the platform pushed) into :class:`FraudInputs`, and
:meth:`FraudScorer.score` turns them into a :class:`FraudAssessment` without any I/O, so the
same inputs always give the same answer and every answer can be explained.

Each check yields a *risk* ``r`` in ``[0, 1]`` and has a *weight* ``w`` in ``[0, 1]`` from the
profile (``limits.toml`` ``[fraud.weights]``). The checks combine as independent evidence::

    score = 1 − Π (1 − w·r)

which stays within ``[0, 1]``, never falls when any risk rises, and reaches 1 as soon as one
check with weight 1 is fully risky (a blacklisted card). The score is rounded to two decimals
(``fraud_checks.risk_score DECIMAL(3,2)`` in seed 000) and mapped to a level
(low/medium/high/critical) and a decision (approve/review/decline) by the profile's thresholds.

=====================  ==========================================================
check                  risk
=====================  ==========================================================
``velocity``           payments of this card fingerprint in the window / max count
``amount``             standard deviations above the merchant's mean, scaled
                       between ``amount_z_start`` and ``amount_z_full``
``blacklist``          1 when the card fingerprint is blacklisted
``bin_range``          1 when the card's BIN falls in a blacklisted range
``country``            1 when the issuer country differs from the merchant's
``offline_exposure``   offline: (unsynced offline total + this amount) / limit
``declines``           declines of this card in the window / max declines
=====================  ==========================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from terminal.errors import TerminalError
from terminal.profile import FraudSettings

__all__ = [
    "FraudAssessment",
    "FraudCheck",
    "FraudDecision",
    "FraudInputError",
    "FraudInputs",
    "FraudLevel",
    "FraudScorer",
    "FraudSettings",
]

FraudLevel = Literal["low", "medium", "high", "critical"]
FraudDecision = Literal["approve", "review", "decline"]
CheckResult = Literal["pass", "warn", "fail", "skipped"]

_DIGITS = re.compile(r"^[0-9]+$")


class FraudInputError(TerminalError, ValueError):
    """The fraud inputs are malformed (a caller mistake); the message names the field."""


@dataclass(frozen=True, slots=True)
class FraudCheck:
    """One rule's verdict: what it looked at and how much risk it found."""

    name: str
    result: CheckResult
    risk: float
    weight: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "result": self.result, "risk": round(self.risk, 4),
                "weight": self.weight, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class FraudInputs:
    """Everything the rules need, gathered by the caller. No clear card data.

    ``bin`` is the leading 6 to 8 digits of the PAN (shown on receipts anyway);
    ``card_fingerprint`` is the HSM-keyed fingerprint of the card, never the PAN.
    Countries are ISO 3166 numeric codes (EMV 9F1A for the merchant, 5F28 for the issuer).
    Counts are of this card fingerprint within the profile's ``velocity_window_s``, not
    counting this payment.
    """

    card_fingerprint: str
    bin: str
    amount_minor: int
    currency: str
    merchant_country: int
    card_country: int | None = None
    card_count_in_window: int = 0
    card_declines_in_window: int = 0
    merchant_history_count: int = 0
    merchant_amount_mean_minor: float | None = None
    merchant_amount_stddev_minor: float | None = None
    offline: bool = False
    offline_exposure_minor: int = 0
    offline_limit_minor: int | None = None
    blacklisted_fingerprints: frozenset[str] = field(default_factory=frozenset)
    blacklisted_bin_ranges: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.card_fingerprint, str) or not self.card_fingerprint:
            raise FraudInputError("fraud inputs: card_fingerprint must be non-empty text",
                                  field="card_fingerprint")
        if not isinstance(self.bin, str) or not _DIGITS.fullmatch(self.bin) or not (
                6 <= len(self.bin) <= 8):
            raise FraudInputError("fraud inputs: bin must be the 6 to 8 leading PAN digits",
                                  field="bin")
        for name in ("amount_minor", "card_count_in_window", "card_declines_in_window",
                     "merchant_history_count", "offline_exposure_minor"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FraudInputError(f"fraud inputs: {name} must be an int >= 0, "
                                      f"not {value!r}", field=name)
        if self.offline_limit_minor is not None and (
                not isinstance(self.offline_limit_minor, int) or self.offline_limit_minor < 0):
            raise FraudInputError("fraud inputs: offline_limit_minor must be an int >= 0",
                                  field="offline_limit_minor")
        for name in ("merchant_amount_mean_minor", "merchant_amount_stddev_minor"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float)
                                      or not math.isfinite(value) or value < 0):
                raise FraudInputError(f"fraud inputs: {name} must be a finite number >= 0",
                                      field=name)
        for entry in self.blacklisted_bin_ranges:
            low, high = entry if isinstance(entry, tuple | list) and len(entry) == 2 else ("", "")
            if not (isinstance(low, str) and isinstance(high, str) and _DIGITS.fullmatch(low)
                    and _DIGITS.fullmatch(high)) or low > high.ljust(len(low), "9"):
                raise FraudInputError(
                    f"fraud inputs: blacklisted_bin_ranges entry {entry!r} is not a (low, high) "
                    "pair of rising digit strings", field="blacklisted_bin_ranges")


@dataclass(frozen=True, slots=True)
class FraudAssessment:
    """The score, its level and decision, and every check performed (seed 000 ``fraud_checks``)."""

    score: float
    level: FraudLevel
    decision: FraudDecision
    checks: list[dict[str, Any]]

    def as_row(self) -> dict[str, Any]:
        """Columns of a ``fraud_checks`` row (without ids and timestamps)."""
        return {"risk_score": f"{self.score:.2f}", "risk_level": self.level,
                "checks_performed": self.checks, "decision": self.decision}


def _clamp(value: float) -> float:
    return 0.0 if value <= 0 else 1.0 if value >= 1 else value


def _graded(risk: float) -> CheckResult:
    return "fail" if risk >= 1.0 else "warn" if risk >= 0.5 else "pass"


def _bin_in_range(bin_: str, low: str, high: str) -> bool:
    width = max(len(low), len(high))
    key = bin_[:width]
    return low.ljust(width, "0") <= key.ljust(width, "0") and key.ljust(
        width, "9") <= high.ljust(width, "9")


class FraudScorer:
    """Scores payments with the thresholds and weights of a profile's ``[fraud]`` section."""

    def __init__(self, settings: FraudSettings) -> None:
        if not isinstance(settings, FraudSettings):
            raise TypeError("FraudScorer needs the profile's FraudSettings")
        self.settings = settings

    def score(self, inputs: FraudInputs) -> FraudAssessment:
        """Assess one payment; pure (no I/O, no clock), deterministic."""
        s = self.settings
        if not s.enabled:
            check = FraudCheck("fraud_scoring", "skipped", 0.0, 0.0,
                               "fraud scoring is disabled in the profile")
            return FraudAssessment(0.0, "low", "approve", [check.as_dict()])
        checks = [
            self._velocity(inputs),
            self._amount(inputs),
            self._blacklist(inputs),
            self._bin_range(inputs),
            self._country(inputs),
            self._offline_exposure(inputs),
            self._declines(inputs),
        ]
        keep = 1.0
        for check in checks:
            keep *= 1.0 - check.weight * check.risk
        raw = _clamp(1.0 - keep)
        score = float(Decimal(repr(raw)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        level: FraudLevel = (
            "critical" if score >= s.level_critical else "high" if score >= s.level_high
            else "medium" if score >= s.level_medium else "low")
        decision: FraudDecision = (
            "decline" if score >= s.decline_at else "review" if score >= s.review_at
            else "approve")
        return FraudAssessment(score, level, decision, [c.as_dict() for c in checks])

    # --- the rules -------------------------------------------------------------------------

    def _velocity(self, i: FraudInputs) -> FraudCheck:
        s = self.settings
        risk = _clamp(i.card_count_in_window / s.velocity_max_count)
        return FraudCheck("velocity", _graded(risk), risk, s.weights.velocity,
                          f"{i.card_count_in_window} payment(s) by this card in the last "
                          f"{s.velocity_window_s} s (full risk at {s.velocity_max_count})")

    def _amount(self, i: FraudInputs) -> FraudCheck:
        s = self.settings
        weight = s.weights.amount
        mean = i.merchant_amount_mean_minor
        if mean is None or i.merchant_history_count < s.amount_min_history:
            return FraudCheck("amount", "skipped", 0.0, weight,
                              f"merchant history of {i.merchant_history_count} payment(s) is "
                              f"below the {s.amount_min_history} needed")
        # A merchant whose amounts never vary would otherwise flag one cent above the mean.
        spread = max(i.merchant_amount_stddev_minor or 0.0, 0.05 * mean, 1.0)
        z = (i.amount_minor - mean) / spread
        risk = _clamp((z - s.amount_z_start) / (s.amount_z_full - s.amount_z_start))
        return FraudCheck("amount", _graded(risk), risk, weight,
                          f"{i.amount_minor} is {z:+.1f} standard deviations from the "
                          f"merchant's mean {mean:.0f} {i.currency}")

    def _blacklist(self, i: FraudInputs) -> FraudCheck:
        hit = i.card_fingerprint in i.blacklisted_fingerprints
        return FraudCheck("blacklist", "fail" if hit else "pass", 1.0 if hit else 0.0,
                          self.settings.weights.blacklist,
                          "card fingerprint is blacklisted" if hit else
                          f"card not among {len(i.blacklisted_fingerprints)} blacklisted")

    def _bin_range(self, i: FraudInputs) -> FraudCheck:
        hits = [(lo, hi) for lo, hi in i.blacklisted_bin_ranges if _bin_in_range(i.bin, lo, hi)]
        detail = (f"BIN {i.bin[:6]} is in blacklisted range {hits[0][0]}..{hits[0][1]}" if hits
                  else f"BIN {i.bin[:6]} in none of {len(i.blacklisted_bin_ranges)} ranges")
        return FraudCheck("bin_range", "fail" if hits else "pass", 1.0 if hits else 0.0,
                          self.settings.weights.bin_range, detail)

    def _country(self, i: FraudInputs) -> FraudCheck:
        weight = self.settings.weights.country
        if i.card_country is None:
            return FraudCheck("country", "skipped", 0.0, weight,
                              "the card does not say its issuer country (5F28)")
        foreign = i.card_country != i.merchant_country
        return FraudCheck("country", "warn" if foreign else "pass", 1.0 if foreign else 0.0,
                          weight, f"card country {i.card_country:03d}, merchant country "
                          f"{i.merchant_country:03d}")

    def _offline_exposure(self, i: FraudInputs) -> FraudCheck:
        weight = self.settings.weights.offline_exposure
        if not i.offline:
            return FraudCheck("offline_exposure", "pass", 0.0, weight, "online authorisation")
        if i.offline_limit_minor is None:
            return FraudCheck("offline_exposure", "skipped", 0.0, weight,
                              f"no offline limit known for {i.currency}")
        total = i.offline_exposure_minor + i.amount_minor
        risk = 1.0 if i.offline_limit_minor == 0 else _clamp(total / i.offline_limit_minor)
        return FraudCheck("offline_exposure", _graded(risk), risk, weight,
                          f"offline total would be {total} of {i.offline_limit_minor} "
                          f"{i.currency}")

    def _declines(self, i: FraudInputs) -> FraudCheck:
        s = self.settings
        risk = _clamp(i.card_declines_in_window / s.max_declines)
        return FraudCheck("declines", _graded(risk), risk, s.weights.declines,
                          f"{i.card_declines_in_window} decline(s) of this card in the last "
                          f"{s.velocity_window_s} s (full risk at {s.max_declines})")
