"""The reader driver against a real pcscd + vsmartcard-vpcd, with the simulated card on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.base import CardEvent, CardEventKind
from drivers.pcsc import PcscReader
from drivers.reader_errors import CardRemovedError, NoCardError, ReaderTimeoutError
from simulators.card import issuer
from terminal.emv import dol, tlv

pytestmark = pytest.mark.hardware

R0, R1 = "Virtual PCD 00 00", "Virtual PCD 00 01"
PSE = bytes.fromhex("00A404000E315041592E5359532E444446303100")
PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
TERMINAL = {
    0x9F02: bytes.fromhex("000000002500"),
    0x9F03: bytes(6),
    0x9F1A: bytes.fromhex("0504"),
    0x95: bytes(5),
    0x5F2A: bytes.fromhex("0504"),
    0x9A: bytes.fromhex("261122"),
    0x9C: b"\x00",
    0x9F37: bytes.fromhex("CAFEBABE"),
    0x9F35: b"\x22",
    0x9F34: bytes.fromhex("1F0302"),
    0x9F66: bytes.fromhex("36000000"),
}


def _select(aid: str) -> bytes:
    raw = bytes.fromhex(aid)
    return bytes([0x00, 0xA4, 0x04, 0x00, len(raw)]) + raw + b"\x00"


async def _until(events: AsyncIterator[CardEvent], kind: CardEventKind, reader: str) -> CardEvent:
    async def scan() -> CardEvent:
        async for event in events:
            if event.kind is kind and event.reader == reader:
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(scan(), 20)


async def test_readers_listed_and_atr(vpcd_card, pcsc_reader: PcscReader) -> None:
    """The vpcd readers are listed; a card on 00 00 powers on with the profile's ATR."""
    card = vpcd_card("visa-credit")
    assert {R0, R1} <= set(await pcsc_reader.list_readers())
    assert await pcsc_reader.wait_for_card(R0, timeout=10) == R0
    session = await pcsc_reader.connect(R0)
    assert session.atr == card.card.atr
    await session.close()


async def test_empty_reader(pcscd, pcsc_reader: PcscReader) -> None:
    """Connecting to an empty vpcd reader raises NoCardError; waiting times out cleanly."""
    with pytest.raises(NoCardError):
        await pcsc_reader.connect(R1)
    with pytest.raises(ReaderTimeoutError):
        await pcsc_reader.wait_for_card(R1, timeout=0.3)


async def test_select_pse_and_ppse(vpcd_card, pcsc_reader: PcscReader) -> None:
    """SELECT PSE over contact (00 00) and PPSE over contactless (00 01) answer with FCIs."""
    vpcd_card("domestic-visa")
    vpcd_card("visa-credit", port=35964, interface="contactless")
    contact = await pcsc_reader.connect(await pcsc_reader.wait_for_card(R0, timeout=10))
    response = await contact.transmit(PSE)
    assert response.ok and tlv.decode(response.data)[0].tag == 0x6F
    record = await contact.transmit(bytes.fromhex("00B2010C00"))
    aids = [e.find(0x4F).value for e in tlv.decode(record.data)[0].children]  # type: ignore[union-attr]
    assert aids == [bytes.fromhex("D5040000011010"), bytes.fromhex("A0000000031010")]
    await contact.close()
    contactless = await pcsc_reader.connect(await pcsc_reader.wait_for_card(R1, timeout=10))
    response = await contactless.transmit(PPSE)
    assert response.ok and bytes.fromhex("A0000000031010") in response.data
    await contactless.close()


