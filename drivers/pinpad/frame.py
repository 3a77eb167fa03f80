"""Link layer of the PIN pad protocol: packets, LRC and the control bytes.

Modelled on the VeriFone PINpad 1000SE packet protocol (see ``drivers/PROTOCOL.md`` §2):
a packet is ``STX message ETX LRC`` where LRC is the XOR of every byte after STX up to
and including ETX. The receiver answers ``ACK`` or ``NAK``; ``EOT`` ends an exchange.
Messages are printable ASCII (0x20-0x7E) and the field separator FS (0x1C), so no
control byte can appear inside one.

:class:`FrameDecoder` is incremental: bytes may arrive in any split, bytes before STX are
noise and ignored, and no input whatsoever makes it raise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ACK",
    "EOT",
    "ETX",
    "FS",
    "MAX_MESSAGE_LENGTH",
    "NAK",
    "STX",
    "BadFrame",
    "Control",
    "Frame",
    "FrameDecoder",
    "LinkEvent",
    "encode_frame",
    "lrc",
]

STX = 0x02
ETX = 0x03
EOT = 0x04
ACK = 0x06
NAK = 0x15
FS = 0x1C

#: Longest message a packet may carry (the longest real one, Z62, is under 80 bytes).
MAX_MESSAGE_LENGTH = 240


class Control(enum.IntEnum):
    """The single control bytes that travel outside packets."""

    ACK = ACK
    NAK = NAK
    EOT = EOT


@dataclass(frozen=True, slots=True)
class Frame:
    """A packet whose LRC checked; ``message`` is what was between STX and ETX."""

    message: bytes

    def __repr__(self) -> str:
        # Messages may carry a PAN (Z62): show only the command code.
        return f"Frame(code={self.message[:3]!r}, length={len(self.message)})"


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A packet that started with STX but cannot be accepted; answer it with NAK."""

    reason: str


LinkEvent = Control | Frame | BadFrame


def _valid_message_byte(byte: int) -> bool:
    return byte == FS or 0x20 <= byte <= 0x7E


def lrc(data: bytes) -> int:
    """XOR of ``data`` (callers pass the message and ETX)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(message: bytes) -> bytes:
    """``STX message ETX LRC``; ``ValueError`` if the message holds a byte it may not."""
    if len(message) > MAX_MESSAGE_LENGTH:
        raise ValueError(f"a PIN pad message is at most {MAX_MESSAGE_LENGTH} bytes")
    if not all(_valid_message_byte(b) for b in message):
        raise ValueError("a PIN pad message is printable ASCII and FS only")
    body = message + bytes([ETX])
    return bytes([STX]) + body + bytes([lrc(body)])


class FrameDecoder:
    """Turns a byte stream into :data:`LinkEvent` values; never raises on input."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._in_frame = False
        self._awaiting_lrc = False
        self.noise_bytes = 0

    def reset(self) -> None:
        self._buffer.clear()
        self._in_frame = False
        self._awaiting_lrc = False

    def feed(self, data: bytes) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        for byte in data:
            event = self._feed_byte(byte)
            if event is not None:
                events.append(event)
        return events

    def _feed_byte(self, byte: int) -> LinkEvent | None:
        if self._awaiting_lrc:
            body = bytes(self._buffer) + bytes([ETX])
            message = bytes(self._buffer)
            self.reset()
            if lrc(body) != byte:
                return BadFrame("LRC mismatch")
            if not all(_valid_message_byte(b) for b in message):
                return BadFrame("control byte inside the message")
            return Frame(message)
        if not self._in_frame:
            if byte == STX:
                self._in_frame = True
                self._buffer.clear()
                return None
            if byte in (ACK, NAK, EOT):
                return Control(byte)
            self.noise_bytes += 1
            return None
        if byte == ETX:
            self._awaiting_lrc = True
            return None
        if byte == STX:
            # A new packet began before the old one ended: the old one is lost.
            self._buffer.clear()
            return BadFrame("STX inside a packet")
        self._buffer.append(byte)
        if len(self._buffer) > MAX_MESSAGE_LENGTH:
            self.reset()
            return BadFrame("packet longer than the longest message")
        return None
