"""The counter's reader probe: one contract on the scripted probe and on pcscd + vpcd, and the
PC/SC probe's answers when pcscd or the reader is missing (on the fake pcscd)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from drivers.pcsc import NO_PCSCD_MESSAGE, PcscReader
from simulators.card.reader import in_process_reader
from terminal.services.cards import (
    InjectedReaderProbe,
    PcscReaderProbe,
    ReaderProbe,
    ReaderState,
    ReaderStatus,
    reader_probe_for,
)
from terminal.services.fake import ScriptedReaderProbe
from tests.drivers.fake_scard import FakeCard, FakePcscd, FakeScard
from tests.fixtures.pcsc import PCSCD_GROUP

CONTACT, CONTACTLESS = "Virtual PCD 00 00", "Virtual PCD 00 01"
PROBE_WAIT_S = 20.0  # generous: pcscd polls the vpcd socket


@dataclass
class ProbeHarness:
    probe: ReaderProbe
    insert: Callable[[], None]


# The pcsc probe asks for pcscd at run time: its tests join pcscd's xdist group themselves.
@pytest.fixture(params=["scripted",
                        pytest.param("pcsc", marks=[pytest.mark.hardware,
                                                    pytest.mark.xdist_group(PCSCD_GROUP)])])
def harness(request: pytest.FixtureRequest) -> Iterator[ProbeHarness]:
    if request.param == "scripted":
        scripted = ScriptedReaderProbe(CONTACT, CONTACTLESS)
        yield ProbeHarness(scripted, lambda: scripted.insert(CONTACT))
        return
    make_card = request.getfixturevalue("vpcd_card")
    yield ProbeHarness(PcscReaderProbe(), lambda: make_card("visa-credit"))


def _by_reader(statuses: list[ReaderStatus]) -> dict[str | None, ReaderState]:
    return {s.reader: s.state for s in statuses if s.reader in (CONTACT, CONTACTLESS)}


async def _until(probe: ReaderProbe, wanted: dict[str | None, ReaderState]
                 ) -> dict[str | None, ReaderState]:
    """Probe until the vpcd readers show ``wanted`` (pcscd sees a card within its poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROBE_WAIT_S
    seen = _by_reader(await probe.probe())
    while seen != wanted and loop.time() < deadline:
        await asyncio.sleep(0.1)
        seen = _by_reader(await probe.probe())
    return seen


async def test_empty_readers_wait_and_a_card_makes_its_reader_card_in(
        harness: ProbeHarness) -> None:
    """Both readers empty: waiting; a card in the contact reader: card in there only."""
    waiting = {CONTACT: ReaderState.WAITING, CONTACTLESS: ReaderState.WAITING}
    assert await _until(harness.probe, waiting) == waiting
    harness.insert()
    card_in = {CONTACT: ReaderState.CARD_IN, CONTACTLESS: ReaderState.WAITING}
    assert await _until(harness.probe, card_in) == card_in


def _fake_pcsc(world: FakePcscd) -> tuple[FakeScard, PcscReaderProbe]:
    api = FakeScard(world)
    return api, PcscReaderProbe(lambda: PcscReader(api=api))


async def test_pcsc_probe_without_pcscd_says_how_to_start_it() -> None:
    """pcscd not running: one "no reader" status whose detail says how to start pcscd."""
    _api, probe = _fake_pcsc(FakePcscd(running=False))
    assert await probe.probe() == [ReaderStatus(ReaderState.NO_READER, None, NO_PCSCD_MESSAGE)]


async def test_pcsc_probe_with_no_reader_attached_says_so() -> None:
    """pcscd runs with no reader plugged in: "no reader", telling the cashier to plug one."""
    _api, probe = _fake_pcsc(FakePcscd())
    [status] = await probe.probe()
    assert status.state is ReaderState.NO_READER and status.reader is None
    assert "plug one in" in status.detail


async def test_pcsc_probe_follows_plugs_and_cards_and_leaves_no_context_open() -> None:
    """Readers plugged, a card in, then the reader unplugged: each probe says it, and
    every PC/SC context a probe opened is released."""
    api, probe = _fake_pcsc(FakePcscd())
    api.plug("Reader A")
    api.plug("Reader B")
    api.insert("Reader B", FakeCard(bytes.fromhex("3B8F8001"), lambda apdu: b"\x90\x00"))
    assert await probe.probe() == [ReaderStatus(ReaderState.WAITING, "Reader A"),
                                   ReaderStatus(ReaderState.CARD_IN, "Reader B")]
    api.unplug("Reader B")
    assert await probe.probe() == [ReaderStatus(ReaderState.WAITING, "Reader A")]
    assert api.established >= 2 and api._contexts == {}


async def test_the_probe_for_each_kind_of_reader() -> None:
    """No injected reader: pcscd's probe; a reader that probes itself (the demo's shelf):
    that reader; a simulated reader: its readers, shown waiting."""
    assert isinstance(reader_probe_for(None), PcscReaderProbe)
    scripted = ScriptedReaderProbe("shelf")
    assert reader_probe_for(scripted) is scripted  # type: ignore[arg-type]
    simulated = reader_probe_for(in_process_reader("visa-credit", "contact"))
    assert isinstance(simulated, InjectedReaderProbe)
    statuses = await simulated.probe()
    assert statuses and {s.state for s in statuses} == {ReaderState.WAITING}
