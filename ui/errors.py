"""The counter's own errors (rooted in :class:`etika_errors.EtikaError`)::

    UiError                 something the cashier typed or asked cannot be done
    └── BadFilterError      a history filter (date, amount) does not parse
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["BadFilterError", "UiError"]


class UiError(EtikaError):
    """The counter cannot do what was asked; the message says why."""


class BadFilterError(UiError, ValueError):
    """A history filter the cashier typed cannot be understood."""
