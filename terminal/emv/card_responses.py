"""Checks on the card's answers that every flow shares (EMV 4.4 Book 3 §6.5, §10.1–10.2).

The response template of GPO, INTERNAL AUTHENTICATE and GENERATE AC (80 or 77), the
Application Interchange Profile (82, two bytes), the Application File Locator (94) and the
length of every fixed-length object the kernel interprets (:func:`fixed_length`).
A malformed answer is a :class:`~terminal.emv.errors.CardDataError` that names it.
"""

from __future__ import annotations

from terminal.emv.errors import CardDataError, TlvError
from terminal.emv.tlv import Tlv, decode

__all__ = ["checked_aip", "fixed_length", "parse_afl", "response_template"]


def parse_afl(afl: bytes) -> list[tuple[int, int, int, int]]:
    """AFL entries ``(sfi, first, last, oda_count)`` (Book 3 §10.2); malformed → CardDataError."""
    if not afl or len(afl) % 4:
        raise CardDataError("the AFL is empty or not a multiple of 4 bytes", tag=0x94)
    entries = []
    for i in range(0, len(afl), 4):
        sfi, first, last, oda = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        if not 1 <= sfi <= 30 or first == 0 or last < first or oda > last - first + 1:
            raise CardDataError(f"AFL entry {i // 4 + 1} is invalid", tag=0x94)
        entries.append((sfi, first, last, oda))
    return entries



def fixed_length(value: bytes, tag: int, size: int, name: str, where: str = "") -> bytes:
    """``value`` of the card's data object ``tag`` if it is ``size`` bytes, else a
    :class:`CardDataError` naming it (fixed-length elements, EMV 4.4 Book 3 Annex A).

    The one check before the kernel reads bits or bytes of a card object it must interpret
    (AIP, CID, CTQ, IACs…): a short or empty one is the card's data error, never an
    ``IndexError``. Objects whose bad length the books answer otherwise (ODA data, LCOL,
    AUC, dates) are checked where they are used and set their TVR bits instead.
    """
    if len(value) != size:
        prefix = f"{where}: " if where else ""
        raise CardDataError(f"{prefix}the {name} ({tag:X}) is {len(value)} bytes, not {size}",
                            tag=tag)
    return value


def checked_aip(aip: bytes) -> bytes:
    """The Application Interchange Profile, which is 2 bytes (Book 3 Annex A, C1)."""
    return fixed_length(aip, 0x82, 2, "AIP")



def response_template(data: bytes, command: str) -> list[Tlv]:
    """The decoded answer to ``command``; it must start with an 80 or 77 template (Book 3 §6.5)."""
    try:
        items = decode(data)
    except TlvError as exc:
        raise CardDataError(f"the card's answer to {command} is malformed: {exc.message}",
                            offset=exc.offset) from exc
    if not items or items[0].tag not in (0x80, 0x77):
        raise CardDataError(f"the card's answer to {command} is not a response template")
    return items


