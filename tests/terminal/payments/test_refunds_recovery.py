"""Refunds, voids and recovery against the acquirer simulator's ledger."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edge_sync.pop import PopRecord
from terminal.payments.model import InvalidAmountError, RefundRefusedError, UnknownPaymentError
from terminal.payments.recovery import recover
from terminal.payments.refunds import refund_payment, void_payment
from terminal.store import StateChange
from tests.terminal.payments.harness import counter, mad, sale

pytestmark = pytest.mark.network


async def test_partial_refunds_up_to_the_captured_amount(data_dir: Path) -> None:
    """Two partial refunds may add up to the captured amount, one cent more is refused, and
    each carries its PoP counterpart record; the acquirer books them."""
    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        pid = str(out.payment_id)
        first = await refund_payment(c.manager, pid, mad("400.00"))
        assert (first.state, first.kind) == ("approved", "refund")
        with pytest.raises(RefundRefusedError, match="more than is left"):
            await refund_payment(c.manager, pid, mad("200.01"))
        second = await refund_payment(c.manager, pid, mad("200.00"))
        assert second.state == "approved"
        with pytest.raises(InvalidAmountError, match="nothing is left"):
            await refund_payment(c.manager, pid)
        payloads = [json.loads(r[0]) for r in c.store.connection.execute(
            "SELECT payload FROM outbox WHERE kind = 'pop_record' AND ref_id = ?", (pid,))]
        sale_record = c.store.connection.execute(
            "SELECT id FROM pop_transactions WHERE payment_id = ?", (pid,)).fetchone()[0]
        assert [p["kind"] for p in payloads] == ["refund", "refund"]
        assert {p["refers_to"] for p in payloads} == {sale_record}  # the sale's PoP record
        entry = c.acquirer.ledger[pid]
        assert entry.refunded == 60000


async def test_refund_and_void_pop_records_refer_to_the_sale_record(data_dir: Path) -> None:
    """A refund's and a void's PoP records refer to the sale's PoP record id (the back end
    knows sales by it; the payment id is refused as an unknown sale), and the in-memory PoP
    back end accepts them."""
    async with counter(data_dir) as c:
        refunded = await c.manager.sale(sale("600.00"), c.reader)
        voided = await c.manager.sale(sale("300.00"), c.reader)
        await refund_payment(c.manager, str(refunded.payment_id), mad("100.00"))
        await void_payment(c.manager, str(voided.payment_id))
        for payment in (refunded, voided):
            sale_record = c.store.connection.execute(
                "SELECT id FROM pop_transactions WHERE payment_id = ?",
                (str(payment.payment_id),)).fetchone()[0]
            payloads = [json.loads(p) for (p,) in c.store.connection.execute(
                "SELECT payload FROM outbox WHERE kind = 'pop_record' AND ref_id = ?",
                (str(payment.payment_id),))]
            follow_ups = [p for p in payloads if p.get("kind") != "sale"]
            assert [p["refers_to"] for p in follow_ups] == [sale_record]
            for payload in follow_ups:
                receipt = await c.pop.submit(PopRecord.from_payload(payload))
                assert receipt.status != "rejected", receipt.reason


async def test_refund_of_zero_or_less_is_refused(data_dir: Path) -> None:
    """A refund of zero is refused with a clear message; a negative amount cannot even be
    typed (the cashier's amount parser refuses it)."""
    from terminal.money import MoneyError

    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        with pytest.raises(InvalidAmountError, match="above zero"):
            await refund_payment(c.manager, str(out.payment_id), mad("0.00"))
    with pytest.raises(MoneyError):
        mad("-5.00")


async def test_refund_of_declined_or_unknown_payment_is_refused(data_dir: Path) -> None:
    """Only approved payments are refunded; an unknown id names the command that lists ids."""
    async with counter(data_dir, faults="decline=05") as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        with pytest.raises(RefundRefusedError, match="financial_declined"):
            await refund_payment(c.manager, str(out.payment_id))
        with pytest.raises(UnknownPaymentError, match="etika tx list"):
            await refund_payment(c.manager, str(uuid.uuid4()))


async def test_void_reverses_before_end_of_day(data_dir: Path) -> None:
    """A void reverses the authorisation at the acquirer and the payment becomes voided; a
    second void is refused."""
    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        result = await void_payment(c.manager, str(out.payment_id))
        assert (result.kind, result.state) == ("void", "approved")
        assert c.state(out.payment_id) == "voided"
        assert c.charges(out.payment_id) == 0
        with pytest.raises(RefundRefusedError, match="voided"):
            await void_payment(c.manager, str(out.payment_id))


async def test_void_after_end_of_day_is_refused(data_dir: Path) -> None:
    """Once the day's totals went to the platform, a void is refused: refund instead."""
    from terminal.eod import report_end_of_day

    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        day = c.manager.clock().date()
        report_end_of_day(c.store, c.profile.terminal.terminal_id, day)
        with pytest.raises(RefundRefusedError, match="refund it instead"):
            await void_payment(c.manager, str(out.payment_id))


async def test_refund_of_pop_deferred_payment_waits(data_dir: Path) -> None:
    """A refund of a payment whose PoP record is still deferred waits (pending_sync)."""
    from edge_sync.pop_fake import InMemoryPopBackend

    async with counter(data_dir, pop=InMemoryPopBackend(unavailable=1)) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "pop_deferred"
        result = await refund_payment(c.manager, str(out.payment_id), mad("10.00"))
        assert result.state == "pending_sync"
        assert c.acquirer.ledger[str(out.payment_id)].refunded == 0


async def test_recovery_cancels_and_reverses_what_a_crash_left(data_dir: Path) -> None:
    """A payment left 'authorising' (the process died mid-sale) is cancelled with a reversal
    queued for every PSP it could have reached; a second run changes nothing."""
    async with counter(data_dir) as c:
        pid = str(uuid.uuid4())
        c.store.record(StateChange("payment", pid, "created",
                                   fields={"amount_minor": 60000, "currency": "MAD"}))
        c.store.record(StateChange("payment", pid, "authorising",
                                   fields={"route_connectors": '["cih"]'}))
        first = await recover(c.manager)
        assert first.cancelled == [pid]
        assert c.state(pid) == "cancelled"
        assert ("psp:cih", "reversal", "pending") in c.outbox(pid)
        journal_before = c.store.connection.execute(
            "SELECT count(*) FROM audit_journal").fetchone()[0]
        second = await recover(c.manager)
        assert second.changed == 0
        assert c.store.connection.execute(
            "SELECT count(*) FROM audit_journal").fetchone()[0] == journal_before
