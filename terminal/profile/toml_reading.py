"""Reading one TOML file of a profile with bounds: its size, then its nesting depth.

:mod:`tomllib` is a recursive-descent parser: about a thousand nested arrays or inline
tables, a few kilobytes of text, end in ``RecursionError`` (issue #17 item 10), and a deep
document that parses still makes pydantic and the error report recurse. Every profile file
(and ``crl.toml``) is read here, so each of those is a ``file: reason`` problem like any
other, never a traceback. :func:`format_loc` writes a pydantic error location as the
``key.sub[0]`` the problems list shows, with hostile key names made safe to print.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "format_loc", "read_toml"]

#: The deepest nesting any profile file needs is about four levels (``[[psp]]`` → list →
#: table); the bound keeps validation and error reporting far from the recursion limit.
MAX_DEPTH = 16
#: The largest profile file: the CA keys of every scheme are some 20 KB; ``crl.toml`` (up
#: to 100,000 entries of ~60 bytes) gets its own larger bound from its reader.
MAX_FILE_BYTES = 1 << 20
#: A key name longer than this is shortened in a problem (its start says which it is).
_MAX_KEY_SHOWN = 64


def read_toml(path: Path, filename: str, *, max_bytes: int = MAX_FILE_BYTES
              ) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed document of ``path``, or ``None`` and why (``filename: reason``).

    ``FileNotFoundError`` is left to the caller (a missing file means different things to
    the required files and to the optional ``crl.toml``).
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return None, f"{filename}: cannot be read: {exc.strerror or exc}"
    if len(raw) > max_bytes:
        return None, (f"{filename}: larger than {max_bytes // 1024} KiB; no profile file "
                      "is that large")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"{filename}: not UTF-8 text (byte {exc.start})"
    except tomllib.TOMLDecodeError as exc:
        return None, f"{filename}: invalid TOML: {exc}"
    except RecursionError:
        return None, f"{filename}: nested too deep to read (arrays or tables)"
    except ValueError:  # int() of a decimal past the interpreter's digit limit (4300)
        return None, (f"{filename}: invalid TOML: a number of more than "
                      f"{sys.get_int_max_str_digits()} digits")
    where = _too_deep(data)
    if where is not None:
        return None, (f"{filename}:{where}: nested too deep (more than {MAX_DEPTH} levels; "
                      "no profile setting is)")
    return data, None


def _too_deep(data: Any) -> str | None:
    """The key path of the first value nested deeper than :data:`MAX_DEPTH`, or ``None``."""
    # Iterative on purpose: the point is to stay off the recursion limit.
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return format_loc(path[:MAX_DEPTH])
        if isinstance(value, dict):
            stack.extend((v, (*path, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
    return None


def _key(part: str) -> str:
    """A key as the problem shows it: as written when plain, else quoted with escapes."""
    if len(part) > _MAX_KEY_SHOWN:
        part = part[:_MAX_KEY_SHOWN] + "…"
    # A key is any TOML string: control characters (a terminal escape) are shown escaped.
    if part == "[key]" or (part and part.isprintable() and not any(c in part for c in ".[]\"' ")):
        return part
    return repr(part)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``psp[3].url`` for pydantic's ``('psp', 3, 'url')``; ``(top level)`` for ``()``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{_key(part)}" if text else _key(part)
    return text or "(top level)"
