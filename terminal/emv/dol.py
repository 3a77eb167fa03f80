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

from terminal.emv.errors import DolError, TlvError
from terminal.emv.tags import format_of
from terminal.emv.tlv import is_constructed, read_tag

__all__ = ["build_dol", "dol_length", "fit_value", "parse_dol"]


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """The ``(tag, length)`` entries of a DOL, in order; malformed → :class:`DolError`."""
    dol = bytes(dol)
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
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else dol
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
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else dol
    out = bytearray()
    for tag, length in entries:
        value = data.get(tag)
        if value is None or is_constructed(tag):
            out += b"\x00" * length
        else:
            out += fit_value(tag, value, length)
    return bytes(out)
