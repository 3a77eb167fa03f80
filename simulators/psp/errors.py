"""Errors of the PSP simulators (what ``etika sim psp`` reports in one line).

::

    EtikaError
    └── PspSimulatorError
        ├── FaultSpecError      ``--faults`` could not be parsed: fix the spec
        ├── SimulatorKeyError   the P2PE private key cannot be read: give another --key
        └── SimulatorListenError  the address cannot be listened on: choose another --port
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["FaultSpecError", "PspSimulatorError", "SimulatorKeyError", "SimulatorListenError"]


class PspSimulatorError(EtikaError):
    """Root of the PSP simulators' errors."""

    exit_code = 2


class FaultSpecError(PspSimulatorError, ValueError):
    """A ``--faults`` specification the PSP simulator does not understand."""


class SimulatorKeyError(PspSimulatorError):
    """The simulator's P2PE private key is missing or unreadable."""


class SimulatorListenError(PspSimulatorError):
    """The simulator cannot listen on ``--host``/``--port`` (in use, not local, unknown)."""
