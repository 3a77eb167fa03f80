"""Money: parsing what a cashier types, arithmetic in minor units, FX conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from terminal.errors import MoneyError, StaleRateError
from terminal.money import CURRENCIES, Amount, FxRate, convert, currency, parse_amount

MAD, EUR, USD, JPY, TND = (CURRENCIES[c] for c in ("MAD", "EUR", "USD", "JPY", "TND"))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed",          "cur", "minor"),
    [
        ("12.5",           MAD,  1250),
        ("12,50",          MAD,  1250),
        ("1 250,00",       MAD,  125000),
        ("1\u00a0250,00",  MAD,  125000),
        ("1\u202f250,5",   MAD,  125050),
        ("1.250,00",       MAD,  125000),
        ("1,250.00",       MAD,  125000),
        ("1'250.00",       EUR,  125000),
        ("0,01",           MAD,  1),
        (",5",             MAD,  50),
        ("  7 ",           MAD,  700),
        ("1 000 000",      USD,  100000000),
        ("1500",           JPY,  1500),
        ("1,250",          TND,  1250),
    ],
)
def test_parse_accepts_cashier_formats(typed: str, cur: object, minor: int) -> None:
    """Every way a cashier writes an amount parses to the same minor units."""
    assert parse_amount(typed, cur).minor == minor  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typed",        "expected_words"),
    [
        ("",             "no amount"),
        ("abc",          "unexpected 'a'"),
        ("-5",           "unexpected '-'"),
        ("12.505",       "3 decimals but MAD has 2"),
        ("1,250",        "3 decimals but MAD has 2"),
        ("1,2,3",        "appears twice"),
        ("12,",          "digits must follow"),
        ("1 25,00",      "grouped by three"),
        ("1.250 000,00", "mixed thousands separators"),
        ("9999999999999", "too large"),
        ("12e3",         "unexpected 'e'"),
    ],
)
def test_parse_refuses_with_clear_message(typed: str, expected_words: str) -> None:
    """Unusable input is refused with a message that says what is wrong."""
    with pytest.raises(MoneyError, match=expected_words):
        parse_amount(typed, "MAD")


def test_parse_refuses_decimals_for_currency_without_minor_unit() -> None:
    """A yen amount with decimals names the missing minor unit."""
    with pytest.raises(MoneyError, match="no minor unit"):
        parse_amount("12,5", JPY)


@given(st.integers(min_value=0, max_value=10**12 - 1), st.sampled_from(["MAD", "TND", "JPY"]))
def test_parse_round_trips_printed_amounts(minor: int, code: str) -> None:
    """Printing an amount and parsing it back gives the same amount, in every style."""
    amount = Amount(minor, CURRENCIES[code])
    printed = f"{amount.decimal:.{amount.currency.exponent}f}"
    assert parse_amount(printed, code) == amount
    assert parse_amount(printed.replace(".", ","), code) == amount
    integer, _, fraction = printed.partition(".")
    grouped = f"{int(integer):,}".replace(",", " ") + ("," + fraction if fraction else "")
    assert parse_amount(grouped, code) == amount


@given(st.text(max_size=20))
@example("1 250,5")  # random text rarely parses: make sure the parsed branch runs
@example("0.07")
def test_parse_never_raises_anything_but_money_error(text: str) -> None:
    """Arbitrary input either parses or raises MoneyError — never another exception."""
    try:
        amount = parse_amount(text, "MAD")
    except MoneyError:
        return
    # What parses is a real MAD amount, and printing it parses back to the same amount.
    assert amount.currency is MAD and amount.minor >= 0
    assert parse_amount(f"{amount.decimal:.2f}", "MAD") == amount


def test_currency_lookup_by_code_and_number() -> None:
    """ISO 4217 alphabetic and numeric codes find the same currency; unknown ones are named."""
    assert currency("mad") is currency(504) is MAD
    with pytest.raises(MoneyError, match="unknown currency 'XXX'"):
        currency("XXX")


def test_amounts_do_not_mix_currencies() -> None:
    """Adding dirhams to euros is refused instead of silently producing nonsense."""
    with pytest.raises(MoneyError, match="cannot combine MAD and EUR"):
        Amount(100, MAD) + Amount(100, EUR)
    assert Amount(100, MAD) + Amount(5, MAD) == Amount(105, MAD)


@pytest.mark.parametrize("bad", [-1, 10**12])
def test_amount_refuses_out_of_range(bad: int) -> None:
    """Negative and over-12-digit amounts cannot be built."""
    with pytest.raises(ValueError):
        Amount(bad, MAD)


def _rate(base: object, quote: object, rate: str, age: timedelta = timedelta(0)) -> FxRate:
    return FxRate(base, quote, Decimal(rate), NOW - age, timedelta(hours=24))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minor", "rate",    "expected"),
    [
        (100,     "10.835",  1084),   # 10.835 MAD -> 10.84 (half-even on ...35 -> 4)
        (100,     "10.825",  1082),   # 10.825 -> 10.82 (half-even keeps 2)
        (1,       "0.5",     0),      # 0.005 -> 0.00
        (3,       "0.5",     2),      # 0.015 -> 0.02
        (12345,   "1",       12345),
    ],
)
def test_convert_rounds_half_even(minor: int, rate: str, expected: int) -> None:
    """Conversion is exact in Decimal and rounds half to even at the target's minor unit."""
    result = convert(Amount(minor, EUR), MAD, [_rate(EUR, MAD, rate)], now=NOW)
    assert result == Amount(expected, MAD)


def test_convert_uses_inverse_rate() -> None:
    """A MAD amount converts to EUR with the EUR/MAD rate inverted."""
    result = convert(Amount(10835, MAD), EUR, [_rate(EUR, MAD, "10.835")], now=NOW)
    assert result == Amount(1000, EUR)


def test_stale_rate_is_refused_with_its_age() -> None:
    """A rate older than its maximum age is refused and the message gives the age."""
    with pytest.raises(StaleRateError, match="is 30 h old") as info:
        convert(Amount(100, EUR), MAD, [_rate(EUR, MAD, "10.8", timedelta(hours=30))], now=NOW)
    assert info.value.fields["age_s"] == 30 * 3600


def test_missing_rate_is_named() -> None:
    """Converting without a rate for the pair names both currencies."""
    with pytest.raises(MoneyError, match="no FX rate between USD and EUR"):
        convert(Amount(100, USD), EUR, [_rate(EUR, MAD, "10.8")], now=NOW)
