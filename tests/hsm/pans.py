"""Test PANs for the hsm tests: built to pass Luhn, never real cards."""

from __future__ import annotations

from hsm.cards import luhn_valid


def with_check_digit(body: str) -> str:
    """``body`` plus the digit that makes it pass Luhn (ISO/IEC 7812-1 annex B)."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable: one digit always completes a Luhn number")


def pan_with_middle(first6: str, middle: str, last4: str) -> str:
    """A Luhn-valid PAN ``first6 + middle + last4`` with the last middle digit adjusted."""
    for digit in "0123456789":
        pan = first6 + middle[:-1] + digit + last4
        if luhn_valid(pan):
            return pan
    raise AssertionError("unreachable: one digit always completes a Luhn number")
