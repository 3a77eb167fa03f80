"""Errors of the PoP back-end stand-in (what ``etika sim pop`` reports in one line).

::

    EtikaError
    └── PopSimulatorError
        ├── PopFaultSpecError   ``--faults`` could not be parsed: fix the spec
        ├── PopKeyFileError     a ``--key-file`` cannot be read or is not an EC P-256 key
        ├── PopLedgerError      the ledger database cannot be opened or its chain is broken
        └── PopListenError      the address cannot be listened on: choose another --port
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["PopFaultSpecError", "PopKeyFileError", "PopLedgerError", "PopListenError",
           "PopSimulatorError"]


class PopSimulatorError(EtikaError):
    """Root of the PoP stand-in's errors."""

    exit_code = 2


class PopFaultSpecError(PopSimulatorError, ValueError):
    """A ``--faults`` specification the PoP stand-in does not understand."""


class PopKeyFileError(PopSimulatorError):
    """A terminal public key given with ``--key-file`` is unreadable or not EC P-256."""


class PopLedgerError(PopSimulatorError):
    """The ledger database cannot be used (unopenable, or a hash chain that does not verify)."""


class PopListenError(PopSimulatorError):
    """The stand-in cannot listen on ``--host``/``--port``."""
