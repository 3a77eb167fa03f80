"""Reading a REST PSP's answer: bounded JSON, then a small typed reader.

A PSP's answer is untrusted input: a broken or hostile gateway (or anything between it and
the terminal) can send any JSON shape, any type in any field, lone surrogates, ids that
would steer a later request elsewhere (``pi_1/../refunds``), or nesting deep enough to
exhaust the interpreter's stack. The connectors read answers only through this module:

* :func:`decode_json` — at most :data:`MAX_ANSWER_BYTES` and :data:`MAX_JSON_DEPTH` levels,
  an object at the top, checked *before* ``json.loads`` runs (RFC 8259 §9 allows a parser
  to limit both);
* :func:`reading` — the block in which a connector indexes and converts the decoded answer;
  any shape or type surprise in it (``LookupError``, ``TypeError``, ``ValueError``,
  ``UnicodeError``…) becomes :class:`MalformedResponseError`, an *unknown outcome*, which
  the router reverses — never a raw exception that would lose the reversal;
* the typed getters (:func:`mapping`, :func:`listing`, :func:`text`, :func:`identifier`,
  :func:`code`) that raise those exceptions for a value of the wrong type or form — the
  fields a decision or a later request rests on — and the lenient ones for what is only
  kept or shown, which never raise: :func:`approval_code` (dropped when odd),
  :func:`issuer_data` (flagged when unreadable, so the kernel fails issuer
  authentication) and :func:`message` (a PSP's free text, cleaned and cut).

Everything a connector keeps from an answer is therefore storable as it is: valid UTF-8
(SQLite and the outbox refuse lone surrogates), short, and ids that are path-safe in a URL.
Hand-written rather than pydantic models: the answers are read a few fields at a time along
several paths, and the reader is what maps every failure to one error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from edge_sync.connectors.errors import MalformedResponseError, PspError

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_ISSUER_DATA",
    "MAX_JSON_DEPTH",
    "approval_code",
    "code",
    "decode_json",
    "identifier",
    "issuer_data",
    "listing",
    "mapping",
    "message",
    "reading",
    "require",
    "text",
]

#: A PSP answer is a few kilobytes; anything near this is not one.
MAX_ANSWER_BYTES = 1 << 20
#: PSP answers nest a handful of levels; the bound keeps the decoder and every walker of
#: the result far from Python's recursion limit.
MAX_JSON_DEPTH = 32
#: Issuer data in an answer (tags 91, 71, 72): ISO 8583 DE 55 holds at most 255 bytes.
MAX_ISSUER_DATA = 255
_MESSAGE_CHARS = 200
#: A string (to skip: its brackets do not count) or a bracket. A string left open runs to the
#: end of the answer, and the quantifiers are possessive: one pass, linear in the answer's
#: length even for ``"\\"\\"…`` (a pattern that restarted at every quote was quadratic).
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
#: ISO 8583 DE 38 / EMV tag 89: six alphanumeric characters (shorter ones are padded).
_APPROVAL_CODE = re.compile(r"[0-9A-Za-z ]{1,6}")
#: A PSP's object id goes into later URL paths: letters, digits, ``_`` and ``-`` only, so
#: that no id can add a path segment, a dot segment, a query or a fragment.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: A decline, error or status code: classified, stored and shown.
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def decode_json(content: bytes, *, name: str, where: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object of at most :data:`MAX_ANSWER_BYTES` and :data:`MAX_JSON_DEPTH` levels,
    else :class:`MalformedResponseError` (the outcome of the request is unknown)."""
    if len(content) > MAX_ANSWER_BYTES:
        raise MalformedResponseError(f"{name}: the answer is more than {MAX_ANSWER_BYTES} "
                                     "bytes; the outcome is unknown", **where)
    # The depth is counted on the raw bytes (strings skipped) before the recursive parser
    # sees them. An unterminated string makes the count err on the deep side, which only
    # refuses what json.loads would refuse anyway.
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(content):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif char in (b"]", b"}"):
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise MalformedResponseError(f"{name}: the answer nests deeper than {MAX_JSON_DEPTH} "
                                     "levels; the outcome is unknown", **where)
    try:
        body = json.loads(content)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedResponseError(f"{name}: the answer is not JSON; the outcome of the "
                                     "request is unknown", **where) from exc
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{name}: the answer is JSON but not an object", **where)
    return body


