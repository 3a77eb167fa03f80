"""Errors of the PIN pad simulator and of the acquirer-side PIN verification.

::

    EtikaError
    └── PinPadSimulatorError
        ├── PinVerificationError       host side: the PIN block does not give the PIN
        │   ├── PinBlockUnreadableError wrong BDK/KSN/PAN or a corrupt block: decline ("81")
        │   └── IncorrectPinError      the block is sound but holds another PIN: decline ("55")
        ├── FaultSpecError             ``--faults`` could not be parsed
        └── SimulatorSetupError        ``--bdk``/``--ksn``/``--pin`` cannot make a PIN pad

No message or field ever holds a PIN, even a wrong one.
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = [
    "FaultSpecError",
    "IncorrectPinError",
    "PinBlockUnreadableError",
    "PinPadSimulatorError",
    "PinVerificationError",
    "SimulatorSetupError",
]


class PinPadSimulatorError(EtikaError):
    """Root of the PIN pad simulator's errors."""


class PinVerificationError(PinPadSimulatorError):
    """The acquirer could not verify the PIN block."""


class PinBlockUnreadableError(PinVerificationError):
    """The PIN block did not decipher to a valid ISO 9564 block under the derived key."""


class IncorrectPinError(PinVerificationError):
    """The PIN block is valid but carries a PIN other than the card's."""


class FaultSpecError(PinPadSimulatorError, ValueError):
    """A ``--faults`` specification the simulator does not understand."""


class SimulatorSetupError(PinPadSimulatorError, ValueError):
    """``etika sim pinpad`` options that cannot make a PIN pad (bad hex, lengths, PIN)."""

    exit_code = 2  # a value given on the command line: a usage error, as for every command
