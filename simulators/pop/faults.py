"""Fault injection for the PoP stand-in (``--faults SPEC`` or ``POST /v1/admin/faults``).

A specification is a comma-separated list of ``name`` or ``name=value``::

    reject=N       refuse the next N new records (stored as ``rejected``; default 1)
    timeout=N      process the next N requests, then never answer them (default 1)
    drop=N         close the connection on the next N requests, unprocessed (default 1)
    error=N        answer the next N requests 503, unprocessed (default 1)
    slow=MS        wait this many milliseconds before every answer
    twice=N        send the next N answers twice on the connection (default 1)

``timeout`` applies the request first: the back end has the record, the terminal does not
know — the case the terminal's coordinated cancel and its dedup-on-resubmit exist for.
Faults apply to the PoP record routes only, not to the admin, summary or token routes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from simulators.faults import Count, FaultForm, Valued, parse_fault_spec
from simulators.pop.errors import PopFaultSpecError

__all__ = ["FORMS", "PopFaults", "parse_faults"]

def _milliseconds(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 3_600_000:
        raise ValueError("must be 0 to 3600000 ms")
    return value


#: The faults and their forms (the shared parser of :mod:`simulators.faults`).
FORMS: dict[str, FaultForm] = {
    "reject": Count(),
    "timeout": Count(),
    "drop": Count(),
    "error": Count(),
    "twice": Count(),
    "slow": Valued(_milliseconds, "MS"),
}


@dataclass
class PopFaults:
    """Mutable fault state; counted faults decrement as they fire."""

    reject: int = 0
    timeout: int = 0
    drop: int = 0
    error: int = 0
    twice: int = 0
    slow_ms: int = 0

    def take(self, name: str) -> bool:
        """Consume one occurrence of a counted fault; ``True`` if it fires now."""
        remaining: int = getattr(self, name)
        if remaining <= 0:
            return False
        setattr(self, name, remaining - 1)
        return True

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_faults(spec: str | None) -> PopFaults:
    """Parse a fault spec; :class:`PopFaultSpecError` names the bad item."""
    parsed = parse_fault_spec(spec, FORMS, PopFaultSpecError)
    values = {("slow_ms" if name == "slow" else name): value for name, value in parsed.items()}
    return PopFaults(**values)  # type: ignore[arg-type]
