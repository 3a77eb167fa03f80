"""Atheris harness: the BER-TLV decoder (EMV Book 3 Annex B) on arbitrary bytes.

Allowed: a list of data objects, or ``TlvError`` (the project's own) whose offset lies
inside the input. Anything else is a crash, ``RecursionError`` included: nesting is bounded
by ``tlv.MAX_DEPTH`` (issue #17 item 1), so ``repr``, ``str``, ``find_all`` and ``flatten``
of whatever decoded must work too. ``python fuzz/fuzz_tlv.py -max_total_time=60``
(``make fuzz``).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from terminal.emv import tlv
    from terminal.emv.errors import TlvError


def check(data: bytes) -> None:
    """One input: decode; each object that decoded re-encodes to itself (tag and value)."""
    try:
        items = tlv.decode(data)
    except TlvError as exc:
        if not 0 <= exc.offset <= len(data):
            raise AssertionError(f"error offset {exc.offset} outside the input") from exc
        return
    for item in items:
        repr(item)
        str(item)
    tlv.flatten(items)
    for _ in tlv.find_all(items, 0x70):
        pass
    for item in items:
        again = tlv.decode(tlv.encode(item.tag, item.value))
        if len(again) != 1 or (again[0].tag, again[0].value) != (item.tag, item.value):
            raise AssertionError(f"tag {item.tag:X} does not round-trip")


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
