"""Money: integer minor units plus an ISO 4217 currency, cashier input parsing, FX conversion.

Amounts never travel as floats. ``Amount(1250, MAD)`` is 12.50 MAD. What a cashier types
(``12.5``, ``12,50``, ``1 250,00``, ``1.250,00``, ``1,250.00``) is parsed by
:func:`parse_amount`; anything else is refused with a message that says what was expected.
FX conversion is done in :class:`~decimal.Decimal` and rounded half-even to the target
currency's exponent (ISO 4217 minor unit); a rate older than its maximum age is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from terminal.errors import MoneyError, StaleRateError

__all__ = [
    "CURRENCIES",
    "Amount",
    "Currency",
    "FxRate",
    "convert",
    "currency",
    "parse_amount",
]

#: EMV amounts are n12 (Book 3 Annex A, tag 9F02): twelve digits of minor units at most.
MAX_MINOR_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code (EMV 5F2A/9F1A use it), exponent."""

    code: str
    numeric: int
    exponent: int

    def __str__(self) -> str:
        return self.code


#: The ISO 4217 entries the terminal knows. Profiles may only use these.
CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("MAD", 504, 2),
        Currency("EUR", 978, 2),
        Currency("USD", 840, 2),
        Currency("GBP", 826, 2),
        Currency("CHF", 756, 2),
        Currency("CAD", 124, 2),
        Currency("XOF", 952, 0),
        Currency("JPY", 392, 0),
        Currency("TND", 788, 3),
        Currency("DZD", 12, 2),
        Currency("SAR", 682, 2),
        Currency("AED", 784, 2),
    )
}
_BY_NUMERIC = {c.numeric: c for c in CURRENCIES.values()}


def currency(code: str | int) -> Currency:
    """Look up a currency by alphabetic (``"MAD"``) or numeric (``504``) ISO 4217 code."""
    if isinstance(code, int):
        found = _BY_NUMERIC.get(code)
    else:
        found = CURRENCIES.get(code.strip().upper())
    if found is None:
        known = ", ".join(sorted(CURRENCIES))
        raise MoneyError(f"unknown currency {code!r}: expected one of {known}", currency=code)
    return found


