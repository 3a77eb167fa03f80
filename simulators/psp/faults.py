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
    bad-mac=N          send the next N answers with a wrong MAC (a host with a MAC key)
    bad-arpc=N         approve the next N authorisations with an ARPC (tag 91) the card
                       refuses, so the card declines at GENERATE AC 2 (ISO 8583 only)

``timeout``, ``drop-after`` and ``truncated`` apply the request first: the host has acted,
the terminal does not know — exactly the case a reversal exists for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from simulators.faults import Count, FaultForm, Seconds, Valued, parse_fault_spec
from simulators.psp.errors import FaultSpecError

__all__ = ["FaultSpecError", "Faults", "parse_faults"]

_COUNTED = {"timeout": "timeout", "drop": "drop", "drop-after": "drop_after",
            "duplicate": "duplicate", "malformed": "malformed", "truncated": "truncated",
            "bad-arpc": "bad_arpc", "bad-mac": "bad_mac"}


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
    bad_arpc: int = 0
    bad_mac: int = 0
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


def _decline(value: str) -> tuple[str, int | None]:
    code, _, count_text = value.partition(":")
    if len(code) != 2 or not code.isalnum() or code == "00":
        raise ValueError("CODE is a two-character response code other than 00")
    count = int(count_text) if count_text else None
    if count is not None and count < 1:
        raise ValueError("N must be 1 or more")
    return code.upper(), count


_FORMS: dict[str, FaultForm] = {
    "latency": Seconds(default=0.5, maximum=120),
    "timeout": Count(), "drop": Count(), "drop-after": Count(), "duplicate": Count(),
    "malformed": Count(), "truncated": Count(), "bad-mac": Count(), "bad-arpc": Count(),
    "decline": Valued(_decline, "CODE[:N]"),
}


def parse_faults(spec: str | None) -> Faults:
    """Parse ``--faults``; raise :class:`FaultSpecError` naming the bad item."""
    faults = Faults()
    for name, value in parse_fault_spec(spec, _FORMS, FaultSpecError).items():
        if name == "decline":
            faults.decline_code, faults.decline_count = cast(tuple[str, int | None], value)
        elif name == "latency":
            faults.latency = cast(float, value)
        else:
            setattr(faults, _COUNTED[name], value)
    return faults
