"""Errors of the card simulator's command line.

::

    EtikaError
    └── CardSimulatorError     a wrong profile, interface or fault name: fix the option
        └── VpcdPortBusyError  another card already holds the vpcd reader on that port
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["CardSimulatorError", "VpcdPortBusyError"]


class CardSimulatorError(EtikaError):
    """``etika sim card`` was given something it cannot simulate."""

    exit_code = 2


class VpcdPortBusyError(CardSimulatorError):
    """vpcd accepted the connection but never spoke: its reader already has a card (another
    ``etika sim card`` on the same port). ``port`` names it."""
