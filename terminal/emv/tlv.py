"""BER-TLV codec as EMV uses it (EMV 4.4 Book 3 Annex B, ISO/IEC 8825-1 subset).

- Tags (Annex B1): bit b6 of the first byte says *constructed*; when b5–b1 of the first
  byte are all 1 the tag continues, and each subsequent byte with b8 = 1 is followed by
  another. Tags are handled as the integer of their bytes (``0x9F02``, ``0xBF0C``).
- Lengths (Annex B2): b8 = 0 → one byte, 0–127; b8 = 1 → b7–b1 count the subsequent length
  bytes (EMV uses at most three; we accept up to four). The indefinite form ``80`` is not
  allowed in EMV and is rejected. Non-minimal long forms (``81 05``) are accepted on input,
  since cards emit them, and never produced on output.
- Padding (Annex B): ``00`` bytes may occur before, between and after data objects; they
  are skipped where a tag is expected. (ISO/IEC 7816-4 also allows ``FF``; EMV does not, and
  ``FF`` starts valid private-class tags, so it is decoded as a tag.)

Written by hand rather than with :mod:`pyemv.tlv` because that decoder returns a dict: it
loses the order and the repetitions (several ``61`` directory entries in a PPSE answer,
several records), and its errors do not carry the absolute offset inside nested objects.
Every malformed input raises :class:`~terminal.emv.errors.TlvError` with ``offset``: the
index in the outermost buffer where the problem was found.

Bounds: a card (or a host's DE 55) is untrusted input, and a few kilobytes of ``E1 82 ..``
headers delivered through ``61xx`` chaining nest a thousand levels deep. EMV templates nest
a few levels (``6F`` → ``A5`` → ``BF0C`` → ``61`` → ``73`` is the deepest, Book 1 §11.3.4
and §12.2.3; a record is ``70`` → its objects; DE 55 carries ``71``/``72`` → ``86``), so
decoding refuses more than :data:`MAX_DEPTH` levels of constructed objects and more than
:data:`MAX_SIZE` bytes of input, with a ``TlvError`` that says where (``offset``) and, for
nesting, how deep (``depth``). Nothing here recurses without a bound: ``repr``/``str``
stop at a few levels, and :func:`find_all` and :func:`flatten` walk with a stack, so even
a tree built by hand at any depth is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from terminal.emv.errors import TlvError
from terminal.emv.tags import SENSITIVE_TAGS

__all__ = [
    "MAX_DEPTH",
    "MAX_SIZE",
    "Tlv",
    "decode",
    "encode",
    "encode_constructed",
    "encode_length",
    "encode_tag",
    "find",
    "find_all",
    "flatten",
    "is_constructed",
    "iter_tlv",
    "read_tag",
    "tag_bytes",
]

_PADDING = 0x00
_MAX_LENGTH_BYTES = 4
#: Constructed objects nested deeper than this are refused. EMV uses at most 5 levels;
#: 16 leaves room for issuers' proprietary templates yet keeps the decoder's recursion (one
#: Python frame per level) far below the interpreter's limit of 1,000.
MAX_DEPTH = 16
#: Inputs longer than this are refused. The largest legitimate input is a card's answer
#: through T=0 chaining: at most ``drivers.apdu.MAX_T0_ROUNDS`` (32) × 256 bytes = 8 KB;
#: a DE 55 is under 1 KB (ISO 8583 LLLVAR). Twice that leaves a margin and nothing more.
MAX_SIZE = 16384
#: ``repr`` shows children down to this depth, then ``…``.
_REPR_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Tlv:
    """One data object: ``tag`` as an int, ``value`` as bytes, ``children`` if constructed.

    ``offset`` is where the object's tag starts in the buffer given to :func:`decode`.
    The ``repr`` masks the value of sensitive tags (PAN, track 2, …).
    """

    tag: int
    value: bytes
    children: list[Tlv] = field(default_factory=list)
    offset: int = 0

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def encode(self) -> bytes:
        """The object back as BER-TLV bytes (minimal length encoding)."""
        return encode(self.tag, self.value)

    def find(self, tag: int) -> Tlv | None:
        """The first descendant with ``tag`` (depth first), or ``None``."""
        return find(self.children, tag)

    def __repr__(self) -> str:
        return _repr(self, _REPR_DEPTH)


# Building a frozen dataclass goes through object.__setattr__ once per field; the decoder
# makes a few dozen objects per card answer, so it fills the slots directly instead (same
# object, same fields: what __init__ would do, without its per-field lookups).
# _decode_list does it inline.
_new_tlv = object.__new__
_set_tag = Tlv.__dict__["tag"].__set__
_set_value = Tlv.__dict__["value"].__set__
_set_children = Tlv.__dict__["children"].__set__
_set_offset = Tlv.__dict__["offset"].__set__


def _repr(item: Tlv, depth: int) -> str:
    # Bounded: a Tlv built by hand may nest without limit; repr must never recurse into it.
    if item.children:
        if depth <= 0:
            return f"Tlv({item.tag:X}, children=[…{len(item.children)}])"
        inner = ", ".join(_repr(child, depth - 1) for child in item.children)
        return f"Tlv({item.tag:X}, children=[{inner}])"
    if item.tag in SENSITIVE_TAGS:
        return f"Tlv({item.tag:X}, <{len(item.value)} bytes masked>)"
    return f"Tlv({item.tag:X}, {item.value.hex().upper()})"


def tag_bytes(tag: int) -> bytes:
    """The bytes of an integer tag, checked for well-formedness (Annex B1)."""
    if not isinstance(tag, int) or isinstance(tag, bool):
        raise TypeError(f"tag must be an int, not {type(tag).__name__}")
    if tag <= 0:
        raise ValueError(f"tag must be positive, got {tag}")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    more = (raw[0] & 0x1F) == 0x1F
    if not more and len(raw) != 1:
        raise ValueError(f"tag {tag:X}: first byte {raw[0]:02X} does not announce subsequent bytes")
    if more:
        if len(raw) == 1:
            raise ValueError(f"tag {tag:X}: first byte announces subsequent bytes, none given")
        for index, byte in enumerate(raw[1:], start=1):
            last = index == len(raw) - 1
            if bool(byte & 0x80) == last:
                raise ValueError(f"tag {tag:X}: byte {index} has a wrong continuation bit b8")
    return raw


def encode_tag(tag: int) -> bytes:
    return tag_bytes(tag)


def is_constructed(tag: int) -> bool:
    """Bit b6 of the tag's first byte (Annex B1)."""
    # One- and two-byte tags are nearly all of them: test those without a loop.
    if tag <= 0xFF:
        return bool(tag & 0x20)
    if tag <= 0xFFFF:
        return bool(tag & 0x2000)
    while tag > 0xFF:
        tag >>= 8
    return bool(tag & 0x20)


