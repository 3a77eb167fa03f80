"""The pyscard reader's logic against a fake pcscd: T=0, errors, unplug/replug, pcscd restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.base import CardEvent, CardEventKind, CardReader
from drivers.pcsc import PcscReader
from drivers.reader_errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PcscServiceError,
    ReaderGoneError,
    ReaderTimeoutError,
)
from tests.drivers.fake_scard import FakeCard, FakePcscd, FakeScard

ATR = bytes.fromhex("3B6800000073C84000009000")
R0, R1 = "Virtual PCD 00 00", "Virtual PCD 00 01"


def _echo_card() -> FakeCard:
    def answer(apdu: bytes) -> bytes:
        if apdu[1] == 0xB2 and apdu[4] == 0:
            return b"\x6c\x03"  # T=0: wrong Le, ask for 3
        if apdu[1] == 0xB2:
            return b"abc\x90\x00"
        if apdu[1] == 0xA4:
            return b"\x61\x02"
        if apdu[1] == 0xC0:
            return b"OK\x90\x00"
        return b"\x6d\x00"

    return FakeCard(ATR, answer)


@pytest.fixture
def api() -> FakeScard:
    api = FakeScard(FakePcscd())
    api.plug(R0)
    api.plug(R1)
    return api


@pytest.fixture
def reader(api: FakeScard) -> PcscReader:
    return PcscReader(api=api, poll_ms=20, backoff=(0.01, 0.05))


async def _next(events: AsyncIterator[CardEvent], n: int) -> list[CardEvent]:
    return [await asyncio.wait_for(anext(events), 5) for _ in range(n)]


def test_implements_the_protocol(reader: PcscReader) -> None:
    """PcscReader satisfies drivers.base.CardReader."""
    assert isinstance(reader, CardReader)


async def test_list_connect_and_t0(api: FakeScard, reader: PcscReader) -> None:
    """Readers are listed, the ATR is read, and T=0 61xx/6Cxx are resolved inside transmit."""
    api.insert(R0, _echo_card())
    assert await reader.list_readers() == [R0, R1]
    session = await reader.connect(R0)
    assert session.atr == ATR
    select = await session.transmit(bytes.fromhex("00A4040002AABB00"))
    record = await session.transmit(bytes.fromhex("00B2010C00"))
    await session.close()
    assert (select.data, select.sw, record.data) == (b"OK", 0x9000, b"abc")
    assert api.world.transmitted == [
        bytes.fromhex("00A4040002AABB00"),
        bytes.fromhex("00C0000002"),
        bytes.fromhex("00B2010C00"),
        bytes.fromhex("00B2010C03"),
    ]


async def test_no_readers_is_an_empty_list(api: FakeScard, reader: PcscReader) -> None:
    """SCARD_E_NO_READERS_AVAILABLE means an empty list, not an error."""
    api.unplug(R0)
    api.unplug(R1)
    assert await reader.list_readers() == []


async def test_connect_errors(api: FakeScard, reader: PcscReader) -> None:
    """Connecting to an empty reader or an unknown one raises the matching leaf."""
    with pytest.raises(NoCardError) as empty:
        await reader.connect(R0)
    assert empty.value.fields["reader"] == R0
    with pytest.raises(NoReaderError):
        await reader.connect("Nope 00 00")


async def test_card_removed_mid_transaction(api: FakeScard, reader: PcscReader) -> None:
    """A card pulled out mid-session surfaces as CardRemovedError (not a bare transmit fault)."""
    api.insert(R0, _echo_card())
    session = await reader.connect(R0)
    api.remove(R0)
    with pytest.raises(CardRemovedError):
        await session.transmit(bytes.fromhex("00B2010C03"))
    await session.close()  # closing a session whose card left is harmless


async def test_reader_unplugged_mid_transaction(api: FakeScard, reader: PcscReader) -> None:
    """A reader unplugged mid-session surfaces as ReaderGoneError."""
    api.insert(R0, _echo_card())
    session = await reader.connect(R0)
    api.unplug(R0)
    with pytest.raises(ReaderGoneError):
        await session.transmit(bytes.fromhex("00B2010C03"))


async def test_pcscd_down_then_restarted(api: FakeScard, reader: PcscReader) -> None:
    """With pcscd down calls raise PcscServiceError; once back the context is re-established."""
    api.insert(R0, _echo_card())
    await reader.list_readers()
    api.stop_daemon()
    with pytest.raises(PcscServiceError):
        await reader.list_readers()
    api.start_daemon()
    assert await reader.list_readers() == [R0, R1]
    session = await reader.connect(R0)
    assert (await session.transmit(bytes.fromhex("00B2010C03"))).data == b"abc"


async def test_stale_context_after_restart_is_replaced(api: FakeScard, reader: PcscReader) -> None:
    """A context from before a pcscd restart (SCARD_E_INVALID_HANDLE) is replaced transparently."""
    assert await reader.list_readers() == [R0, R1]
    before = api.established
    api.stop_daemon()
    api.start_daemon()
    assert await reader.list_readers() == [R0, R1]
    assert api.established == before + 1


async def test_wait_for_card(api: FakeScard, reader: PcscReader) -> None:
    """wait_for_card returns the reader a card arrives in; it times out with ReaderTimeoutError."""
    with pytest.raises(ReaderTimeoutError):
        await reader.wait_for_card(timeout=0.05)
    waiter = asyncio.create_task(reader.wait_for_card(R1, timeout=5))
    await asyncio.sleep(0.05)
    api.insert(R1, _echo_card())
    assert await waiter == R1
    with pytest.raises(NoReaderError):
        await reader.wait_for_card("Nope 00 00", timeout=0.1)


async def test_wait_for_card_survives_a_pcscd_restart(api: FakeScard, reader: PcscReader) -> None:
    """A wait in progress when pcscd restarts keeps going and sees the card afterwards."""
    waiter = asyncio.create_task(reader.wait_for_card(timeout=5))
    await asyncio.sleep(0.05)
    api.stop_daemon()
    await asyncio.sleep(0.05)
    api.start_daemon()
    api.insert(R0, _echo_card())
    assert await waiter == R0


async def test_events_insert_remove(api: FakeScard, reader: PcscReader) -> None:
    """The event stream starts with what is there, then reports inserts and removals."""
    api.insert(R0, _echo_card())
    events = reader.events()
    first = await _next(events, 3)
    assert [(e.kind, e.reader) for e in first] == [
        (CardEventKind.READER_ADDED, R0),
        (CardEventKind.INSERTED, R0),
        (CardEventKind.READER_ADDED, R1),
    ]
    assert first[1].atr == ATR
    api.remove(R0)
    assert [(e.kind, e.reader) for e in await _next(events, 1)] == [(CardEventKind.REMOVED, R0)]
    api.insert(R1, _echo_card())
    assert [(e.kind, e.reader) for e in await _next(events, 1)] == [(CardEventKind.INSERTED, R1)]
    await events.aclose()


async def test_events_reader_unplug_and_replug(api: FakeScard, reader: PcscReader) -> None:
    """Unplugging a reader with a card: REMOVED, READER_REMOVED; replugging: READER_ADDED."""
    api.insert(R0, _echo_card())
    events = reader.events()
    await _next(events, 3)
    api.unplug(R0)
    assert [e.kind for e in await _next(events, 2)] == [
        CardEventKind.REMOVED,
        CardEventKind.READER_REMOVED,
    ]
    api.plug(R0)
    assert [(e.kind, e.reader) for e in await _next(events, 1)] == [
        (CardEventKind.READER_ADDED, R0)
    ]
    await events.aclose()


async def test_events_survive_a_pcscd_restart(api: FakeScard, reader: PcscReader) -> None:
    """pcscd stopping removes every reader; when it restarts the readers come back."""
    api.insert(R0, _echo_card())
    events = reader.events()
    await _next(events, 3)
    api.stop_daemon()
    gone = await _next(events, 3)
    assert {(e.kind, e.reader) for e in gone} == {
        (CardEventKind.REMOVED, R0),
        (CardEventKind.READER_REMOVED, R0),
        (CardEventKind.READER_REMOVED, R1),
    }
    api.start_daemon()
    back = await _next(events, 3)
    assert {(e.kind, e.reader) for e in back} == {
        (CardEventKind.READER_ADDED, R0),
        (CardEventKind.INSERTED, R0),
        (CardEventKind.READER_ADDED, R1),
    }
    await events.aclose()


async def test_events_see_a_swapped_card(api: FakeScard, reader: PcscReader) -> None:
    """A card swapped for another between two polls is reported as REMOVED then INSERTED."""
    api.insert(R0, _echo_card())
    events = reader.events()
    await _next(events, 3)
    api.world.card_events[R0] += 2  # removed and re-inserted faster than one poll
    api._notify()
    assert [e.kind for e in await _next(events, 2)] == [
        CardEventKind.REMOVED,
        CardEventKind.INSERTED,
    ]
    await events.aclose()


async def test_reader_list_race_gives_no_spurious_events(api: FakeScard) -> None:
    """SCARD_E_UNKNOWN_READER from a wait (list changed under it) is not read as 'all gone'."""
    from tests.drivers.fake_scard import E_UNKNOWN_READER

    class Racy(FakeScard):
        races = 0

        def SCardGetStatusChange(self, context, timeout_ms, states):  # type: ignore[no-untyped-def]
            if self.races == 1:
                self.races += 1
                return E_UNKNOWN_READER, []
            self.races += 1
            return super().SCardGetStatusChange(context, timeout_ms, states)

    racy = Racy(api.world)
    reader = PcscReader(api=racy, poll_ms=20, backoff=(0.01, 0.05))
    events = reader.events()
    assert [e.kind for e in await _next(events, 2)] == [CardEventKind.READER_ADDED] * 2
    racy.insert(R0, _echo_card())
    assert [(e.kind, e.reader) for e in await _next(events, 1)] == [(CardEventKind.INSERTED, R0)]
    assert racy.races >= 3
    await events.aclose()
