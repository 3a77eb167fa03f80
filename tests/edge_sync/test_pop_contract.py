"""One contract for the PoP back end, run against the in-package fake and against
HttpsPopClient talking to the real ``etika sim pop`` process over loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol

import pytest

from edge_sync.errors import PopRejectedError, PopUnavailableError, PopUnknownRecordError
from edge_sync.pop import HttpsPopClient, PopClient
from edge_sync.pop_fake import InMemoryPopBackend
from edge_sync.signing import SoftwareSigner
from tests.fixtures.pop import PopSim, RecordMaker


class Faults(Protocol):
    def __call__(self, fault: str) -> None: ...


@dataclass
class Harness:
    client: PopClient
    records: RecordMaker
    #: "unavailable" (nothing applied), "reject" (next new record), "lost" (applied, no answer)
    inject: Faults
    #: A client whose calls give up fast, for the lost-answer case.
    impatient: PopClient


@pytest.fixture(params=["fake", "simulator"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    records = RecordMaker()
    if request.param == "fake":
        fake = InMemoryPopBackend()

        def inject_fake(fault: str) -> None:
            attribute = {"unavailable": "unavailable", "reject": "reject",
                         "lost": "lose_answers"}[fault]
            setattr(fake, attribute, getattr(fake, attribute) + 1)

        yield Harness(fake, records, inject_fake, fake)
        return
    sim: PopSim = request.getfixturevalue("pop_sim")
    signer = SoftwareSigner.generate()
    sim.register(records.terminal_id, signer)

    def inject_sim(fault: str) -> None:
        sim.faults({"unavailable": "error=1", "reject": "reject=1", "lost": "timeout=1"}[fault])

    async with HttpsPopClient(sim.url, signer, records.terminal_id, timeout_s=10) as client, \
            HttpsPopClient(sim.url, signer, records.terminal_id, timeout_s=0.3) as impatient:
        try:
            yield Harness(client, records, inject_sim, impatient)
        finally:
            sim.faults("")


async def test_a_new_sale_is_confirmed_with_a_reference(backend: Harness) -> None:
    """A new record is accepted and (with no confirm delay) confirmed with a PoP reference."""
    record = backend.records.sale()
    receipt = await backend.client.submit(record)
    assert (receipt.record_id, receipt.status) == (record.record_id, "confirmed")
    assert receipt.pop_reference
    assert await backend.client.status(record.record_id) == receipt


async def test_the_same_record_twice_gets_the_same_answer(backend: Harness) -> None:
    """Dedup on record id: resubmitting the identical record changes nothing."""
    record = backend.records.sale()
    first = await backend.client.submit(record)
    assert await backend.client.submit(record) == first


async def test_the_same_id_with_other_content_is_refused(backend: Harness) -> None:
    """A record id reused with another amount is refused, and the first record stands."""
    record = backend.records.sale()
    first = await backend.client.submit(record)
    with pytest.raises(PopRejectedError, match="other content"):
        await backend.client.submit(replace(record, amount_minor=9999))
    assert await backend.client.status(record.record_id) == first


async def test_a_used_sequence_is_a_replay(backend: Harness) -> None:
    """A new record id on a sequence already used by this terminal is refused as a replay."""
    record = backend.records.sale()
    await backend.client.submit(record)
    with pytest.raises(PopRejectedError, match="replay"):
        await backend.client.submit(replace(record, record_id=uuid.uuid4()))


async def test_a_record_out_of_order_is_refused(backend: Harness) -> None:
    """A higher sequence created before an accepted lower one is refused as out of order."""
    early, late = backend.records.sale(), backend.records.sale()
    await backend.client.submit(late)
    out_of_order = replace(early, created_at=backend.records.created_at(late.sequence + 5))
    with pytest.raises(PopRejectedError, match="out of order"):
        await backend.client.submit(out_of_order)


async def test_an_earlier_record_arriving_late_is_accepted(backend: Harness) -> None:
    """Arrival order may differ from sequence (outbox retries) when created_at agrees."""
    early, late = backend.records.sale(), backend.records.sale()
    await backend.client.submit(late)
    assert (await backend.client.submit(early)).status == "confirmed"


async def test_a_refund_must_refer_to_a_known_sale(backend: Harness) -> None:
    """A refund of a known sale is accepted; of an unknown one, refused."""
    sale = backend.records.sale()
    await backend.client.submit(sale)
    refund = backend.records.make("refund", 1000, refers_to=sale.record_id)
    assert (await backend.client.submit(refund)).status == "confirmed"
    with pytest.raises(PopRejectedError, match="unknown sale"):
        await backend.client.submit(backend.records.make("refund", 1000,
                                                         refers_to=uuid.uuid4()))


async def test_cancel_is_idempotent(backend: Harness) -> None:
    """Cancelling a confirmed record gives cancelled, again and again; status agrees."""
    record = backend.records.sale()
    await backend.client.submit(record)
    first = await backend.client.cancel(record.record_id, "deadline passed")
    assert first.status == "cancelled"
    assert (await backend.client.cancel(record.record_id, "deadline passed")).status == (
        "cancelled")
    assert (await backend.client.status(record.record_id)).status == "cancelled"


async def test_a_cancel_before_the_record_leaves_a_tombstone(backend: Harness) -> None:
    """A record cancelled before it arrived is answered cancelled when it finally comes."""
    record = backend.records.sale()
    assert (await backend.client.cancel(record.record_id, "timeout")).status == "cancelled"
    assert (await backend.client.submit(record)).status == "cancelled"


async def test_status_of_an_unknown_record(backend: Harness) -> None:
    """The back end says when it never saw a record (so the terminal submits it again)."""
    with pytest.raises(PopUnknownRecordError):
        await backend.client.status(uuid.uuid4())


async def test_unavailable_applies_nothing(backend: Harness) -> None:
    """An unavailable back end is PopUnavailableError and the record is not in the ledger."""
    record = backend.records.sale()
    backend.inject("unavailable")
    with pytest.raises(PopUnavailableError):
        await backend.client.submit(record)
    with pytest.raises(PopUnknownRecordError):
        await backend.client.status(record.record_id)


async def test_a_lost_answer_then_resubmit_is_deduplicated(backend: Harness) -> None:
    """Applied but unanswered: the resubmission finds the record, with the same answer."""
    record = backend.records.sale()
    backend.inject("lost")
    with pytest.raises(PopUnavailableError):
        await backend.impatient.submit(record)
    again = await backend.client.submit(record)
    assert again.status == "confirmed"
    assert await backend.client.status(record.record_id) == again


async def test_a_rejected_record_stays_rejected(backend: Harness) -> None:
    """A record the consensus rejects raises PopRejectedError; status then says rejected."""
    record = backend.records.sale()
    backend.inject("reject")
    with pytest.raises(PopRejectedError) as caught:
        await backend.client.submit(record)
    assert caught.value.reason
    assert (await backend.client.status(record.record_id)).status == "rejected"
    with pytest.raises(PopRejectedError):
        await backend.client.submit(record)
