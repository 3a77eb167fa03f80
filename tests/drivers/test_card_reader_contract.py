"""The CardReader/CardSession rules, checked on the fakes and on pyscard through pcscd.

Each test runs against three readers behind :class:`drivers.base.CardReader`:

* ``scripted``: :class:`drivers.scripted.ScriptedReader`, the fake that ships with the driver;
* ``simulated``: :class:`simulators.card.reader.SimulatedCardReader`, the simulated card in
  process;
* ``pcsc``: :class:`drivers.pcsc.PcscReader` on the real pcscd with vsmartcard-vpcd, the
  simulated card connected over the vpcd socket (marker ``hardware``).

Each harness starts with its reader empty and can insert and remove the card. What the real
stack cannot do in CI is not asserted here: a vpcd reader cannot be unplugged (pcscd loads
it from ``/etc/reader.conf.d`` for good), so ``READER_REMOVED`` and ``ReaderGoneError`` are
pinned only on the fakes and on the fake pcscd (``tests/drivers/test_pcsc_reader.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from drivers.base import CardEvent, CardEventKind, CardReader, ResponseApdu
from drivers.reader_errors import CardRemovedError, NoCardError, ReaderTimeoutError
from drivers.scripted import ScriptedReader
from tests.fixtures.pcsc import PCSCD_GROUP, VPCD_READERS

#: SELECT 2PAY.SYS.DDF01 (EMV Contactless Book B §3.3.2; EMV 4.4 Book 1 §12.3.2).
PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
VISA_AID = bytes.fromhex("A0000000031010")
#: The FCI a scripted card answers PPSE with: 6F(84 name, A5(BF0C(61(4F AID, 87 priority)))).
SCRIPTED_FCI = bytes.fromhex(
    "6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101"
)
EVENT_WAIT_S = 20.0  # generous: pcscd polls the vpcd socket


@dataclass
class Harness:
    """A reader, the name of the reader the card goes into, and the hands that move it."""

    reader: CardReader
    name: str
    insert: Callable[[], None]
    remove: Callable[[], None]


class _PpseScript(ScriptedReader):
    """A scripted card that answers every command with the PPSE FCI (one card, one answer)."""

    def respond(self, command: bytes) -> ResponseApdu:
        self.sent.append(command)
        return ResponseApdu(SCRIPTED_FCI, 0x90, 0x00)


# The pcsc harness asks for pcscd at run time: its tests join pcscd's xdist group themselves.
@pytest.fixture(params=["scripted", "simulated",
                        pytest.param("pcsc", marks=[pytest.mark.hardware,
                                                    pytest.mark.xdist_group(PCSCD_GROUP)])])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "scripted":
        scripted = _PpseScript(card_present=False)
        yield Harness(scripted, scripted.name, scripted.insert, scripted.remove)
        return
    from simulators.card import EmvCard, Interface, get_profile
    from simulators.card.reader import SimulatedCardReader

    if request.param == "simulated":
        simulated = SimulatedCardReader()
        card = EmvCard(get_profile("visa-credit"), Interface.CONTACTLESS)
        yield Harness(simulated, simulated.name, lambda: simulated.insert_card(card),
                      simulated.remove_card)
        return
    make_card = request.getfixturevalue("vpcd_card")
    reader: CardReader = request.getfixturevalue("pcsc_reader")
    threads: list[object] = []

    def insert() -> None:
        threads.append(make_card("visa-credit", interface="contactless"))

    def remove() -> None:
        threads.pop().stop()  # type: ignore[attr-defined]

    yield Harness(reader, VPCD_READERS[0], insert, remove)


async def _until(events: AsyncIterator[CardEvent], kind: CardEventKind, reader: str) -> CardEvent:
    async def scan() -> CardEvent:
        async for event in events:
            if event.kind is kind and event.reader == reader:
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(scan(), EVENT_WAIT_S)


def test_implements_the_protocol(harness: Harness) -> None:
    """Every reader satisfies drivers.base.CardReader."""
    assert isinstance(harness.reader, CardReader)


async def test_lists_the_reader(harness: Harness) -> None:
    """list_readers() names the reader the card goes into, empty or not."""
    assert harness.name in await harness.reader.list_readers()


async def test_empty_reader_times_out_and_refuses_connect(harness: Harness) -> None:
    """With no card, wait_for_card raises ReaderTimeoutError and connect NoCardError."""
    with pytest.raises(ReaderTimeoutError) as waited:
        await harness.reader.wait_for_card(harness.name, timeout=0.3)
    assert waited.value.reader == harness.name
    with pytest.raises(NoCardError):
        await harness.reader.connect(harness.name)


async def test_card_present_connects_with_an_atr_and_answers_ppse(harness: Harness) -> None:
    """wait_for_card returns the reader holding the card; the session has an ATR and SELECT
    PPSE answers with a ResponseApdu carrying the FCI and 9000."""
    harness.insert()
    assert await harness.reader.wait_for_card(harness.name, timeout=EVENT_WAIT_S) == harness.name
    session = await harness.reader.connect(harness.name)
    assert session.reader == harness.name
    assert session.atr[:1] in (b"\x3b", b"\x3f") and len(session.atr) >= 2  # ISO 7816-3 TS
    response = await session.transmit(PPSE)
    await session.close()
    assert isinstance(response, ResponseApdu)
    assert (response.sw1, response.sw2, response.sw) == (0x90, 0x00, 0x9000)
    assert response.data[:1] == b"\x6f" and VISA_AID in response.data


async def test_closed_session_refuses_use(harness: Harness) -> None:
    """A card session is single use: after close() transmit raises; a second close is a no-op."""
    harness.insert()
    await harness.reader.wait_for_card(harness.name, timeout=EVENT_WAIT_S)
    session = await harness.reader.connect(harness.name)
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        await session.transmit(PPSE)
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        await session.transmit(PPSE)


async def test_events_report_insertion_and_removal_and_the_session_dies(
    harness: Harness,
) -> None:
    """events() reports INSERTED (with the ATR) and REMOVED; after removal the open session's
    next transmit raises CardRemovedError naming the reader."""
    events = harness.reader.events()
    try:
        harness.insert()
        inserted = await _until(events, CardEventKind.INSERTED, harness.name)
        session = await harness.reader.connect(harness.name)
        assert inserted.atr == session.atr
        assert (await session.transmit(PPSE)).ok
        harness.remove()
        await _until(events, CardEventKind.REMOVED, harness.name)
        with pytest.raises(CardRemovedError) as removed:
            await session.transmit(PPSE)
        assert removed.value.reader == harness.name
        await session.close()
        with pytest.raises(ReaderTimeoutError):
            await harness.reader.wait_for_card(harness.name, timeout=0.3)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
