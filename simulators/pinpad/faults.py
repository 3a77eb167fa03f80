"""Fault injection and cardholder behaviour for the PIN pad simulator.

A specification is a comma-separated list of ``name`` or ``name=value``::

    noise            random non-control bytes before every packet the pad sends
    bad-lrc=N        corrupt the LRC of the pad's next N answer packets (default 1)
    nak=N            NAK the terminal's next N packets (default 1)
    mute=N           ignore the terminal's next N packets entirely (default 1)
    silent           ignore every packet: the pad is there but never answers
    slow=SECONDS     wait this long before every ACK and every answer (default 0.5)
    hangup           hang the line up when a PIN entry request arrives
    cancel=N         the cardholder presses CANCEL on the next N PIN entries (default 1)
    timeout=N        the cardholder types nothing on the next N PIN entries (default 1)
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.faults import Count, FaultForm, Flag, Seconds, parse_fault_spec
from simulators.pinpad.errors import FaultSpecError

__all__ = ["Faults", "parse_faults"]

_COUNTED = {"bad-lrc": "bad_lrc", "nak": "nak", "mute": "mute", "cancel": "cancel",
            "timeout": "timeout"}  # fmt: skip
_FLAGS = {"noise": "noise", "silent": "silent", "hangup": "hangup"}


@dataclass
class Faults:
    """Mutable fault state: counted faults decrement as they fire."""

    noise: bool = False
    silent: bool = False
    hangup: bool = False
    slow: float = 0.0
    bad_lrc: int = 0
    nak: int = 0
    mute: int = 0
    cancel: int = 0
    timeout: int = 0

    def take(self, name: str) -> bool:
        """Consume one occurrence of a counted fault; ``True`` if it fires now."""
        remaining: int = getattr(self, name)
        if remaining <= 0:
            return False
        setattr(self, name, remaining - 1)
        return True


_FORMS: dict[str, FaultForm] = {
    "noise": Flag(), "bad-lrc": Count(), "nak": Count(), "mute": Count(), "silent": Flag(),
    "slow": Seconds(default=0.5, maximum=60), "hangup": Flag(), "cancel": Count(),
    "timeout": Count(),
}


def parse_faults(spec: str | None) -> Faults:
    """Parse ``--faults``; raise :class:`FaultSpecError` naming the bad item."""
    faults = Faults()
    for name, value in parse_fault_spec(spec, _FORMS, FaultSpecError).items():
        attribute = _FLAGS.get(name) or _COUNTED.get(name) or name
        setattr(faults, attribute, value)
    return faults
