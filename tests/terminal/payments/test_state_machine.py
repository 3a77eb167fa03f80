"""A hypothesis state machine over the payment manager and a real acquirer simulator.

Random sequences of sales (approved, declined, timed out, with the PoP back end down),
refunds, voids, syncs and restarts, checked against a small model after every step:

* a payment is charged at most once at the acquirer (one UUID, one charge);
* refunds never exceed what was captured, at the terminal and at the acquirer;
* after a restart's recovery and a sync, every payment is final.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_sync.pop import PopRecord
from edge_sync.pop_fake import InMemoryPopBackend
from terminal.payments.model import FINAL_STATES, RefundRefusedError
from terminal.payments.recovery import recover, settle
from terminal.payments.refunds import refund_payment, void_payment
from tests.terminal.payments.harness import Counter, counter, mad, sale

pytestmark = [pytest.mark.network, pytest.mark.slow]


class Payments(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.stack = AsyncExitStack()
        self.pop = InMemoryPopBackend()
        self.c: Counter = self.run(self.stack.enter_async_context(
            counter(Path(self.tmp.name), pop=self.pop, deadline_ms=400,
                    connector_timeout_s=2)))
        self.approved: dict[str, int] = {}  # payment id -> captured minor units

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()
        self.tmp.cleanup()

    def _sale(self, amount: str) -> None:
        out = self.run(self.c.manager.sale(sale(amount), self.c.reader))
        if out.approved and not out.offline:
            self.approved[str(out.payment_id)] = out.amount.minor

    @rule(cents=st.integers(min_value=50_001, max_value=90_000))
    def approved_sale(self, cents: int) -> None:
        self._sale(f"{cents // 100}.{cents % 100:02d}")

    @rule()
    def declined_sale(self) -> None:
        self.c.host.faults.decline_code, self.c.host.faults.decline_count = "05", 1
        self._sale("600.00")

    @rule()
    def timed_out_sale(self) -> None:
        self.c.host.faults.latency = 1.0
        try:
            self._sale("600.00")
        finally:
            self.c.host.faults.latency = 0.0

    @rule()
    def sale_with_pop_down(self) -> None:
        self.pop.unavailable = 1
        self._sale("600.00")

    @precondition(lambda self: self.approved)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(list(self.approved)))  # sale order: ids are random
        cents = data.draw(st.integers(min_value=1, max_value=self.approved[pid]))
        try:
            self.run(refund_payment(self.c.manager, pid, mad(f"{cents // 100}.{cents % 100:02d}")))
        except RefundRefusedError:
            pass  # more than is left, or not refundable any more: refused, nothing changes

    @precondition(lambda self: self.approved)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(list(self.approved)))  # sale order: ids are random
        try:
            self.run(void_payment(self.c.manager, pid))
        except RefundRefusedError:
            pass

    @rule()
    def sync_pop(self) -> None:
        """What the outbox worker does for destination pop, then settlement."""
        rows = self.c.store.connection.execute(
            "SELECT message_id, kind, payload FROM outbox WHERE destination = 'pop' "
            "AND state = 'pending'").fetchall()
        for message_id, kind, payload in rows:
            body = json.loads(payload)
            if kind == "pop_record":
                self.run(self.pop.submit(PopRecord.from_payload(body)))
            self.c.store.connection.execute(
                "UPDATE outbox SET state = 'delivered' WHERE message_id = ?", (message_id,))
        self.run(settle(self.c.manager))

    @rule()
    def restart(self) -> None:
        """A restart runs recovery; running it twice changes nothing."""
        self.run(recover(self.c.manager))
        assert self.run(recover(self.c.manager)).changed == 0

    @invariant()
    def one_charge_per_uuid_and_refunds_within_captured(self) -> None:
        for key, entry in self.c.acquirer.ledger.items():
            assert entry.refunded <= max(entry.captured, entry.amount), key
        rows = self.c.store.connection.execute(
            "SELECT p.id, coalesce(p.captured_minor, p.amount_minor), "
            "coalesce(sum(r.amount_minor), 0) FROM payments p "
            "LEFT JOIN refunds r ON r.payment_id = p.id AND r.status IN "
            "('approved', 'pending_sync', 'requested') GROUP BY p.id").fetchall()
        for pid, captured, refunded in rows:
            assert refunded <= captured, pid

    @invariant()
    def every_payment_final_or_waiting(self) -> None:
        waiting = {"pop_deferred", "reversal_pending", "needs_reconciliation"}
        for (state,) in self.c.store.connection.execute("SELECT status FROM payments"):
            assert state in FINAL_STATES | waiting


Payments.TestCase.settings = settings(
    max_examples=8, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_payments_state_machine = Payments.TestCase
