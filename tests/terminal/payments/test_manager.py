"""The dual-transaction manager end to end: the in-process card, a real ISO 8583 acquirer
simulator on loopback, the store, a software key store, the in-memory PoP back end.

Each fallback of seed 001 §2.4 is one test; the acquirer's own ledger says whether the
customer ended up charged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_sync.pop_fake import InMemoryPopBackend
from terminal.payments.model import InvalidAmountError, PaymentEvent
from terminal.payments.recovery import settle
from tests.terminal.payments.harness import counter, mad, sale

pytestmark = pytest.mark.network


async def test_approved_online_with_pop_confirmed(data_dir: Path) -> None:
    """Issuer approves, PoP confirms: completed, one charge, token activation queued, the
    attempt and fraud check stored, receipts printable with the masked PAN only."""
    events: list[PaymentEvent] = []
    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("600.00"), c.reader, on_event=events.append)
        assert (out.state, out.approved, out.pop_status) == ("completed", True, "confirmed")
        assert c.charges(out.payment_id) == 1
        assert ("platform", "token_activation", "pending") in c.outbox(out.payment_id)
        attempts = c.store.connection.execute(
            "SELECT status, error_code FROM payment_attempts WHERE payment_id = ?",
            (str(out.payment_id),)).fetchall()
        assert [tuple(a) for a in attempts] == [("approved", "00")]
        fraud = c.store.connection.execute(
            "SELECT risk_level, decision FROM fraud_checks WHERE payment_id = ?",
            (str(out.payment_id),)).fetchone()
        assert tuple(fraud) == ("low", "approve")
    assert out.masked_pan.endswith("0010") and "4761739001010010" not in out.receipts["customer"]
    assert "0010" in out.receipts["customer"]
    assert [e.kind for e in events][:2] == ["waiting_card", "card_in"]
    assert events[-1].kind == "done"


async def test_pop_unreachable_defers_then_completes(data_dir: Path) -> None:
    """Fallback 2: approved while the PoP back end is down → pop_deferred with the record in
    the outbox; once the record is delivered and confirmed, settle completes the payment."""
    backend = InMemoryPopBackend(unavailable=1)
    async with counter(data_dir, pop=backend) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "pop_deferred" and out.approved
        assert ("pop", "pop_record", "pending") in c.outbox(out.payment_id)
        row = c.store.connection.execute(
            "SELECT message_id, payload FROM outbox WHERE kind = 'pop_record'").fetchone()
        from edge_sync.pop import PopRecord

        await backend.submit(PopRecord.from_payload(json.loads(row[1])))  # the worker's send
        c.store.connection.execute("UPDATE outbox SET state = 'delivered' WHERE message_id = ?",
                                   (row[0],))
        report = await settle(c.manager)
        assert report.completed == [str(out.payment_id)]
        assert c.state(out.payment_id) == "completed"
        assert ("platform", "token_activation", "pending") in c.outbox(out.payment_id)


async def test_pop_rejection_needs_reconciliation(data_dir: Path) -> None:
    """Fallback 4: the PSP approved and the PoP back end refused: needs_reconciliation and
    an alert to the platform; the charge stands for a person to decide."""
    async with counter(data_dir, pop=InMemoryPopBackend(reject=1)) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "needs_reconciliation"
        assert ("platform", "alert", "pending") in c.outbox(out.payment_id)


async def test_issuer_decline_cancels_the_pop_record(data_dir: Path) -> None:
    """A decline ends financial_declined with the issuer's reason in words; the PoP record
    that went in parallel is withdrawn through the outbox; nothing is charged."""
    async with counter(data_dir, faults="decline=51") as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "financial_declined" and not out.approved
        assert "51" in out.reason and "issuer" in out.reason
        assert ("pop", "pop_cancel", "pending") in c.outbox(out.payment_id)
        assert c.charges(out.payment_id) == 0


@pytest.mark.parametrize(
    ("amount",    "state",              "why"),
    [
        ("25.00",   "completed",          "offline"),
        ("1000.00", None,                 None),        # at the per-transaction limit
        ("1000.01", "financial_declined", "offline limit per transaction"),
    ],
)
async def test_host_down_offline_limits(data_dir: Path, amount: str, state: str | None,
                                        why: str | None) -> None:
    """Fallback 1: with the acquirer down the terminal approves on its own only within
    limits.toml (1000.00 MAD per transaction); past it, declined with the limit named."""
    async with counter(data_dir, host_down=True) as c:
        out = await c.manager.sale(sale(amount), c.reader)
        if state is None:  # at the bound: the card's own rules decide, never the limit
            assert "limit per transaction" not in out.reason
            return
        assert out.state == state and why is not None and why in out.reason
        if out.approved:
            assert out.offline
            assert ("psp:cih", "advice", "pending") in c.outbox(out.payment_id)


@pytest.mark.parametrize(
    ("max_count", "total",  "second_ok", "why"),
    [
        (50,          5000,     True,        None),                         # at the total
        (50,          4999,     False,       "would pass 49.99 MAD; sync first"),
        (1,           500000,   False,       "1 offline approvals are waiting to sync"),
    ],
)
async def test_cumulative_offline_limits(data_dir: Path, max_count: int, total: int,
                                         second_ok: bool, why: str | None) -> None:
    """The offline total per currency and the count of approvals whose advice is still
    queued: a second offline approval of 25.00 (one the simulated card approves offline) is
    allowed at the bound and declined just past it, with the limit named."""
    from terminal.profile import OfflineLimits

    limits = OfflineLimits(max_count=max_count, max_age_s=86400,
                           max_per_transaction={"MAD": 2500},
                           max_cumulative={"MAD": total})
    async with counter(data_dir, host_down=True, offline=limits) as c:
        first = await c.manager.sale(sale("25.00"), c.reader)
        second = await c.manager.sale(sale("25.00"), c.reader)
        assert first.approved and first.offline, first.reason
        assert second.approved is second_ok, second.reason
        if why is not None:
            assert why in second.reason


async def test_deadline_cancels_and_queues_the_reversal(data_dir: Path) -> None:
    """Fallback 3: the acquirer acts but answers after the deadline → cancelled, a reversal
    for it in the outbox (priority 10) and the PoP record withdrawn; the cashier is told."""
    async with counter(data_dir, faults="latency=3", deadline_ms=500,
                       connector_timeout_s=5) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "cancelled" and "deadline" in out.reason
        rows = c.outbox(out.payment_id)
        assert ("psp:cih", "reversal", "pending") in rows
        assert ("pop", "pop_cancel", "pending") in rows
        priority = c.store.connection.execute(
            "SELECT priority FROM outbox WHERE kind = 'reversal'").fetchone()[0]
        assert priority == 10


async def test_card_declines_after_issuer_approval(data_dir: Path) -> None:
    """The issuer approves but the card refuses its ARPC and answers AAC to GENERATE AC 2:
    the approval is reversed at once (reversed), the PoP record cancelled, nothing charged."""
    async with counter(data_dir, faults="bad-arpc=1") as c:
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "reversed" and not out.approved
        assert "GENERATE AC 2" in out.reason
        assert c.charges(out.payment_id) == 0
        journal = [r[0] for r in c.store.connection.execute(
            "SELECT to_state FROM audit_journal WHERE entity_id = ? ORDER BY id",
            (str(out.payment_id),))]
        assert journal[-2:] == ["reversal_pending", "reversed"]


async def test_contactless_online(data_dir: Path) -> None:
    """A tap above the contactless floor limit goes online and completes (no GENERATE AC 2)."""
    async with counter(data_dir, interface="contactless") as c:
        out = await c.manager.sale(sale("600.00", contactless=True), c.reader)
        assert out.state == "completed" and c.charges(out.payment_id) == 1


@pytest.mark.parametrize("amount", ["0.00", "-1.00"])
def test_zero_or_negative_sale_is_refused(amount: str) -> None:
    """A sale of zero or less is refused before any card is asked for."""
    from terminal.money import MoneyError

    with pytest.raises((InvalidAmountError, MoneyError)):
        sale(amount)


async def test_no_card_cancels_cleanly(data_dir: Path) -> None:
    """No card presented: the payment is cancelled with the reader's reason, nothing sent."""
    async with counter(data_dir) as c:
        c.reader.remove_card()
        out = await c.manager.sale(sale("600.00"), c.reader)
        assert out.state == "cancelled" and out.reason.startswith("cancelled")
        assert [r[1] for r in c.outbox(out.payment_id)] == ["transaction"]
        assert mad("600.00").minor == out.amount.minor


