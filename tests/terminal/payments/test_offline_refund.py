"""A refund of an offline approval reaches the acquirer once the approval's advice did.

The refund names the advice's acquirer reference (STAN and DE 7 of the 0220, its RRN): the
outbox transport hands the accepted advice to the terminal, which records it on the payment,
and the next settlement sends the waiting refund. Drained by the real outbox worker to the
ISO 8583 acquirer simulator on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_sync.connectors import (
    Operation,
    Outcome,
    PspOutboxTransport,
    PspReference,
    PspResponse,
)
from edge_sync.pop_fake import InMemoryPopBackend
from edge_sync.pop_outbox import PopOutboxTransport
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.payments import ledger
from terminal.payments.advice import (
    advice_card_source,
    advice_id,
    advice_reference_recorder,
    record_advice_reference,
)
from terminal.payments.recovery import settle
from terminal.payments.refunds import refund_payment
from terminal.store.outbox import SqliteOutbox
from tests.terminal.payments.harness import Counter, counter, mad, sale

pytestmark = pytest.mark.network


async def _drain(c: Counter, *, pop: bool = False) -> None:
    """One sync as ``etika sync run`` does it: the PSP (advices, refunds' originals) and,
    when asked, the PoP back end."""
    routes: dict[str, Transport] = {"psp:cih": PspOutboxTransport(
        c.manager.router, "cih", advice_card=advice_card_source(c.store, lambda: c.manager.card_keys),
        on_accepted=advice_reference_recorder(c.store))}
    if pop:
        routes["pop"] = PopOutboxTransport(c.pop)
    worker = OutboxWorker(SqliteOutbox(c.store), routes, SoftwareSigner.generate(),
                          WorkerSettings(terminal_id=c.profile.terminal.terminal_id))
    try:
        await worker.drain()
    finally:
        worker.close()


async def test_refund_of_offline_approval_goes_out_after_its_advice(data_dir: Path) -> None:
    """Offline sale → refund waits (pending_sync) → the acquirer comes back and accepts the
    advice → the advice's reference is on the payment and the settlement sends the refund,
    which the acquirer books against the advice."""
    async with counter(data_dir, host_down=True) as c:
        out = await c.manager.sale(sale("25.00"), c.reader)
        assert out.approved and out.offline and out.state == "completed", out.reason
        pid = str(out.payment_id)
        waiting = await refund_payment(c.manager, pid, mad("10.00"))
        assert waiting.state == "pending_sync"
        await c.host_up()
        await _drain(c)
        assert ("psp:cih", "advice", "delivered") in c.outbox(pid)
        detail = ledger.payment_detail(c.store, pid)
        assert detail is not None
        reference = detail["psp_reference"]
        assert reference["mti"] == "0220" and reference["stan"] and reference["rrn"]
        assert [a["status"] for a in detail["attempts"]][-1] == "approved"
        assert "advice_accepted" in [j["action"] for j in detail["journal"]]
        report = await settle(c.manager)
        assert report.refunds_sent == [str(waiting.refund_id)]
        refund = c.store.connection.execute(
            "SELECT status FROM refunds WHERE id = ?", (str(waiting.refund_id),)).fetchone()
        assert refund[0] == "approved"
        key = str(advice_id(pid))  # the advice is booked on its own key
        booked = c.acquirer.ledger[key]
        assert (booked.kind.value, booked.captured, booked.refunded) == ("advice", 2500, 1000)
        assert c.acquirer.ledger[str(waiting.refund_id)].original_key == key


async def test_advice_answered_twice_records_its_reference_once(data_dir: Path) -> None:
    """The advice's reference is written once: the PSP's replayed answer to a repeat
    changes nothing (no second attempt row, no second journal entry)."""
    async with counter(data_dir, host_down=True) as c:
        out = await c.manager.sale(sale("25.00"), c.reader)
        pid = str(out.payment_id)
        await c.host_up()
        await _drain(c)
        detail = ledger.payment_detail(c.store, pid)
        assert detail is not None and detail["psp_reference"]["mti"] == "0220"
        counts = "SELECT (SELECT count(*) FROM audit_journal), (SELECT count(*) FROM " \
                 "payment_attempts)"
        before = tuple(c.store.connection.execute(counts).fetchone())
        replay = PspResponse(Outcome.APPROVE, "00", "APPROVED", Operation.ADVICE,
                             PspReference.from_dict(detail["psp_reference"]), replayed=True)
        assert record_advice_reference(c.store, pid, replay) is False
        assert tuple(c.store.connection.execute(counts).fetchone()) == before


async def test_refund_of_offline_pop_deferred_payment_waits_for_both(data_dir: Path) -> None:
    """An offline approval whose PoP record is deferred: its refund waits for the advice
    and for the PoP back end to confirm the sale's record, then goes out once."""
    async with counter(data_dir, host_down=True,
                       pop=InMemoryPopBackend(unavailable=1)) as c:
        out = await c.manager.sale(sale("25.00"), c.reader)
        assert out.state == "pop_deferred" and out.offline, out.reason
        pid = str(out.payment_id)
        waiting = await refund_payment(c.manager, pid, mad("25.00"))
        assert waiting.state == "pending_sync"
        await c.host_up()
        await _drain(c)  # the advice only: the PoP record is still on its way
        assert (await settle(c.manager)).refunds_sent == []
        assert c.acquirer.ledger[str(advice_id(pid))].refunded == 0
        await _drain(c, pop=True)
        report = await settle(c.manager)
        assert report.completed == [pid]
        assert report.refunds_sent == [str(waiting.refund_id)]
        assert c.acquirer.ledger[str(advice_id(pid))].refunded == 2500


async def test_refund_of_pop_deferred_payment_goes_out_once_pop_confirms(
        data_dir: Path) -> None:
    """An online sale whose PoP record was deferred: its refund waits, and goes out at the
    settlement that sees the PoP record confirmed (issue #11 item 3)."""
    async with counter(data_dir, pop=InMemoryPopBackend(unavailable=1)) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "pop_deferred" and not out.offline, out.reason
        pid = str(out.payment_id)
        waiting = await refund_payment(c.manager, pid, mad("100.00"))
        assert waiting.state == "pending_sync"
        assert (await settle(c.manager)).refunds_sent == []  # the record is still queued
        assert c.acquirer.ledger[pid].refunded == 0
        await _drain(c, pop=True)
        report = await settle(c.manager)
        assert (report.completed, report.refunds_sent) == ([pid], [str(waiting.refund_id)])
        assert c.acquirer.ledger[pid].refunded == 10000
