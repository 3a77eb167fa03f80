"""The scripted reader: replay, recording, events, and failure injection by subclassing."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import CardEventKind, CardReader, ResponseApdu
from drivers.reader_errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    ReaderGoneError,
    ReaderTimeoutError,
)
from drivers.scripted import ScriptedReader, ScriptExhausted

SELECT = bytes.fromhex("00A404000E315041592E5359532E444446303100")


def test_implements_the_protocol() -> None:
    """ScriptedReader satisfies drivers.base.CardReader."""
    assert isinstance(ScriptedReader(), CardReader)


async def test_replays_and_records() -> None:
    """Answers come back in order and every command is recorded."""
    reader = ScriptedReader([(b"\x6f\x00", 0x90, 0x00), (b"", 0x6A, 0x82)])
    session = await reader.connect(await reader.wait_for_card())
    assert (await session.transmit(SELECT)).data == b"\x6f\x00"
    assert (await session.transmit(SELECT)).sw == 0x6A82
    assert reader.sent == [SELECT, SELECT]
    with pytest.raises(ScriptExhausted):
        await session.transmit(SELECT)


async def test_subclass_injects_a_removal() -> None:
    """A subclass overriding respond() can pull the card out at a chosen command."""

    class PulledAtSecond(ScriptedReader):
        def respond(self, command: bytes) -> ResponseApdu:
            if len(self.sent) == 2:
                raise CardRemovedError("card pulled", reader=self.name)
            return ResponseApdu(b"", 0x90, 0x00)

    reader = PulledAtSecond()
    session = await reader.connect(reader.name)
    await session.transmit(SELECT)
    with pytest.raises(CardRemovedError):
        await session.transmit(SELECT)


async def test_removal_kills_open_sessions() -> None:
    """After remove() (even with a new card inserted) an old session raises CardRemovedError."""
    reader = ScriptedReader([(b"", 0x90, 0x00)] * 3)
    session = await reader.connect(reader.name)
    reader.remove()
    with pytest.raises(CardRemovedError):
        await session.transmit(SELECT)
    reader.insert()
    with pytest.raises(CardRemovedError):
        await session.transmit(SELECT)
    fresh = await reader.connect(reader.name)
    assert (await fresh.transmit(SELECT)).ok


async def test_unplug_kills_sessions_and_readers() -> None:
    """Unplugging empties the reader list and fails open sessions with ReaderGoneError."""
    reader = ScriptedReader([(b"", 0x90, 0x00)])
    session = await reader.connect(reader.name)
    reader.unplug()
    assert await reader.list_readers() == []
    with pytest.raises(ReaderGoneError):
        await session.transmit(SELECT)
    with pytest.raises(NoReaderError):
        await reader.connect(reader.name)


async def test_no_card_and_timeouts() -> None:
    """An empty reader refuses connect and wait_for_card times out; an insert ends the wait."""
    reader = ScriptedReader(card_present=False)
    with pytest.raises(NoCardError):
        await reader.connect(reader.name)
    with pytest.raises(ReaderTimeoutError):
        await reader.wait_for_card(timeout=0.01)
    waiter = asyncio.create_task(reader.wait_for_card(timeout=5))
    await asyncio.sleep(0)
    reader.insert()
    assert await waiter == reader.name


async def test_events() -> None:
    """events() reports the present state first, then insert/remove/unplug/plug as they happen."""
    reader = ScriptedReader()
    events = reader.events()
    assert (await anext(events)).kind is CardEventKind.READER_ADDED
    assert (await anext(events)).kind is CardEventKind.INSERTED
    reader.unplug()
    reader.plug()
    reader.insert(atr=b"\x3b\x00")
    kinds = [(await anext(events)) for _ in range(4)]
    assert [e.kind for e in kinds] == [
        CardEventKind.REMOVED,
        CardEventKind.READER_REMOVED,
        CardEventKind.READER_ADDED,
        CardEventKind.INSERTED,
    ]
    assert kinds[-1].atr == b"\x3b\x00"
    await events.aclose()
