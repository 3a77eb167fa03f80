"""The Transport rules, checked on the in-process FakeReceiver and on MQTT through Mosquitto.

Each test runs against :class:`edge_sync.fake_transport.FakeReceiver` and against
:class:`edge_sync.mqtt.MqttTransport` talking to a real Mosquitto started for the test
(``tests/fixtures/mosquitto.py``, marker ``network``), with the acking receiver of
``tests/integration/sync_receiver.py`` at the far end. Both far ends validate, verify,
deduplicate and answer the same way, so one set of checks holds for both links.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from edge_sync.errors import TransportError
from edge_sync.fake_transport import FakeReceiver
from edge_sync.messages import Ack, Envelope, build_envelope
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport

TERMINAL_ID = "ETK00001"
SIGNER = SoftwareSigner.generate()
ACK_WAIT_S = 10.0  # every ack comes back well within it; only a lost ack waits it out
LOST_ACK_WAIT_S = 1.0


@dataclass
class Harness:
    """A transport, what its far end committed, and the hands that break the link."""

    transport: Transport
    committed: Callable[[], list[str]]
    lose_ack_of: Callable[[str], None]
    link_down: Callable[[], Awaitable[None]]


def _envelopes(count: int, signer: SoftwareSigner = SIGNER, first_seq: int = 1) -> list[Envelope]:
    return [
        build_envelope(signer, terminal_id=TERMINAL_ID, kind="transaction", seq=seq,
                       idempotency_key=f"txn-{seq}", payload={"amount_minor": 1000 + seq})
        for seq in range(first_seq, first_seq + count)
    ]


@pytest.fixture(params=["fake", pytest.param("mqtt", marks=pytest.mark.network)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "fake":
        fake = FakeReceiver(SIGNER.public_key_pem())

        async def fake_down() -> None:
            fake.fail_next_calls = 1

        yield Harness(fake, lambda: [e.message_id for e in fake.committed],
                      fake.lose_ack_once.add, fake_down)
        return
    from edge_sync.mqtt import MqttTransport
    from tests.integration.sync_receiver import PLATFORM_KEY, AckingReceiver

    @dataclass
    class LosingReceiver(AckingReceiver):
        """Commits every message, but the acks of the ids in ``lose`` never leave."""

        lose: set[str] = field(default_factory=set)

        def judge(self, terminal_id: str, raw: bytes) -> Ack | None:
            ack = super().judge(terminal_id, raw)
            if ack is not None and ack.message_id in self.lose:
                self.lose.discard(ack.message_id)
                return None
            return ack

    broker = request.getfixturevalue("mosquitto")
    settings = broker.terminal_link(TERMINAL_ID, platform_public_key=PLATFORM_KEY.public_key_pem())
    receiver = LosingReceiver(broker.host, broker.platform_port, SIGNER.public_key_pem(),
                              tls=broker.client_files("etika-platform"))

    async def broker_dies() -> None:
        broker.kill()
        # A guard against a hang, not a timing check: the next worker pass after a crash
        # finds the client disconnected too.
        async with asyncio.timeout(10):
            while transport.connected:
                await asyncio.sleep(0.02)

    with receiver:
        async with MqttTransport(settings) as transport:
            assert await transport.wait_connected(10), transport.last_error
            yield Harness(transport, lambda: list(receiver.committed), receiver.lose.add,
                          broker_dies)


def test_implements_the_protocol(harness: Harness) -> None:
    """Both links satisfy edge_sync.transport.Transport and have a name."""
    assert isinstance(harness.transport, Transport)
    assert harness.transport.name


async def test_ordered_batch_is_acked_by_message_id(harness: Harness) -> None:
    """A batch comes back as one accepted ack per message id, committed in batch order."""
    batch = _envelopes(5)
    acks = await harness.transport.deliver(batch, ACK_WAIT_S)
    ids = [e.message_id for e in batch]
    assert sorted(acks) == sorted(ids)
    assert all(acks[m].message_id == m and acks[m].status == "accepted" for m in ids)
    assert all(ack.delivered for ack in acks.values())
    assert harness.committed() == ids


async def test_redelivery_is_acked_as_duplicate(harness: Harness) -> None:
    """Sending a batch again gives duplicate acks (delivered) and commits nothing twice."""
    batch = _envelopes(2)
    await harness.transport.deliver(batch, ACK_WAIT_S)
    again = await harness.transport.deliver(batch, ACK_WAIT_S)
    assert {m: a.status for m, a in again.items()} == {e.message_id: "duplicate" for e in batch}
    assert all(ack.delivered for ack in again.values())
    assert harness.committed() == [e.message_id for e in batch]


async def test_bad_signature_is_acked_as_rejected_with_a_reason(harness: Harness) -> None:
    """An envelope signed with another key comes back rejected, with a reason, uncommitted."""
    (forged,) = _envelopes(1, signer=SoftwareSigner.generate())
    acks = await harness.transport.deliver([forged], ACK_WAIT_S)
    ack = acks[forged.message_id]
    assert ack.status == "rejected" and not ack.delivered
    assert ack.reason and "signature" in ack.reason
    assert harness.committed() == []


async def test_a_lost_ack_is_absent_not_an_error(harness: Harness) -> None:
    """An ack that never arrives is missing from the result; the others are there."""
    batch = _envelopes(3)
    harness.lose_ack_of(batch[1].message_id)
    acks = await harness.transport.deliver(batch, LOST_ACK_WAIT_S)
    assert set(acks) == {batch[0].message_id, batch[2].message_id}
    assert harness.committed() == [e.message_id for e in batch]


async def test_empty_batch_gives_no_acks(harness: Harness) -> None:
    """Delivering nothing returns an empty dict."""
    assert await harness.transport.deliver([], LOST_ACK_WAIT_S) == {}


async def test_unavailable_link_raises_transport_error(harness: Harness) -> None:
    """With the link down (the broker gone), deliver raises TransportError, not a raw error."""
    await harness.link_down()
    with pytest.raises(TransportError):
        await harness.transport.deliver(_envelopes(1), LOST_ACK_WAIT_S)
