"""PoP records and cancels drained through the outbox worker's Transport for destination pop."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from edge_sync.errors import TransportError
from edge_sync.messages import Envelope, build_envelope
from edge_sync.pop import PopReceipt, PopRecord
from edge_sync.pop_fake import InMemoryPopBackend
from edge_sync.pop_outbox import PopOutboxTransport
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport
from tests.fixtures.pop import RecordMaker

SIGNER = SoftwareSigner.generate()


def envelope(kind: str, payload: dict[str, Any], seq: int = 1) -> Envelope:
    return build_envelope(SIGNER, terminal_id="ETK00001", kind=kind, seq=seq,
                          idempotency_key=f"k{seq}-{uuid.uuid4()}", payload=payload)


async def test_records_and_cancels_are_acked_in_order() -> None:
    """pop_record and pop_cancel rows are submitted/cancelled in order and acked accepted."""
    fake = InMemoryPopBackend(confirm_immediately=False)
    transport = PopOutboxTransport(fake)
    assert isinstance(transport, Transport) and transport.name == "pop"
    records = RecordMaker()
    first, second = records.sale(), records.sale()
    batch = [envelope("pop_record", first.as_payload(), 1),
             envelope("pop_record", second.as_payload(), 2),
             envelope("pop_cancel", {"record_id": str(first.record_id), "reason": "void"}, 3)]
    acks = await transport.deliver(batch, timeout=5)
    assert [acks[e.message_id].status for e in batch] == ["accepted"] * 3
    assert fake.calls == [("submit", first.record_id), ("submit", second.record_id),
                          ("cancel", first.record_id)]
    assert fake.records() == {first.record_id: "cancelled", second.record_id: "pending"}


async def test_a_refused_record_is_rejected_with_the_reason() -> None:
    """PopRejectedError becomes a rejected ack carrying the back end's reason; the rest go on."""
    fake = InMemoryPopBackend(reject=1, reject_reason="consensus said no")
    records = RecordMaker()
    batch = [envelope("pop_record", records.sale().as_payload(), 1),
             envelope("pop_record", records.sale().as_payload(), 2)]
    acks = await PopOutboxTransport(fake).deliver(batch, timeout=5)
    assert acks[batch[0].message_id].status == "rejected"
    assert "consensus said no" in (acks[batch[0].message_id].reason or "")
    assert acks[batch[1].message_id].status == "accepted"


@pytest.mark.parametrize(
    ("kind",         "payload"),
    [
        ("pop_record", {"record_id": "x"}),
        ("pop_cancel", {"reason": "no id"}),
        ("pop_cancel", {"record_id": "nope", "reason": "x"}),
        ("reversal",   {"original": {}}),
    ],
)
async def test_rows_it_cannot_carry_are_rejected(kind: str, payload: dict[str, Any]) -> None:
    """A malformed payload or a foreign kind is a rejected ack (dead letter), not a crash."""
    row = envelope(kind, payload)
    acks = await PopOutboxTransport(InMemoryPopBackend()).deliver([row], timeout=5)
    assert acks[row.message_id].status == "rejected"


async def test_unreachable_before_any_ack_is_a_transport_error() -> None:
    """A back end down from the first row is TransportError, as the worker expects."""
    row = envelope("pop_record", RecordMaker().sale().as_payload())
    with pytest.raises(TransportError, match="pop"):
        await PopOutboxTransport(InMemoryPopBackend(unavailable=1)).deliver([row], timeout=5)


async def test_unreachable_mid_batch_keeps_what_was_acked() -> None:
    """Down after the first row: that ack stands, the rest stay unacknowledged (retried)."""
    records = RecordMaker()
    rows = [envelope("pop_record", records.sale().as_payload(), n) for n in (1, 2, 3)]

    class GoesDown(InMemoryPopBackend):
        async def submit(self, record: PopRecord) -> PopReceipt:
            receipt = await super().submit(record)
            self.unavailable = 5  # the link drops after the first answer
            return receipt

    fake = GoesDown()
    acks = await PopOutboxTransport(fake).deliver(rows, timeout=5)
    assert list(acks) == [rows[0].message_id]
    assert len(fake.calls) == 2


async def test_the_fake_compares_created_at_as_instants() -> None:
    """The same instant spelt '…Z' then '…+00:00' on a later sequence is in order."""
    fake = InMemoryPopBackend()
    records = RecordMaker()
    first = records.sale()
    second = records.sale()
    plus = replace(second, created_at=first.created_at.replace("Z", "+00:00"))
    await fake.submit(first)
    assert (await fake.submit(plus)).status == "confirmed"
