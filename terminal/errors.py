"""Errors of the terminal core.

::

    EtikaError
    └── TerminalError
        ├── ConfigError          a profile is broken: carries every ``file:key: reason``
        ├── MoneyError           an amount or currency the cashier typed cannot be used
        │   └── StaleRateError   an FX rate is older than its maximum age
        ├── StoreError           the SQLite store cannot be opened or migrated
        │   ├── NoStoreError       the data dir has no store yet (a mistyped --data-dir?)
        │   └── IllegalTransitionError a state change the state machine does not allow
        └── JournalError         the audit journal is broken (names the first bad entry)
"""

from __future__ import annotations

from typing import Any

from etika_errors import EtikaError

__all__ = [
    "ConfigError",
    "IllegalTransitionError",
    "JournalError",
    "MoneyError",
    "NoStoreError",
    "StaleRateError",
    "StoreError",
    "TerminalError",
]


class TerminalError(EtikaError):
    """Root of the terminal core's errors."""


class ConfigError(TerminalError):
    """A terminal profile failed validation; ``problems`` lists each as ``file:key: reason``."""

    exit_code = 2

    def __init__(self, problems: list[str], **fields: Any) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), **fields)


class MoneyError(TerminalError, ValueError):
    """An amount or a currency cannot be used; the message says what was expected."""


class StaleRateError(MoneyError):
    """An FX rate is too old to convert with."""


class StoreError(TerminalError):
    """The durable store cannot be used as asked."""


class NoStoreError(StoreError):
    """The data directory has no store: only the ``init`` steps create one, so that a
    mistyped ``--data-dir`` is named instead of showing an empty terminal."""

    exit_code = 2


class IllegalTransitionError(StoreError):
    """The state machine does not allow this state change."""


class JournalError(TerminalError):
    """The audit journal does not verify; ``entry_id`` names the first bad entry."""