def encode_length(length: int) -> bytes:
    """Definite-form length, minimal (Annex B2)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(raw) > _MAX_LENGTH_BYTES:
        raise ValueError(f"length {length} needs more than {_MAX_LENGTH_BYTES} length bytes")
    return bytes([0x80 | len(raw)]) + raw


def encode(tag: int, value: bytes) -> bytes:
    """One data object: tag, length, value (EMV 4.4 Book 3 Annex B)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
    value = bytes(value)
    # The kernel encodes the same few dozen tags on every transaction (CDA's hash input,
    # DE 55): their checked bytes are kept. Only well-formed int tags get in, never bools.
    raw = _TAG_BYTES.get(tag) if type(tag) is int else None
    if raw is None:
        raw = tag_bytes(tag)
        if type(tag) is int and len(_TAG_BYTES) < _TAG_BYTES_MAX:
            _TAG_BYTES[tag] = raw
    size = len(value)
    if size < 0x80:
        return raw + bytes((size,)) + value
    return raw + encode_length(size) + value


_TAG_BYTES: dict[int, bytes] = {}
_TAG_BYTES_MAX = 1024


def encode_constructed(tag: int, children: Iterable[tuple[int, bytes] | Tlv]) -> bytes:
    """A constructed object whose value is the concatenation of ``children``."""
    if not is_constructed(tag):
        raise ValueError(f"tag {tag:X} is primitive (b6 of its first byte is 0)")
    body = b"".join(
        child.encode() if isinstance(child, Tlv) else encode(child[0], child[1])
        for child in children
    )
    return encode(tag, body)


def read_tag(data: bytes, offset: int, *, base: int = 0) -> tuple[int, int]:
    """Read a tag at ``offset``; return ``(tag, next_offset)``. ``base`` shifts error offsets."""
    if offset >= len(data):
        raise TlvError("tag expected, data ended", offset=base + offset)
    start = offset
    tag = data[offset]
    offset += 1
    if (tag & 0x1F) == 0x1F:
        while True:
            if offset >= len(data):
                raise TlvError("multi-byte tag truncated", offset=base + start)
            byte = data[offset]
            tag = (tag << 8) | byte
            offset += 1
            if not byte & 0x80:
                break
            if offset - start > 4:
                raise TlvError("tag longer than 4 bytes", offset=base + start)
    return tag, offset


