"""Fault injection for the PSP simulators (``--faults SPEC``).

A specification is a comma-separated list of ``name`` or ``name=value``::

    latency=SECONDS    wait this long before every answer (default 0.5)
    timeout=N          process the next N requests but never answer them (default 1)
    drop=N             close the connection on the next N requests, unprocessed (default 1)
    drop-after=N       process the next N requests, then close without answering (default 1)
    decline=CODE[:N]   answer the next N authorisations (every one without N) with this
                       ISO 8583 response code, e.g. decline=51 or decline=05:2
    duplicate=N        send the next N answers twice (ISO 8583 only)
    malformed=N        answer the next N requests with bytes that do not decode
    truncated=N        answer the next N requests with a cut-short frame, then close

``timeout``, ``drop-after`` and ``truncated`` apply the request first: the host has acted,
the terminal does not know — exactly the case a reversal exists for.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.psp.errors import FaultSpecError

__all__ = ["FaultSpecError", "Faults", "parse_faults"]

_COUNTED = {"timeout": "timeout", "drop": "drop", "drop-after": "drop_after",
            "duplicate": "duplicate", "malformed": "malformed", "truncated": "truncated"}


@dataclass
class Faults:
    """Mutable fault state; counted faults decrement as they fire."""

    latency: float = 0.0
    timeout: int = 0
    drop: int = 0
    drop_after: int = 0
    duplicate: int = 0
    malformed: int = 0
    truncated: int = 0
    decline_code: str | None = None
    decline_count: int | None = None  # None: every authorisation

    def take(self, name: str) -> bool:
        """Consume one occurrence of a counted fault; ``True`` if it fires now."""
        remaining: int = getattr(self, name)
        if remaining <= 0:
            return False
        setattr(self, name, remaining - 1)
        return True

    def take_decline(self) -> str | None:
        """The forced decline code for this authorisation, if any."""
        if self.decline_code is None:
            return None
        code = self.decline_code
        if self.decline_count is not None:
            self.decline_count -= 1
            if self.decline_count <= 0:
                self.decline_code = None
        return code


def parse_faults(spec: str | None) -> Faults:
    """Parse ``--faults``; raise :class:`FaultSpecError` naming the bad item."""
    faults = Faults()
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        try:
            if name in _COUNTED:
                count = int(value) if sep else 1
                if count < 0:
                    raise ValueError
                setattr(faults, _COUNTED[name], count)
            elif name == "latency":
                seconds = float(value) if sep else 0.5
                if not 0 <= seconds <= 120:
                    raise ValueError
                faults.latency = seconds
            elif name == "decline" and sep:
                code, _, count_text = value.partition(":")
                if len(code) != 2 or not code.isalnum() or code == "00":
                    raise ValueError
                faults.decline_code = code.upper()
                faults.decline_count = int(count_text) if count_text else None
                if faults.decline_count is not None and faults.decline_count < 1:
                    raise ValueError
            else:
                raise FaultSpecError(
                    f"unknown fault {name!r}; known: latency=SECONDS, timeout=N, drop=N, "
                    "drop-after=N, decline=CODE[:N], duplicate=N, malformed=N, truncated=N"
                )
        except FaultSpecError:
            raise
        except ValueError:
            raise FaultSpecError(f"bad value in fault {item!r} (see --help for the forms)"
                                 ) from None
    return faults
