"""A scripted card reader: replays ``(data, sw1, sw2)`` answers and records every command.

The fake ships with the driver (DESIGN §7.2) so that the kernel's tests and ours drive the
same :class:`~drivers.base.CardReader` contract without pcscd::

    reader = ScriptedReader([(b"", 0x61, 0x10), (fci, 0x90, 0x00)])
    session = await reader.connect(await reader.wait_for_card())
    response = await session.transmit(select_ppse)      # GET RESPONSE sent for us
    assert reader.sent == [select_ppse, bytes.fromhex("00C0000010")]

Tests inject failures by subclassing and overriding :meth:`ScriptedReader.respond`
(raise :class:`~drivers.reader_errors.CardRemovedError`, return garbage...), or by calling
:meth:`remove`/:meth:`unplug` while a session is open. Sessions apply the T=0 rules of
:class:`drivers.apdu.T0Session`, so ``sent`` shows the GET RESPONSE and Le retries too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable

from drivers.apdu import T0Session
from drivers.base import CardEvent, CardEventKind, ResponseApdu
from drivers.reader_errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    ReaderGoneError,
    ReaderTimeoutError,
)

__all__ = ["DEFAULT_ATR", "ScriptExhausted", "ScriptedReader", "ScriptedSession"]

#: A plausible T=0/T=1 EMV contact card ATR (EMV 4.4 Book 1 §8.3 basic ATR).
DEFAULT_ATR = bytes.fromhex("3B6800000073C84000009000")


class ScriptExhausted(AssertionError):
    """The code under test sent more commands than the script answers (a test failure)."""


class ScriptedSession(T0Session):
    """A session on a :class:`ScriptedReader`; dies when the card is removed."""

    def __init__(self, owner: ScriptedReader, reader: str, atr: bytes, generation: int) -> None:
        super().__init__(reader, atr)
        self._owner = owner
        self._generation = generation

    async def _transmit_raw(self, command: bytes) -> ResponseApdu:
        owner = self._owner
        if not owner.plugged:
            raise ReaderGoneError("the reader was unplugged during the session", reader=self.reader)
        if not owner.card_present or owner.card_generation != self._generation:
            raise CardRemovedError("the card was removed during the session", reader=self.reader)
        owner.sent.append(command)
        await asyncio.sleep(0)
        return owner.respond(command)

    async def _close(self) -> None:
        self._owner.session_closed()


class ScriptedReader:
    """A one-reader :class:`~drivers.base.CardReader` whose card answers from a script."""

    def __init__(
        self,
        responses: Iterable[tuple[bytes, int, int]] = (),
        *,
        atr: bytes = DEFAULT_ATR,
        name: str = "Scripted Reader 00 00",
        card_present: bool = True,
    ) -> None:
        self.name = name
        self.atr = atr
        self.script: deque[tuple[bytes, int, int]] = deque(responses)
        #: Every command APDU the card received, in order (GET RESPONSE and retries too).
        self.sent: list[bytes] = []
        self.card_present = card_present
        self.card_generation = 0
        self.plugged = True
        self.closed_sessions = 0
        self._changed = asyncio.Event()
        self._subscribers: list[asyncio.Queue[CardEvent]] = []

    # -- the script -------------------------------------------------------------------

    def respond(self, command: bytes) -> ResponseApdu:
        """The card's answer to ``command``: the next scripted one. Override to inject."""
        if not self.script:
            raise ScriptExhausted(
                f"the script has no answer for command #{len(self.sent)} "
                f"(INS {command[1]:02X})"
            )
        data, sw1, sw2 = self.script.popleft()
        return ResponseApdu(bytes(data), sw1, sw2)

    def session_closed(self) -> None:
        """A session was closed (the card powered off). Override to react."""
        self.closed_sessions += 1

    def add(self, *responses: tuple[bytes, int, int]) -> None:
        """Append answers to the script."""
        self.script.extend(responses)

    # -- the physical world -------------------------------------------------------------

    def insert(self, atr: bytes | None = None) -> None:
        """A card comes into the reader (a new card: older sessions stay dead)."""
        if atr is not None:
            self.atr = atr
        self.card_present = True
        self.card_generation += 1
        self._publish(CardEvent(CardEventKind.INSERTED, self.name, self.atr))

    def remove(self) -> None:
        """The card leaves the reader; open sessions fail with ``CardRemovedError``."""
        self.card_present = False
        self.card_generation += 1
        self._publish(CardEvent(CardEventKind.REMOVED, self.name))

    def unplug(self) -> None:
        """The reader is unplugged (with its card, if any)."""
        if self.card_present:
            self.remove()
        self.plugged = False
        self._publish(CardEvent(CardEventKind.READER_REMOVED, self.name))

    def plug(self) -> None:
        """The reader is plugged back in, empty."""
        self.plugged = True
        self._publish(CardEvent(CardEventKind.READER_ADDED, self.name))

    def _publish(self, event: CardEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)
        self._changed.set()
        self._changed = asyncio.Event()

    # -- CardReader ---------------------------------------------------------------------

    async def list_readers(self) -> list[str]:
        return [self.name] if self.plugged else []

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        if reader is not None and reader != self.name:
            raise NoReaderError(f"no reader named {reader!r}", reader=reader)

        async def present() -> str:
            while not (self.plugged and self.card_present):
                await self._changed.wait()
            return self.name

        try:
            return await asyncio.wait_for(present(), timeout)
        except TimeoutError:
            raise ReaderTimeoutError(
                f"no card was presented within {timeout} s", reader=self.name
            ) from None

    async def connect(self, reader: str) -> ScriptedSession:
        if reader != self.name or not self.plugged:
            raise NoReaderError(f"no reader named {reader!r}", reader=reader)
        if not self.card_present:
            raise NoCardError("there is no card in the reader; insert one", reader=reader)
        return ScriptedSession(self, reader, self.atr, self.card_generation)

    async def events(self) -> AsyncIterator[CardEvent]:
        queue: asyncio.Queue[CardEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            if self.plugged:
                yield CardEvent(CardEventKind.READER_ADDED, self.name)
                if self.card_present:
                    yield CardEvent(CardEventKind.INSERTED, self.name, self.atr)
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)