async def test_full_generate_ac_exchange_t0(vpcd_card, pcsc_reader: PcscReader) -> None:
    """A T=0-style card through pcscd: select, GPO, records, GENERATE AC; the ARQC verifies."""
    thread = vpcd_card("cb")
    session = await pcsc_reader.connect(await pcsc_reader.wait_for_card(R0, timeout=10))
    assert (await session.transmit(PSE)).sw == 0x6A82
    assert (await session.transmit(_select("A0000000421010"))).ok
    gpo = await session.transmit(bytes.fromhex("80A8000002830000"))
    aip, afl = gpo.data[2:4], gpo.data[4:]
    values: dict[int, bytes] = {}
    for i in range(0, len(afl), 4):
        for number in range(afl[i + 1], afl[i + 2] + 1):
            record = await session.transmit(bytes([0, 0xB2, number, afl[i] | 4, 0]))
            assert record.ok
            values |= tlv.flatten(tlv.decode(record.data))
    cdol1 = dol.build_dol(values[0x8C], TERMINAL)
    response = await session.transmit(bytes([0x80, 0xAE, 0x80, 0, len(cdol1)]) + cdol1 + b"\x00")
    assert response.ok
    body = tlv.decode(response.data)[0].value
    cid, atc, arqc, iad = body[0], body[1:3], body[3:11], body[11:]
    assert cid == 0x80
    app = thread.card.apps[0].personalised.app
    tags = {t: TERMINAL[t] for t in (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)}
    tags |= {0x82: aip, 0x9F36: atc, 0x9F10: iad}
    issuer.verify_arqc(issuer.issuer_master_keys("cb"), app.pan, app.psn, tags, arqc)
    imk = issuer.issuer_master_keys("cb")
    tag_91 = issuer.arpc_method_1(imk, app.pan, app.psn, atc, arqc, b"00")
    assert (await session.transmit(bytes([0, 0x82, 0, 0, 10]) + tag_91)).ok
    cdol2 = dol.build_dol(values[0x8D], TERMINAL | {0x8A: b"00"})
    second = await session.transmit(bytes([0x80, 0xAE, 0x40, 0, len(cdol2)]) + cdol2 + b"\x00")
    assert second.ok and tlv.decode(second.data)[0].value[0] == 0x40
    await session.close()


async def test_card_removed_mid_transaction(vpcd_card, pcsc_reader: PcscReader) -> None:
    """The virtual card leaving during a session gives CardRemovedError and a REMOVED event."""
    thread = vpcd_card("visa-credit")
    events = pcsc_reader.events()
    await _until(events, CardEventKind.INSERTED, R0)
    session = await pcsc_reader.connect(R0)
    assert (await session.transmit(PSE)).ok
    thread.stop()
    await _until(events, CardEventKind.REMOVED, R0)
    with pytest.raises(CardRemovedError):
        await session.transmit(_select("A0000000031010"))
    await session.close()
    await events.aclose()


@pytest.mark.slow
async def test_pcscd_restart_recovery(pcscd, vpcd_card, pcsc_reader: PcscReader) -> None:
    """After pcscd restarts, events report the readers gone and back, and the card works again."""
    if not pcscd.owned:
        pytest.skip("pcscd was started by someone else; not ours to restart")
    vpcd_card("mastercard-debit")
    events = pcsc_reader.events()
    await _until(events, CardEventKind.INSERTED, R0)
    await asyncio.to_thread(pcscd.restart)
    await _until(events, CardEventKind.READER_REMOVED, R0)
    await _until(events, CardEventKind.READER_ADDED, R0)
    await _until(events, CardEventKind.INSERTED, R0)
    session = await pcsc_reader.connect(R0)
    assert (await session.transmit(_select("A0000000041010"))).ok
    await session.close()
    await events.aclose()


async def test_etika_sim_card_command(pcscd, pcsc_reader: PcscReader) -> None:
    """`etika sim card --profile` puts the card on vpcd; SIGTERM removes it and exits 0."""
    import os
    import signal
    import subprocess
    import sys

    from tests.fixtures.pcsc import _wait_empty

    proc = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "sim", "card", "--profile", "domestic-visa"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert await pcsc_reader.wait_for_card(R0, timeout=20) == R0
        session = await pcsc_reader.connect(R0)
        assert (await session.transmit(_select("D5040000011010"))).ok
        await session.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert b"domestic-visa" in out and b"Virtual PCD 00 00" in out
    await asyncio.to_thread(_wait_empty, R0)


async def test_second_sim_card_on_a_busy_port_fails_naming_it(
    vpcd_card, pcsc_reader: PcscReader
) -> None:
    """#16.9: a second `etika sim card` on a vpcd port that already has a card fails (exit 2)
    naming the port, instead of printing that it is ready and never being seen."""
    import subprocess
    import sys

    vpcd_card("visa-credit")
    assert await pcsc_reader.wait_for_card(R0, timeout=20) == R0
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "terminal.cli.main", "sim", "card", "--profile", "cb",
         "--port", "35963"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "35963" in done.stderr and "already has a card" in done.stderr
    assert "Ctrl-C removes it" not in done.stdout
