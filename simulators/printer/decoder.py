"""ESC/POS bytes back to text: what a thermal printer would put on paper.

Handled (Epson ESC/POS command reference): ``ESC @`` init, ``ESC t n`` code page (numbers
as python-escpos's default profile assigns them), ``LF``, ``ESC d n``/``ESC J n`` feeds,
``GS V m [n]`` cut (ends a receipt), ``DLE EOT n`` real-time status (answered by the
device), and the one-parameter style commands (``ESC ! E - a M`` ``GS ! B``), whose effect
on paper is not kept. Unknown ``ESC``/``GS`` commands are skipped with one parameter byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CODE_PAGES", "Cut", "EscPosDecoder", "StatusRequest", "Text"]

ESC, GS, DLE, EOT, LF = 0x1B, 0x1D, 0x10, 0x04, 0x0A

#: ``ESC t n`` → Python codec (python-escpos's default printer profile numbering).
CODE_PAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858", 40: "iso8859_15"}
#: ESC / GS commands followed by exactly one parameter byte.
_ONE_PARAM_ESC = frozenset(b"!E-aMdJt{VG2 3U")
_ONE_PARAM_GS = frozenset(b"!BHfhw")


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Cut:
    """The paper was cut: the receipt is complete."""


@dataclass(frozen=True)
class StatusRequest:
    """``DLE EOT n``: 1 printer status, 2 offline cause, 3 error cause, 4 paper sensor."""

    kind: int


Event = Text | Cut | StatusRequest


class EscPosDecoder:
    """Feed bytes as they come; get text, cuts and status requests out in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.codec = "cp437"

    def feed(self, data: bytes) -> Iterator[Event]:
        self._buffer += data
        while self._buffer:
            consumed, event = self._next()
            if consumed == 0:
                return  # a command cut in two: wait for the rest
            del self._buffer[:consumed]
            if event is not None:
                yield event

    def _next(self) -> tuple[int, Event | None]:
        buf = self._buffer
        first = buf[0]
        if first == LF:
            return 1, Text("\n")
        if first == DLE:
            if len(buf) < 3:
                return 0, None
            if buf[1] == EOT:
                return 3, StatusRequest(buf[2])
            return 1, None
        if first == ESC:
            if len(buf) < 2:
                return 0, None
            command = buf[1]
            if command == ord("@"):
                self.codec = "cp437"
                return 2, None
            if len(buf) < 3:
                return 0, None
            if command == ord("t"):
                self.codec = CODE_PAGES.get(buf[2], "cp437")
                return 3, None
            if command in (ord("d"), ord("J")):
                return 3, Text("\n" * buf[2] if command == ord("d") else "")
            return 3, None  # one-parameter (or unknown) style command
        if first == GS:
            if len(buf) < 3:
                return 0, None
            if buf[1] == ord("V"):
                # GS V m (m = 0, 1, 48, 49) or GS V m n (m = 65, 66: feed n then cut)
                if buf[2] in (65, 66):
                    if len(buf) < 4:
                        return 0, None
                    return 4, Cut()
                return 3, Cut()
            return 3, None
        # A run of printable bytes up to the next control byte.
        end = 0
        while end < len(buf) and buf[end] not in (LF, ESC, GS, DLE):
            end += 1
        return end, Text(bytes(buf[:end]).decode(self.codec, errors="replace"))
