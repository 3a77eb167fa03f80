"""An offline approval's advice is booked at the acquirer on its own key (chaos gap 2).

The acquirer may already hold the payment's own id from an online attempt of the same
payment: approved and then reversed, or a reversal that arrived first. An advice sent under
that id was answered as a replay of that entry and booked nothing (or was refused as the
reversed one). Here the real ISO 8583 acquirer simulator first sees such an attempt, then the
advice goes out through the outbox's PSP transport: it must be booked, once, on its own key.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edge_sync.connectors.base import AuthorisationRequest, PspReference
from edge_sync.connectors.outbox_transport import PspOutboxTransport
from edge_sync.messages import build_envelope
from edge_sync.signing import SoftwareSigner
from simulators.psp.acquirer import EntryKind
from terminal.payments.advice import advice_card_source, advice_id
from terminal.services.psp import psp_amount
from tests.terminal.payments.harness import Counter, counter, mad, sale

SIGNER = SoftwareSigner.generate()


def _advice_payload(c: Counter, payment_id: uuid.UUID) -> dict[str, object]:
    row = c.store.connection.execute(
        "SELECT payload FROM outbox WHERE ref_id = ? AND kind = 'advice'",
        (str(payment_id),)).fetchone()
    assert row is not None, "the offline approval queued no advice"
    payload: dict[str, object] = json.loads(row[0])
    return payload


async def _earlier_attempt(c: Counter, payment_id: uuid.UUID, how: str) -> None:
    """Leave the payment's own id at the acquirer as a reversed online attempt."""
    connector = c.manager.router.connectors["cih"]
    amount = psp_amount(mad("1.00"))
    if how == "approved_then_reversed":
        # The offline card has no ARQC to offer; the acquirer takes this attempt without.
        c.acquirer.require_arqc = False
        card = await advice_card_source(c.store, lambda: c.manager.card_keys)(
            {"payment_id": str(payment_id)})
        answer = await connector.authorise(AuthorisationRequest(payment_id, amount, card))
        assert answer.approved, answer
        reversal = await connector.reverse(answer.reference, amount)
    else:  # the reversal reached the acquirer before (instead of) the original
        reversal = await connector.reverse(
            PspReference(connector="cih", transaction_id=str(payment_id)), amount)
    assert reversal.approved, reversal
    entry = c.acquirer.entry(str(payment_id))
    assert entry is not None and entry.state == "reversed"


@pytest.mark.parametrize("how", ["approved_then_reversed", "reversed_before_arrival"])
async def test_advice_after_a_reversed_attempt_is_booked_on_its_own_key(
        data_dir: Path, how: str) -> None:
    """The advice is booked once on its own key, beside the reversed attempt under the
    payment's id; a retry of it is answered as a duplicate and books nothing more."""
    async with counter(data_dir) as c:
        out = await c.manager.sale(sale("1.00"), c.reader)  # the card approves offline
        assert out.state == "completed" and out.offline, out.reason
        pid = out.payment_id
        await _earlier_attempt(c, pid, how)
        postings = c.acquirer.postings

        payload = _advice_payload(c, pid)
        assert payload["advice_id"] == str(advice_id(pid)) != str(pid)
        transport = PspOutboxTransport(
            c.manager.router, "cih",
            advice_card=advice_card_source(c.store, lambda: c.manager.card_keys))
        envelope = build_envelope(SIGNER, terminal_id="ETK00001", kind="advice", seq=1,
                                  idempotency_key=f"advice:{pid}", payload=payload)
        first = await transport.deliver([envelope], timeout=10)
        assert first[envelope.message_id].status == "accepted", first

        booked = c.acquirer.entry(str(advice_id(pid)))
        assert booked is not None, "the advice booked nothing at the acquirer"
        assert (booked.kind, booked.state, booked.captured) == (
            EntryKind.ADVICE, "captured", out.amount.minor)
        assert c.acquirer.postings == postings + 1
        assert c.acquirer.entry(str(pid)).state == "reversed"  # type: ignore[union-attr]

        # A retry (the ack was lost) is the same advice: answered once more, booked once.
        again = await transport.deliver([envelope], timeout=10)
        assert again[envelope.message_id].status == "duplicate", again
        assert c.acquirer.postings == postings + 1
        charged = [e for e in c.acquirer.ledger.values()
                   if e.state == "captured" and e.key in (str(pid), str(advice_id(pid)))]
        assert len(charged) == 1


def test_advice_id_is_stable_and_not_the_payment_id() -> None:
    """One payment always gives the same advice id (retries dedupe), never its own id."""
    pid = uuid.uuid4()
    assert advice_id(pid) == advice_id(str(pid)) != pid
    assert advice_id(pid) != advice_id(uuid.uuid4())