@contextmanager
def reading(where: Mapping[str, Any], what: str = "the answer") -> Iterator[None]:
    """Read a decoded answer: any shape or type surprise is :class:`MalformedResponseError`.

    The connectors' answer readers index, convert and compare freely inside this block; a
    PSP that sends a list entry without its id, a string where an object belongs or a
    non-ASCII code gets "unreadable answer, outcome unknown" — the case the router reverses.
    """
    try:
        yield
    except PspError:
        raise
    except (LookupError, TypeError, AttributeError, ValueError, UnicodeError,
            RecursionError) as exc:
        raise MalformedResponseError(
            f"{where.get('connector', 'psp')}: {what} has an unexpected shape "
            f"({type(exc).__name__}: {message(str(exc))}); the outcome is unknown", **where,
        ) from None


def require(body: Mapping[str, Any], key: str, where: Mapping[str, Any]) -> Any:
    """``body[key]`` or :class:`MalformedResponseError` naming the missing key."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"{where.get('connector', 'psp')}: the answer is not an "
                                     "object; the outcome is unknown", **where)
    if key not in body:
        raise MalformedResponseError(
            f"{where.get('connector', 'psp')}: the answer has no {key!r}; the outcome is "
            "unknown", **where,
        )
    return body[key]


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else ``TypeError``."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object")
    return value


def listing(value: Any, what: str) -> list[Any]:
    """``value`` when it is a JSON array, else ``TypeError``."""
    if not isinstance(value, list):
        raise TypeError(f"{what} is not a list")
    return value


def text(value: Any, what: str) -> str:
    """``value`` when it is a JSON string of valid Unicode (no lone surrogate, which JSON's
    ``\\udfff`` escape can carry), else ``TypeError``/``ValueError``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode") from None
    return value


def identifier(value: Any, what: str) -> str:
    """A PSP object id that is safe in a URL path (``[A-Za-z0-9_-]``, 1–128), else
    ``TypeError``/``ValueError``."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} is not an id of letters, digits, '_' and '-'")
    return value


def code(value: Any, what: str = "the code") -> str:
    """A status, decline or error code: 1–64 ASCII letters, digits or ``_.:-``, else
    ``TypeError``/``ValueError``."""
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError(f"{what} is not a short ASCII code")
    return value


def approval_code(value: Any) -> str | None:
    """An issuer approval code (DE 38 / tag 89: up to six ASCII alphanumerics), or ``None``
    when absent or not one (an integer, non-ASCII digits): the code is printed on the
    receipt, the decision does not rest on it, so an odd one is dropped, never guessed at
    and never a reason to void the answer. Never raises."""
    if isinstance(value, str) and _APPROVAL_CODE.fullmatch(value):
        return value
    return None


def issuer_data(value: Any) -> tuple[bytes, bool]:
    """Issuer data (hex text of BER-TLV: tags 91, 71, 72) as ``(bytes, malformed)``.

    Absent (``None`` or ``""``) is ``(b"", False)``. Present but not even-length hex of at
    most :data:`MAX_ISSUER_DATA` bytes is ``(b"", True)``: the host's decision stands and the
    kernel records a failed issuer authentication (EMV Book 3 §10.9) — never dropped for it.
    """
    if value is None or value == "":
        return b"", False
    if not isinstance(value, str) or len(value) > 2 * MAX_ISSUER_DATA \
            or not _HEX.fullmatch(value):
        return b"", True
    return bytes.fromhex(value), False


def message(value: Any, limit: int = _MESSAGE_CHARS) -> str:
    """A PSP's free text for people: any JSON value as at most ``limit`` printable
    characters (lone surrogates and control characters replaced). Never raises."""
    if value is None:
        return ""
    if isinstance(value, str):
        raw = value
    elif isinstance(value, bool | float) or (isinstance(value, int)
                                             and abs(value) < 10**30):
        raw = str(value)
    else:
        raw = f"<{type(value).__name__}>"  # a structure where text belongs: not shown
    raw = raw[: limit * 2].encode("utf-8", "replace").decode("utf-8")
    return "".join(c if c.isprintable() else "?" for c in raw)[:limit]
