"""The field types and the strict base the profile's file models share (hex digits of a
given length, an AID, minor units, an ISO 4217 code).

The models themselves are in :mod:`terminal.profile.schemas` (the table of files) and the
modules it names per file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

from terminal.money import CURRENCIES

__all__ = [
    "Aid",
    "CurrencyCode",
    "Hex1",
    "Hex2",
    "Hex3",
    "Hex5",
    "HexAny",
    "MinorUnits",
    "Network",
    "Percent",
    "PrintableText",
    "StrictModel",
    "hex_digits",
    "hex_range",
]


def hex_digits(nbytes: int | None = None) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", value):
            raise ValueError("must be an even number of hexadecimal digits")
        if nbytes is not None and len(value) != 2 * nbytes:
            raise ValueError(f"must be {nbytes} bytes ({2 * nbytes} hex digits)")
        return value.upper()

    return check


def hex_range(low: int, high: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = hex_digits()(value)
        if not low <= len(value) // 2 <= high:
            raise ValueError(f"must be {low} to {high} bytes")
        return value

    return check


Hex1 = Annotated[str, AfterValidator(hex_digits(1))]
Hex2 = Annotated[str, AfterValidator(hex_digits(2))]
Hex3 = Annotated[str, AfterValidator(hex_digits(3))]
Hex5 = Annotated[str, AfterValidator(hex_digits(5))]
HexAny = Annotated[str, AfterValidator(hex_digits())]
Aid = Annotated[str, AfterValidator(hex_range(5, 16))]
MinorUnits = Annotated[int, Field(ge=0, le=999_999_999_999)]
Percent = Annotated[int, Field(ge=0, le=99)]


def _currency_code(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return value


CurrencyCode = Annotated[str, AfterValidator(_currency_code)]


def _printable(value: str) -> str:
    # Shown on the counter, on receipts and in messages: a control character (a terminal
    # escape, a NUL) has no place in a name.
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


#: A name or label a person reads (any script, no control characters).
PrintableText = Annotated[str, AfterValidator(_printable)]
#: The card networks a profile names (an AID's, a PSP's, a route's).
Network = Literal["visa", "mastercard", "cb", "bancontact", "domestic", "amex", "jcb"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
