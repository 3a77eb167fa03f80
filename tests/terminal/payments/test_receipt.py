"""Receipts as data: fields validated, no clear PAN possible, text rendering per copy/locale."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.money import Amount, currency
from terminal.payments.receipt import Receipt, ReceiptDataError, render_text

VISA_TEST_PAN = "4761739001010010"  # EMVCo Visa test card number


def receipt(**changes: object) -> Receipt:
    """A contact Visa sale with offline PIN, approved online, PoP confirmed."""
    made = Receipt(
        merchant_name="Café de la Gare",
        merchant_id="ETIKA0000000001",
        terminal_id="TERM0001",
        timestamp=datetime(2026, 12, 3, 12, 30, 5, tzinfo=UTC),
        amount=Amount(2500, currency("MAD")),
        masked_pan="476173…0010",
        aid="A0000000031010",
        app_label="VISA CREDIT",
        entry_mode="contact",
        cvm="offline_pin",
        tvr="0000008000",
        tsi="E800",
        cryptogram="1A2B3C4D5E6F7081",
        cryptogram_type="TC",
        auth_code="123456",
        pop_reference="pop-7f3a",
        copy="merchant",
        payment_id="0b9a1c52-0000-4000-8000-000000000001",
    )
    return replace(made, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pan_like",
    [
        VISA_TEST_PAN,
        "4761 7390 0101 0010",
        "4761739001…0010",
        "476173000000…0010",
        "",
        "0010",
    ],
)
def test_a_full_or_half_masked_pan_cannot_be_passed_in(pan_like: str) -> None:
    """Only first6…last4 (or less) is accepted; the refusal does not echo what was passed."""
    with pytest.raises(ReceiptDataError, match="masked PAN") as caught:
        receipt(masked_pan=pan_like)
    assert VISA_TEST_PAN not in str(caught.value)
    assert "0010" not in str(caught.value) or pan_like == ""


def test_a_pan_hidden_in_another_text_field_is_refused() -> None:
    """A card number typed into a free-text field (merchant name) is refused too."""
    with pytest.raises(ReceiptDataError, match="merchant_name"):
        receipt(merchant_name=f"Shop {VISA_TEST_PAN}")


@pytest.mark.parametrize(
    ("field",           "value"),
    [
        ("tvr",             "00000080"),
        ("tsi",             "E8"),
        ("cryptogram",      "XYZ"),
        ("aid",             "A000"),
        ("entry_mode",      "telepathy"),
        ("cvm",             "pin"),
        ("copy",            "bank"),
        ("auth_code",       "1234567"),
        ("timestamp",       datetime(2026, 12, 3)),
        ("amount",          2500),
        ("terminal_id",     " "),
    ],
)
def test_malformed_fields_are_refused_by_name(field: str, value: object) -> None:
    """Each malformed field is a ReceiptDataError naming it."""
    with pytest.raises(ReceiptDataError, match=field):
        receipt(**{field: value})


def test_merchant_copy_in_french_has_every_field() -> None:
    """The French merchant copy shows identity, date, card, EMV data, auth code, PoP, amount."""
    text = render_text(receipt(), locale="fr")
    for expected in ("TICKET COMMERCANT", "ETIKA0000000001", "TERM0001", "03/12/2026 12:30:05",
                     "476173…0010", "VISA CREDIT", "A0000000031010", "contact",
                     "code verifie", "0000008000", "E800", "TC 1A2B3C4D5E6F7081", "123456",
                     "pop-7f3a", "25.00 MAD", "ACCEPTE"):
        assert expected in text, expected
    assert VISA_TEST_PAN not in text


def test_customer_copy_in_english_says_pop_pending() -> None:
    """No PoP reference yet: the copy says 'PoP pending'; the customer is asked to keep it."""
    text = render_text(receipt(copy="customer", pop_reference=None), locale="en")
    assert "CUSTOMER COPY" in text and "PoP pending" in text and "PLEASE RETAIN" in text
    assert "2026-12-03 12:30:05" in text


def test_the_date_is_printed_in_utc() -> None:
    """A timestamp in another zone is printed as its UTC time, labelled UTC."""
    local = datetime(2026, 12, 3, 13, 30, 5, tzinfo=timezone(timedelta(hours=1)))
    assert "12:30:05 UTC" in render_text(receipt(timestamp=local))


def test_a_declined_refund_says_so() -> None:
    """Kind and outcome are printed: a declined refund reads REFUND … DECLINED."""
    text = render_text(receipt(kind="refund", approved=False, auth_code=None), locale="en")
    assert "REFUND" in text and "DECLINED" in text and "Auth" not in text


@pytest.mark.parametrize(("width", "locale"), [(0, "fr"), (23, "fr"), (32, "de")])
def test_bad_width_or_locale_is_a_value_error(width: int, locale: str) -> None:
    """Width below 24 columns or an unknown locale is a caller mistake."""
    with pytest.raises(ValueError, match=r"width|locale"):
        render_text(receipt(), width=width, locale=locale)


def test_stored_form_round_trips_through_json() -> None:
    """as_dict → JSON → from_dict gives the same receipt (it is stored with the payment)."""
    original = receipt()
    assert Receipt.from_dict(json.loads(json.dumps(original.as_dict()))) == original


def test_a_damaged_stored_receipt_is_a_receipt_error() -> None:
    """A stored receipt with a missing field is refused as ReceiptDataError, not KeyError."""
    data = receipt().as_dict()
    del data["amount"]
    with pytest.raises(ReceiptDataError, match="not readable"):
        Receipt.from_dict(data)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=24, max_value=64),
    locale=st.sampled_from(["fr", "en"]),
    name=st.text(alphabet=st.characters(categories=["L", "Zs"]), min_size=1, max_size=60)
    .filter(str.strip),
    label=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", min_size=1, max_size=16)
    .filter(str.strip),
    minor=st.integers(min_value=0, max_value=10**12 - 1),
)
def test_no_line_is_wider_than_the_roll(
    width: int, locale: str, name: str, label: str, minor: int
) -> None:
    """Every rendered line fits the requested width, whatever the names and amount."""
    text = render_text(
        receipt(merchant_name=name, app_label=label, amount=Amount(minor, currency("MAD"))),
        width=width, locale=locale)
    assert all(len(line) <= width for line in text.splitlines())
