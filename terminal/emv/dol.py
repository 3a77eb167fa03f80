"""Data object lists: parsing and building (EMV 4.4 Book 3 §5.4).

A DOL (PDOL 9F38, CDOL1 8C, CDOL2 8D, DDOL 9F49, TDOL 97) is a concatenation of entries,
each a BER tag followed by a one-byte length. The terminal answers with the values
concatenated in the same order, without tags or lengths, each fitted to its length:

- tag unknown to the terminal, constructed, or not available → the length in zero bytes;
- value longer than asked → format ``n``: the *leftmost* bytes are truncated; any other
  format: the *rightmost* bytes are truncated;
- value shorter than asked → ``n``: leading ``00`` bytes; ``cn``: trailing ``FF``; any
  other format: trailing ``00``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from terminal.emv.errors import DolError, TlvError
from terminal.emv.tags import format_of
from terminal.emv.tlv import is_constructed, read_tag

__all__ = ["build_dol", "dol_length", "fit_value", "parse_dol"]

#: How a DOL entry is filled: 0 zeros (constructed tag), 1 format n, 2 cn, 3 anything else.
_ZEROS, _N, _CN, _OTHER = 0, 1, 2, 3
_KIND = {"n": _N, "cn": _CN}

# A card's DOLs are the same on every tap (and the few cards a terminal sees share them):
# each DOL is parsed once and kept, with how each entry is filled, in a small cache.
# Malformed DOLs raise and are not cached. 64 distinct DOLs cover many card products.
_CACHE_SIZE = 64


@lru_cache(maxsize=_CACHE_SIZE)
def _parsed(dol: bytes) -> tuple[tuple[int, int], ...]:
    return tuple(_parse(dol))


@lru_cache(maxsize=_CACHE_SIZE)
def _plan(dol: bytes) -> tuple[tuple[int, int, int], ...]:
    return _plan_of(_parsed(dol))


@lru_cache(maxsize=_CACHE_SIZE)
def _plan_of_entries(entries: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int, int], ...]:
    return _plan_of(entries)


def _plan_of(entries: Sequence[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        (tag, length, _ZEROS if is_constructed(tag) else _KIND.get(format_of(tag), _OTHER))
        for tag, length in entries
    )


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """The ``(tag, length)`` entries of a DOL, in order; malformed → :class:`DolError`."""
    return list(_parsed(bytes(dol)))


def _parse(dol: bytes) -> list[tuple[int, int]]:
    entries: list[tuple[int, int]] = []
    offset = 0
    while offset < len(dol):
        try:
            tag, offset = read_tag(dol, offset)
        except TlvError as exc:
            raise DolError(f"malformed DOL: {exc.message}", offset=exc.offset) from exc
        if offset >= len(dol):
            raise DolError(f"malformed DOL: tag {tag:X} has no length", offset=offset)
        entries.append((tag, dol[offset]))
        offset += 1
    return entries


def dol_length(dol: bytes | Sequence[tuple[int, int]]) -> int:
    entries = _parsed(bytes(dol)) if isinstance(dol, bytes | bytearray) else dol
    return sum(length for _, length in entries)


def fit_value(tag: int, value: bytes, length: int) -> bytes:
    """``value`` fitted to ``length`` bytes by the format rules of Book 3 §5.4."""
    fmt = format_of(tag)
    if len(value) > length:
        return value[len(value) - length :] if fmt == "n" else value[:length]
    missing = length - len(value)
    if fmt == "n":
        return b"\x00" * missing + value
    if fmt == "cn":
        return value + b"\xff" * missing
    return value + b"\x00" * missing


def build_dol(dol: bytes | Sequence[tuple[int, int]], data: Mapping[int, bytes]) -> bytes:
    """The concatenated values a DOL asks for, taken from ``data`` (tag → value)."""
    if isinstance(dol, bytes | bytearray):
        plan = _plan(bytes(dol))
    else:  # entries, as parse_dol gives them: cached by their tuple too
        try:
            plan = _plan_of_entries(tuple(dol))
        except TypeError:  # entries that are not hashable (lists): no cache
            plan = _plan_of(dol)
    out = bytearray()
    get = data.get
    # fit_value's rules, inlined with each entry's format looked up once per DOL.
    for tag, length, kind in plan:
        value = get(tag)
        if value is None or kind == _ZEROS:
            out += bytes(length)
            continue
        size = len(value)
        if size == length:
            out += value
        elif size > length:
            out += value[size - length :] if kind == _N else value[:length]
        elif kind == _N:
            out += bytes(length - size) + value
        elif kind == _CN:
            out += value + b"\xff" * (length - size)
        else:
            out += value + bytes(length - size)
    return bytes(out)