async def test_unanswered_then_reversed_is_cancelled_not_offline(data_dir: Path) -> None:
    """The acquirer acts but never answers; its reversal is confirmed at once: the sale is
    cancelled (the host was reachable, so no offline approval whose advice would book
    nothing under the reversed transaction's id), nothing is charged, no advice queued."""
    async with counter(data_dir, faults="timeout=1", connector_timeout_s=0.5,
                       deadline_ms=5000) as c:
        out = await c.manager.sale(sale("600.00"), c.reader)  # above the floor: online
        assert out.state == "cancelled", out.reason
        assert "confirmed the reversal" in out.reason
        assert c.charges(out.payment_id) == 0
        assert not [r for r in c.outbox(out.payment_id) if r[1] in ("advice", "reversal")]


async def test_declined_advice_withdraws_the_pop_record(data_dir: Path) -> None:
    """An offline approval whose advice the issuer declined (dead-lettered) becomes
    offline_declined with an alert, and its confirmed PoP record is withdrawn."""
    from terminal.payments.recovery import settle as settle_payments

    async with counter(data_dir, host_down=True) as c:
        out = await c.manager.sale(sale("25.00"), c.reader)
        assert out.approved and out.offline and out.pop_status == "confirmed"
        c.store.connection.execute("UPDATE outbox SET state = 'dead' WHERE kind = 'advice'")
        report = await settle_payments(c.manager)
        assert report.offline_declined == [str(out.payment_id)]
        assert c.state(out.payment_id) == "offline_declined"
        pop = c.store.connection.execute(
            "SELECT status FROM pop_transactions WHERE payment_id = ?",
            (str(out.payment_id),)).fetchone()[0]
        assert pop == "cancelled"
        kinds = [r[1] for r in c.outbox(out.payment_id)]
        assert "pop_cancel" in kinds and "alert" in kinds
