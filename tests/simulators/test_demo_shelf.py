"""The demo's in-process card shelf (used where pcscd cannot run): one card per sale, and
a reader probe that says when a card is in."""

from __future__ import annotations

import pytest

from drivers.reader_errors import ReaderTimeoutError
from simulators.demo.interactive import SHELF, ShelfReader
from terminal.services.cards import ReaderProbe, ReaderState, reader_probe_for


async def test_a_shelf_card_is_in_until_the_sale_closes_its_session() -> None:
    """Waiting; a card from the shelf: card in, readable; its session closed: waiting, and
    the next sale waits for another card from the shelf."""
    shelf = ShelfReader()
    assert isinstance(shelf, ReaderProbe) and reader_probe_for(shelf) is shelf
    assert [s.state for s in await shelf.probe()] == [ReaderState.WAITING]
    await shelf.present(SHELF[0])
    assert [s.state for s in await shelf.probe()] == [ReaderState.CARD_IN]
    name = await shelf.wait_for_card(timeout=1)
    session = await shelf.connect(name)
    assert (session.reader, session.atr[:1]) == (name, b"\x3b")  # a direct-convention ATR
    # SELECT 1PAY.SYS.DDF01 (EMV 4.4 Book 1 §12.3.2): the contact card's directory answers.
    answer = await session.transmit(bytes.fromhex("00A404000E315041592E5359532E444446303100"))
    assert answer.sw == 0x9000
    await session.close()
    assert [s.state for s in await shelf.probe()] == [ReaderState.WAITING]
    with pytest.raises(ReaderTimeoutError):
        await shelf.wait_for_card(timeout=0.01)
