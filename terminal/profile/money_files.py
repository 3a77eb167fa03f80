"""The models of ``currencies.toml`` (accepted ISO 4217 currencies, the default one, FX rates
with age limits) and ``limits.toml`` (offline approval limits, ``[fraud]`` scoring thresholds
and weights, ``[payments]``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from terminal.money import CURRENCIES, Currency, FxRate
from terminal.profile.fields import (
    CurrencyCode,
    MinorUnits,
    StrictModel,
)

__all__ = [
    "CurrenciesFile",
    "CurrencyEntry",
    "FraudSettings",
    "FraudWeights",
    "FxRateEntry",
    "LimitsFile",
    "OfflineLimits",
    "PaymentsSettings",
]


# --- currencies.toml ---------------------------------------------------------------------


class CurrencyEntry(StrictModel):
    code: CurrencyCode
    numeric: Annotated[int, Field(ge=1, le=999)]
    exponent: Annotated[int, Field(ge=0, le=4)]

    @model_validator(mode="after")
    def _matches_iso4217(self) -> CurrencyEntry:
        iso = CURRENCIES[self.code]
        if (self.numeric, self.exponent) != (iso.numeric, iso.exponent):
            raise ValueError(
                f"{self.code} is numeric {iso.numeric} with exponent {iso.exponent} in ISO 4217"
            )
        return self


_TEN_YEARS_S = 10 * 366 * 86400
_EARLIEST_AS_OF = datetime(2000, 1, 2)
_LATEST_AS_OF = datetime(2999, 12, 30)


class FxRateEntry(StrictModel):
    base: CurrencyCode
    quote: CurrencyCode
    # Bounded so converting with it stays inside Decimal's default 28-digit context (a rate
    # such as "1e999999" validated and then failed in the middle of a sale).
    rate: Decimal = Field(gt=0, le=Decimal(10**9), max_digits=24, decimal_places=15)
    as_of: datetime
    max_age_s: Annotated[int, Field(gt=0, le=_TEN_YEARS_S)]

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_is_text(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write the rate as a string ("10.8350") so no precision is lost')
        return value

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2026-11-22T06:00:00Z")
        # Near year 1 or 9999 the conversion to UTC and age arithmetic overflow (issue #17
        # item 10); a rate is from this era.
        if not _EARLIEST_AS_OF <= value.replace(tzinfo=None) <= _LATEST_AS_OF:
            raise ValueError("must be a date between 2000 and 2999")
        return value

    def to_rate(self) -> FxRate:
        return FxRate(
            base=CURRENCIES[self.base],
            quote=CURRENCIES[self.quote],
            rate=self.rate,
            as_of=self.as_of.astimezone(UTC),
            max_age=timedelta(seconds=self.max_age_s),
        )


class CurrenciesFile(StrictModel):
    default: CurrencyCode
    currency: Annotated[list[CurrencyEntry], Field(min_length=1)]
    fx_rate: list[FxRateEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CurrenciesFile:
        codes = [c.code for c in self.currency]
        if len(set(codes)) != len(codes):
            raise ValueError("a currency is listed twice")
        if self.default not in codes:
            raise ValueError(f"default currency {self.default} is not in the currency list")
        for rate in self.fx_rate:
            for code in (rate.base, rate.quote):
                if code not in codes:
                    raise ValueError(f"FX rate {rate.base}/{rate.quote} uses unlisted {code}")
        return self

    @property
    def currencies(self) -> dict[str, Currency]:
        return {c.code: CURRENCIES[c.code] for c in self.currency}

    def rates(self) -> list[FxRate]:
        return [r.to_rate() for r in self.fx_rate]


# --- limits.toml -------------------------------------------------------------------------


class OfflineLimits(StrictModel):
    max_count: Annotated[int, Field(ge=0, le=1_000_000)]
    max_age_s: Annotated[int, Field(gt=0, le=_TEN_YEARS_S)]
    max_per_transaction: dict[CurrencyCode, MinorUnits]
    max_cumulative: dict[CurrencyCode, MinorUnits]

    @model_validator(mode="after")
    def _per_transaction_within_cumulative(self) -> OfflineLimits:
        for code, limit in self.max_per_transaction.items():
            total = self.max_cumulative.get(code)
            if total is None:
                raise ValueError(f"max_cumulative has no limit for {code}")
            if limit > total:
                raise ValueError(f"{code}: max_per_transaction exceeds max_cumulative")
        return self


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class FraudWeights(StrictModel):
    """How much each check can add to the fraud score (0 = ignored, 1 = decisive alone)."""

    velocity: Fraction = 0.5
    amount: Fraction = 0.4
    blacklist: Fraction = 1.0
    bin_range: Fraction = 1.0
    country: Fraction = 0.2
    offline_exposure: Fraction = 0.3
    declines: Fraction = 0.5


class FraudSettings(StrictModel):
    """``limits.toml`` ``[fraud]``: thresholds of :mod:`terminal.payments.fraud`.

    Every field has a default so profiles written before fraud scoring still load.
    """

    enabled: bool = True
    #: How far back the payment manager counts a card's transactions and declines.
    velocity_window_s: Annotated[int, Field(gt=0, le=30 * 86400)] = 3600
    #: Transactions of one card fingerprint within the window that make velocity fully risky.
    velocity_max_count: Annotated[int, Field(ge=1, le=10_000)] = 5
    #: Declines of one card within the window that make the decline check fully risky.
    max_declines: Annotated[int, Field(ge=1, le=1000)] = 3
    #: Amount check: the merchant's history needs this many payments before it counts.
    amount_min_history: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    #: Standard deviations above the merchant's mean where the amount starts / is fully risky.
    amount_z_start: Annotated[float, Field(ge=0, le=100)] = 2.0
    amount_z_full: Annotated[float, Field(gt=0, le=100)] = 6.0
    #: Score thresholds of the levels and the decisions (0..1, rising).
    level_medium: Fraction = 0.30
    level_high: Fraction = 0.60
    level_critical: Fraction = 0.85
    review_at: Fraction = 0.50
    decline_at: Fraction = 0.80
    weights: FraudWeights = FraudWeights()

    @model_validator(mode="after")
    def _thresholds_rise(self) -> FraudSettings:
        if not self.level_medium <= self.level_high <= self.level_critical:
            raise ValueError("level_medium <= level_high <= level_critical must hold")
        if not self.review_at <= self.decline_at:
            raise ValueError("review_at must not exceed decline_at")
        if self.amount_z_start >= self.amount_z_full:
            raise ValueError("amount_z_start must be below amount_z_full")
        return self


class PaymentsSettings(StrictModel):
    """``limits.toml`` ``[payments]``: how long a dual transaction may take (seed 001 §2.3)."""

    #: One deadline for the financial authorisation and the PoP submission together.
    deadline_ms: Annotated[int, Field(ge=100, le=60_000)] = 2000
    #: How long the cashier waits for a card to be presented.
    card_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0


class LimitsFile(StrictModel):
    offline: OfflineLimits
    fraud: FraudSettings = FraudSettings()
    payments: PaymentsSettings = PaymentsSettings()
