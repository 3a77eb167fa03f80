"""Values the CLI checks after parsing: a bad one is a usage error (exit 2), as argparse's.

argparse only sees text; whether ``--amount 12,5`` or ``--currency XXX`` can be used is
known once the profile is loaded. Those checks end the command with :class:`CliUsageError`
so that every command answers a mistyped value with the same exit status (2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etika_errors import EtikaError

if TYPE_CHECKING:
    from terminal.money import Amount, Currency

__all__ = ["CliUsageError", "amount_option"]


class CliUsageError(EtikaError):
    """A value given on the command line cannot be used; the message names the option."""

    exit_code = 2


def amount_option(text: str, currency: Currency | str, option: str = "--amount") -> Amount:
    """The amount the cashier typed, or :class:`CliUsageError` naming ``option``."""
    from terminal.errors import MoneyError
    from terminal.money import parse_amount

    try:
        return parse_amount(text, currency)
    except MoneyError as exc:
        raise CliUsageError(f"{option} {text!r}: {exc}") from exc
