"""Errors of the card simulator's command line.

::

    EtikaError
    └── CardSimulatorError     a wrong profile, interface or fault name: fix the option
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["CardSimulatorError"]


class CardSimulatorError(EtikaError):
    """``etika sim card`` was given something it cannot simulate."""

    exit_code = 2
