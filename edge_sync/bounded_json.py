"""JSON at the sync package's edges, bounded: every decode of what a broker, the platform or
an HTTPS answer hands the terminal, and the canonical encoding every signature covers.

What arrives from outside can be anything JSON text can say, and some things no UTF-8 can
carry: a lone surrogate escaped as ``\\udfff``, an integer literal of a million digits,
nesting a hundred thousand levels deep. The standard library and pydantic turn those into
``UnicodeEncodeError``, ``ValueError`` or ``RecursionError`` somewhere later (the
canonicaliser, a ``repr``, SQLite). Here each one is refused where it enters, with the
project's own :class:`~edge_sync.errors.MessageFormatError` (``reason`` says which bound):

* :func:`decode_json` — size (:data:`MAX_MESSAGE_BYTES`), syntax, no ``NaN``/``Infinity``
  (RFC 8259 §6 has none), integers within CPython's digit limit, depth (:data:`MAX_DEPTH`);
* :func:`validate_json` — pydantic's own JSON parser for a model (the ack hot path): size
  here, depth by pydantic-core's recursion limit and the model's fixed shape, lone
  surrogates refused by its parser; every failure mapped;
* :func:`canonical_json` — the signed bytes; text that is not valid Unicode, values JSON
  cannot carry, or nesting the encoder cannot follow are refused, not raised raw;
* :func:`storable_text` — a string from outside made safe to store, log and sign (what
  UTF-8 cannot hold and NUL replaced, length cut), for refusal reasons and alerts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edge_sync.errors import MessageFormatError

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "canonical_json",
    "check_depth",
    "decode_json",
    "storable_text",
    "validate_json",
    "validation_summary",
]

#: The largest message any parser here reads (a config downlink of 32 profile files at
#: 256 kB each fits); the broker's ``message_size_limit`` is the same.
MAX_MESSAGE_BYTES = 9 * 1024 * 1024
#: How deep JSON may nest in any message (payloads are a few levels deep by design).
MAX_DEPTH = 32

_M = TypeVar("_M", bound=BaseModel)


def storable_text(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters, each lone surrogate (which no UTF-8 can hold)
    replaced by U+FFFD and NUL by ``?``: it can be stored, logged, serialised and signed."""
    cut = text[:limit]
    try:
        cut.encode("utf-8")
    except UnicodeEncodeError:
        cut = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in cut)
    return cut.replace("\x00", "?")


def check_depth(value: object, what: str, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`MessageFormatError` when JSON ``value`` nests deeper than ``limit``.

    Iterative, so a hostile depth is refused here instead of overflowing the recursion of
    the validator, the canonicaliser or a later ``repr``.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise MessageFormatError(
                f"{what} is nested deeper than {limit} levels", reason="nested too deep"
            )
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def _too_large(raw: bytes | str, what: str, max_bytes: int) -> None:
    if len(raw) > max_bytes:
        raise MessageFormatError(f"{what} is larger than {max_bytes} bytes", reason="too large")


def decode_json(raw: bytes | str, what: str, *, max_bytes: int = MAX_MESSAGE_BYTES,
                max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw`` (UTF-8), within the bounds; :class:`MessageFormatError`
    naming ``what`` and the bound otherwise (``reason``: ``too large``, ``not json``,
    ``nested too deep``)."""
    _too_large(raw, what, max_bytes)
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError as exc:  # the C scanner's own guard, far above max_depth
        raise MessageFormatError(f"{what} is nested too deep", reason="nested too deep") from exc
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, and an integer literal past
        # CPython's int_max_str_digits: all ValueError.
        raise MessageFormatError(
            f"{what} is not JSON: {storable_text(str(exc), 200)}", reason="not json"
        ) from exc
    check_depth(data, what, max_depth)
    return data


def validate_json(model: type[_M], raw: bytes | str, what: str, *,
                  max_bytes: int = MAX_MESSAGE_BYTES) -> _M:
    """``raw`` parsed straight into ``model`` by pydantic's JSON parser (fast: no Python
    objects in between); :class:`MessageFormatError` naming ``what`` for any refusal. The
    model's fields bound the depth; pydantic-core's parser refuses lone surrogates and
    nesting beyond its recursion limit as validation errors."""
    _too_large(raw, what, max_bytes)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        reason = validation_summary(exc)
        raise MessageFormatError(f"{what} does not match the wire contract: {reason}",
                                 reason=reason) from exc
    except (ValueError, RecursionError) as exc:  # defensive: pydantic documents neither
        raise MessageFormatError(
            f"{what} cannot be read: {type(exc).__name__}", reason="not json"
        ) from exc


def validation_summary(exc: ValidationError) -> str:
    """The first three errors of a pydantic validation, as ``where: what; ...``, storable."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return storable_text("; ".join(parts) + more, 500)


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """The signed bytes: every field but ``signature``, sorted keys, no spaces, UTF-8.

    :class:`MessageFormatError` when the object holds what canonical JSON cannot carry: a
    lone surrogate (``reason="invalid unicode"``), ``NaN``/``Infinity`` or a non-JSON value
    (``"not json"``), nesting the encoder cannot follow (``"nested too deep"``). Nothing
    valid was signed over such an object, so it can neither be signed nor verified.
    """
    unsigned = {key: value for key, value in obj.items() if key != "signature"}
    try:
        text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        return text.encode()
    except UnicodeEncodeError as exc:
        raise MessageFormatError(
            "the message holds text that is not valid Unicode (a lone surrogate): nothing "
            "valid was signed", reason="invalid unicode"
        ) from exc
    except RecursionError as exc:
        raise MessageFormatError("the message is nested too deep",
                                 reason="nested too deep") from exc
    except (ValueError, TypeError) as exc:  # NaN, a huge int, a non-JSON value, mixed keys
        raise MessageFormatError(
            f"the message holds a value JSON cannot carry ({type(exc).__name__})",
            reason="not json",
        ) from exc
