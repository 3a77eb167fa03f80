"""The hardware boundaries as small protocols (DESIGN §7.1).

The EMV kernel is given a :class:`CardReader`; it never imports pyscard. The real
implementation (pyscard through pcscd) and the card simulator's in-process reader both
implement it, and so does the scripted reader that tests use.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["CardEvent", "CardEventKind", "CardReader", "CardSession", "ResponseApdu"]


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU (ISO/IEC 7816-4 §5.1): data field and the two status bytes."""

    data: bytes
    sw1: int
    sw2: int

    @property
    def sw(self) -> int:
        """The status word as one integer, e.g. ``0x9000``."""
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000


class CardEventKind(enum.Enum):
    INSERTED = "inserted"
    REMOVED = "removed"
    READER_ADDED = "reader_added"
    READER_REMOVED = "reader_removed"


@dataclass(frozen=True, slots=True)
class CardEvent:
    kind: CardEventKind
    reader: str
    atr: bytes = b""


class CardSession(Protocol):
    """One powered card in one reader; single use: after ``close()`` it refuses to transmit.

    ``transmit`` hands back the final response: the driver has already followed
    ``61xx`` with GET RESPONSE and resent on ``6Cxx`` with the right Le (T=0).
    """

    @property
    def reader(self) -> str: ...

    @property
    def atr(self) -> bytes: ...

    async def transmit(self, apdu: bytes) -> ResponseApdu: ...

    async def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    """A PC/SC-like reader service: lists readers, waits for cards, opens card sessions."""

    async def list_readers(self) -> list[str]: ...

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        """Wait until a card is present; return the name of the reader that holds it."""
        ...

    async def connect(self, reader: str) -> CardSession:
        """Power the card on (reading its ATR) and open a session on it."""
        ...

    def events(self) -> AsyncIterator[CardEvent]:
        """Insert/remove and reader plug/unplug events, as they happen."""
        ...