@dataclass(frozen=True, slots=True, order=False)
class Amount:
    """A non-negative amount in integer minor units of one currency."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError(f"minor units must be an int, not {type(self.minor).__name__}")
        if self.minor < 0:
            raise ValueError(f"an amount cannot be negative: {self.minor}")
        if len(str(self.minor)) > MAX_MINOR_DIGITS:
            raise ValueError(f"{self.minor} minor units exceed the 12 digits EMV allows")

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-self.currency.exponent)

    def __str__(self) -> str:
        return f"{self.decimal:.{self.currency.exponent}f} {self.currency.code}"

    def _same_currency(self, other: Amount) -> None:
        if other.currency != self.currency:
            raise MoneyError(
                f"cannot combine {self.currency.code} and {other.currency.code} amounts; "
                "convert one first"
            )

    def __add__(self, other: Amount) -> Amount:
        self._same_currency(other)
        return Amount(self.minor + other.minor, self.currency)

    def __lt__(self, other: Amount) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Amount) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor


# Grouping separators a cashier or a locale may put between thousands: space, no-break
# space, narrow no-break space, apostrophe (Swiss).
_GROUP_CHARS = " \u00a0\u202f'"
_DIGITS_AND_SEPARATORS = re.compile(r"[0-9.,\u00a0\u202f' ]+")


def parse_amount(text: str, cur: Currency | str) -> Amount:
    """Parse what a cashier typed into an :class:`Amount` of ``cur``.

    The decimal separator is the last ``.`` or ``,`` when it is followed by at most the
    currency's exponent digits; other separators must group thousands in threes.
    ``12.5``, ``12,50``, ``1 250,00``, ``1.250,00`` and ``1,250.00`` are all accepted;
    ``12.505`` (too many decimals for MAD), ``1,2,3``, ``-5`` and ``abc`` are refused.
    """
    target = cur if isinstance(cur, Currency) else currency(cur)
    raw = text.strip()
    if not raw:
        raise MoneyError("no amount given: type an amount such as 12,50")
    if not _DIGITS_AND_SEPARATORS.fullmatch(raw):
        bad = next(ch for ch in raw if not _DIGITS_AND_SEPARATORS.fullmatch(ch))
        raise MoneyError(
            f"{raw!r} is not an amount: unexpected {bad!r} (digits, one decimal separator "
            "and thousands groups only, e.g. 1 250,00)",
            text=raw,
        )
    integer_part, fraction = _split_decimal(raw, target)
    digits = _ungroup(integer_part, raw)
    if not digits:
        digits = "0"
    fraction = fraction.ljust(target.exponent, "0")
    minor_text = (digits + fraction).lstrip("0") or "0"
    if len(minor_text) > MAX_MINOR_DIGITS:
        raise MoneyError(f"{raw!r} is too large: an amount has at most 12 digits", text=raw)
    return Amount(int(minor_text), target)


def _split_decimal(raw: str, target: Currency) -> tuple[str, str]:
    last = max(raw.rfind("."), raw.rfind(","))
    if last < 0:
        return raw, ""
    tail = raw[last + 1 :]
    separator = raw[last]
    head = raw[:last]
    # "1,250" in MAD is ambiguous (1.25 with a decimal comma, or 1250 grouped): it is
    # refused as too many decimals rather than guessed.
    if not tail.isdigit() or not tail:
        raise MoneyError(
            f"{raw!r} is not an amount: digits must follow the decimal separator {separator!r}",
            text=raw,
        )
    if len(tail) > target.exponent:
        if target.exponent == 0:
            raise MoneyError(
                f"{raw!r}: {target.code} has no minor unit, type a whole amount", text=raw
            )
        raise MoneyError(
            f"{raw!r} has {len(tail)} decimals but {target.code} has {target.exponent}",
            text=raw,
        )
    if separator in head:
        raise MoneyError(
            f"{raw!r} is not an amount: {separator!r} appears twice; use one decimal separator",
            text=raw,
        )
    return head, tail


def _ungroup(integer_part: str, raw: str) -> str:
    """Remove thousands separators, insisting that every group after the first has 3 digits."""
    groups = re.split(r"[.,\u00a0\u202f' ]", integer_part)
    if len(groups) == 1:
        return groups[0]
    separators = set(re.findall(r"[.,\u00a0\u202f' ]", integer_part))
    if len(separators) > 1 and not separators <= set(_GROUP_CHARS):
        raise MoneyError(
            f"{raw!r} is not an amount: mixed thousands separators", text=raw
        )
    if not groups[0] or len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]):
        raise MoneyError(
            f"{raw!r} is not an amount: thousands must be grouped by three (e.g. 1 250,00)",
            text=raw,
        )
    return "".join(groups)


@dataclass(frozen=True, slots=True)
class FxRate:
    """One unit of ``base`` is worth ``rate`` units of ``quote``, as of ``as_of``."""

    base: Currency
    quote: Currency
    rate: Decimal
    as_of: datetime
    max_age: timedelta

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"an FX rate must be positive, got {self.rate}")
        if self.as_of.tzinfo is None:
            raise ValueError("an FX rate's as-of time must carry a timezone")

    def age(self, now: datetime) -> timedelta:
        return now - self.as_of


def convert(
    amount: Amount,
    to: Currency,
    rates: list[FxRate] | tuple[FxRate, ...],
    *,
    now: datetime | None = None,
) -> Amount:
    """Convert ``amount`` into ``to`` with a direct or inverse rate from ``rates``.

    Arithmetic is in Decimal; the result is rounded half-even (banker's rounding) to the
    target's minor unit. A rate older than its ``max_age`` raises :class:`StaleRateError`.
    """
    if amount.currency == to:
        return amount
    moment = now or datetime.now(UTC)
    for rate in rates:
        if rate.base == amount.currency and rate.quote == to:
            factor = rate.rate
        elif rate.base == to and rate.quote == amount.currency:
            factor = Decimal(1) / rate.rate
        else:
            continue
        age = rate.age(moment)
        if age > rate.max_age:
            raise StaleRateError(
                f"the {rate.base.code}/{rate.quote.code} rate is {_human(age)} old "
                f"(as of {rate.as_of.isoformat()}, maximum age {_human(rate.max_age)}); "
                "wait for a fresh rate from the platform",
                age_s=int(age.total_seconds()),
            )
        try:
            converted = amount.decimal * factor
            minor = converted.scaleb(to.exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        except InvalidOperation as exc:  # pragma: no cover - Decimal context limits
            raise MoneyError(f"cannot convert {amount} to {to.code}") from exc
        return Amount(int(minor), to)
    raise MoneyError(
        f"no FX rate between {amount.currency.code} and {to.code} in the profile",
        base=amount.currency.code,
        quote=to.code,
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
