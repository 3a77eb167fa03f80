"""The one name for "any JSON" that crosses a package boundary.

Most data between the packages has a known shape and says so (dataclasses, TypedDicts,
pydantic models). A few boundaries genuinely carry arbitrary JSON: an outbox payload (the
message kinds are validated by the platform's own models, not by the queue that carries
them), a diagnostics snapshot, a downlink's report. Those use :data:`JsonObject` instead of
``dict[str, Any]``, so the type still says "JSON, nothing else" (no bytes, no datetimes, no
objects the encoder would choke on) and mypy checks what is put in.

The containers are the read-only ``Mapping``/``Sequence`` so that any concrete JSON shape is
accepted (``dict[str, int]`` is a ``Mapping[str, JsonValue]``; it would not be a
``dict[str, JsonValue]``, whose values are invariant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JsonObject", "JsonScalar", "JsonValue"]

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = "JsonScalar | Sequence[JsonValue] | Mapping[str, JsonValue]"
JsonObject: TypeAlias = "Mapping[str, JsonValue]"
