"""The one ``--faults`` parser every simulator shares (card, PIN pad, PSP hosts).

A specification is a comma-separated list of ``name`` or ``name=value`` items, e.g.
``latency=0.2,timeout=2,decline=51:1``. Each simulator declares its faults as a table of
forms — :class:`Flag` (no value), :class:`Count` (``N``, a default when absent),
:class:`Seconds` (a bounded duration) or :class:`Valued` (its own value syntax) — and gets
back the parsed values by name; a bad item raises the simulator's own error naming it, with
the known forms listed, so every ``etika sim … --faults`` answers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Count", "FaultForm", "Flag", "Seconds", "Valued", "parse_fault_spec"]


@dataclass(frozen=True)
class Flag:
    """``name`` alone: the fault is on."""

    def parse(self, value: str | None) -> object:
        if value is not None:
            raise ValueError("takes no value")
        return True

    def form(self, name: str) -> str:
        return name


@dataclass(frozen=True)
class Count:
    """``name`` or ``name=N``: how many times the fault fires (``default`` when absent)."""

    default: int = 1
    minimum: int = 0

    def parse(self, value: str | None) -> object:
        count = int(value) if value is not None else self.default
        if count < self.minimum:
            raise ValueError(f"must be {self.minimum} or more")
        return count

    def form(self, name: str) -> str:
        return f"{name}=N"


@dataclass(frozen=True)
class Seconds:
    """``name`` or ``name=SECONDS``, between 0 and ``maximum``."""

    default: float
    maximum: float

    def parse(self, value: str | None) -> object:
        seconds = float(value) if value is not None else self.default
        if not 0 <= seconds <= self.maximum:  # also refuses nan
            raise ValueError(f"must be 0 to {self.maximum:g} seconds")
        return seconds

    def form(self, name: str) -> str:
        return f"{name}=SECONDS"


@dataclass(frozen=True)
class Valued:
    """``name=VALUE`` with the simulator's own syntax; ``parse_value`` raises ``ValueError``."""

    parse_value: Callable[[str], object]
    syntax: str

    def parse(self, value: str | None) -> object:
        if value is None:
            raise ValueError(f"needs a value ({self.syntax})")
        return self.parse_value(value)

    def form(self, name: str) -> str:
        return f"{name}={self.syntax}"


FaultForm = Flag | Count | Seconds | Valued


def parse_fault_spec(spec: str | None, forms: Mapping[str, FaultForm],
                     error: Callable[[str], Exception]) -> dict[str, object]:
    """The faults of ``spec`` by name, each parsed by its form; ``error(message)`` is raised
    for an unknown name or a bad value, naming the item and the known forms."""
    known = ", ".join(form.form(name) for name, form in forms.items())
    parsed: dict[str, object] = {}
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        form = forms.get(name)
        if form is None:
            raise error(f"unknown fault {name!r}; known: {known}")
        try:
            parsed[name] = form.parse(value.strip() if sep else None)
        except (ValueError, OverflowError) as exc:
            reason = f": {exc}" if str(exc) and "invalid literal" not in str(exc) \
                and "could not convert" not in str(exc) else ""
            raise error(f"bad value in fault {item!r}{reason} (the form is "
                        f"{form.form(name)}; known: {known})") from None
    return parsed