def _read_length(data: bytes, offset: int, tag: int, base: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("length expected, data ended", offset=base + offset, tag=tag)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length (80) is not allowed", offset=base + offset, tag=tag)
    if count > _MAX_LENGTH_BYTES:
        raise TlvError(f"length on {count} bytes is too long", offset=base + offset, tag=tag)
    if offset + 1 + count > len(data):
        raise TlvError("long-form length truncated", offset=base + offset, tag=tag)
    return int.from_bytes(data[offset + 1 : offset + 1 + count], "big"), offset + 1 + count


def iter_tlv(data: bytes, *, base: int = 0, recurse: bool = True) -> Iterator[Tlv]:
    """Decode data objects one by one; constructed ones get their ``children`` decoded."""
    data = bytes(data)
    _check_size(data, base)
    yield from _decode_list(data, base, recurse, 0)


def _check_size(data: bytes, base: int) -> None:
    if len(data) > MAX_SIZE:
        raise TlvError(f"{len(data)} bytes is more than the {MAX_SIZE} a data object list may be",
                       offset=base)


def _decode_list(data: bytes, base: int, recurse: bool, depth: int) -> list[Tlv]:
    # The kernel decodes every card answer, several times per transaction: this loop reads
    # one-byte lengths and short tags inline and leaves the rarer forms to the helpers.
    out: list[Tlv] = []
    append = out.append
    new, set_tag, set_value = _new_tlv, _set_tag, _set_value
    set_children, set_offset = _set_children, _set_offset
    size = len(data)
    offset = 0
    while offset < size:
        first = data[offset]
        if first == _PADDING:
            offset += 1
            continue
        start = offset
        if (first & 0x1F) != 0x1F:
            tag, offset = first, offset + 1
        elif offset + 1 < size and data[offset + 1] < 0x80:
            tag, offset = (first << 8) | data[offset + 1], offset + 2
        else:
            tag, offset = read_tag(data, offset, base=base)
        if offset < size and data[offset] < 0x80:
            length, offset = data[offset], offset + 1
        elif offset + 1 < size and data[offset] == 0x81:  # 81 xx: records, certificates
            length, offset = data[offset + 1], offset + 2
        else:
            length, offset = _read_length(data, offset, tag, base)
        end = offset + length
        if end > size:
            raise TlvError(
                f"value of {length} bytes overruns the data ({size - offset} left)",
                offset=base + start,
                tag=tag,
            )
        value = data[offset:end]
        if recurse and first & 0x20:
            if depth >= MAX_DEPTH:
                raise TlvError(
                    f"constructed objects nested more than {MAX_DEPTH} deep "
                    f"(this one is at depth {depth + 1})",
                    offset=base + start, tag=tag, depth=depth + 1,
                )
            children = _decode_list(value, base + offset, True, depth + 1)
        else:
            children = []
        # _make, inlined: this is the decoder's innermost step.
        item = new(Tlv)
        set_tag(item, tag)
        set_value(item, value)
        set_children(item, children)
        set_offset(item, base + start)
        append(item)
        offset = end
    return out


def decode(data: bytes) -> list[Tlv]:
    """Every top-level data object in ``data``, constructed ones with their children."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    _check_size(data, 0)
    return _decode_list(data, 0, True, 0)


def find_all(tlvs: Iterable[Tlv], tag: int) -> Iterator[Tlv]:
    """Every object with ``tag`` in ``tlvs`` and their descendants, depth first."""
    # An explicit stack of iterators, not recursion: safe on a hand-built tree of any depth.
    stack: list[Iterator[Tlv]] = [iter(tlvs)]
    while stack:
        for item in stack[-1]:
            if item.tag == tag:
                yield item
            if item.children:
                stack.append(iter(item.children))
                break
        else:
            stack.pop()


def find(tlvs: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` (depth first), or ``None``."""
    return next(find_all(tlvs, tag), None)


def flatten(tlvs: Iterable[Tlv]) -> dict[int, bytes]:
    """Primitive objects by tag (first occurrence wins), constructed ones descended into."""
    out: dict[int, bytes] = {}
    # Depth first with a stack of iterators (no recursion), as in find_all.
    stack: list[Iterator[Tlv]] = [iter(tlvs)]
    while stack:
        for item in stack[-1]:
            if is_constructed(item.tag):
                stack.append(iter(item.children))
                break
            if item.tag not in out:
                out[item.tag] = item.value
        else:
            stack.pop()
    return out
