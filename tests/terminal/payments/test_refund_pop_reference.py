"""A refund's and a void's PoP records point at the sale's PoP record (seed 001 §3.3).

Found by the wire leak-scan workload (#15): the records pointed at the payment id, which
the PoP back end does not know, so ``etika sim pop`` refused them (409 unknown_sale) and
they went dead in the outbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminal.payments.refunds import refund_payment, void_payment
from tests.terminal.payments.harness import counter, mad, sale

pytestmark = pytest.mark.network


@pytest.mark.parametrize("kind", ["refund", "cancel"])
async def test_follow_up_record_refers_to_the_sale_record(data_dir: Path, kind: str) -> None:
    """The refund (or void's cancel) record queued for the PoP back end has ``refers_to``
    = the sale's PoP record id, the id the back end knows the sale by — not the payment id."""
    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("300.00"), c.reader)
        pid = str(out.payment_id)
        if kind == "refund":
            await refund_payment(c.manager, pid, mad("100.00"))
        else:
            await void_payment(c.manager, pid)
        conn = c.store.connection
        sale_record = conn.execute(
            "SELECT id FROM pop_transactions WHERE payment_id = ?", (pid,)).fetchone()[0]
        queued = [json.loads(r[0]) for r in conn.execute(
            "SELECT payload FROM outbox WHERE destination = 'pop' AND kind = 'pop_record'")]
    follow_ups = [p for p in queued if p.get("kind") == kind]
    assert follow_ups, queued
    assert follow_ups[0]["refers_to"] == sale_record
    assert follow_ups[0]["refers_to"] != pid
