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


def parse_faults(spec: str | None) -> Faults:
    """Parse ``--faults``; raise :class:`FaultSpecError` naming the bad item."""
    faults = Faults()
    if not spec:
        return faults
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        try:
            if name in _FLAGS and not sep:
                setattr(faults, _FLAGS[name], True)
            elif name in _COUNTED:
                count = int(value) if sep else 1
                if count < 0:
                    raise ValueError
                setattr(faults, _COUNTED[name], count)
            elif name == "slow":
                seconds = float(value) if sep else 0.5
                if not 0 <= seconds <= 60:
                    raise ValueError
                faults.slow = seconds
            else:
                raise FaultSpecError(
                    f"unknown fault {name!r}; known: noise, bad-lrc=N, nak=N, mute=N, silent, "
                    "slow=SECONDS, hangup, cancel=N, timeout=N"
                )
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"bad value in fault {item!r}") from None
    return faults
