"""Acks are held to what the terminal sent (#12 item 2, review of main): an ack or a batch
replayed (issued before the message was first sent), reordered (another seq under the
message id) or redirected (another terminal or destination) is refused and settles nothing —
through the MQTT link's ack handling, as the broker hands them over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from edge_sync.ack_batch import build_ack_batch
from edge_sync.ack_binding import ACK_CLOCK_SKEW_S, SentLog
from edge_sync.errors import SignatureError
from edge_sync.messages import Ack, build_ack
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.signing import SoftwareSigner

PLATFORM = SoftwareSigner.generate()
TERMINAL = "ETK00001"
TOPIC = f"etika/v1/t/{TERMINAL}/ack"
FIRST_DRAIN = 1_800_000_000.0  # epoch seconds on the terminal's clock


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class Link:
    """An MQTT link with a controllable clock, and what its acks settled."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sent = SentLog(lambda: self.now)
        self.settled: list[Ack] = []
        self.transport = MqttTransport(
            MqttLinkSettings(terminal_id=TERMINAL, platform_public_key=PLATFORM.public_key_pem()),
            on_late_ack=self.settled.append, sent_log=self.sent)

    async def receive(self, raw: bytes) -> None:
        await self.transport._dispatch(TOPIC, raw)


def ack(message_id: str, seq: int, issued: float, terminal: str = TERMINAL,
        destination: str = "platform") -> bytes:
    return build_ack(PLATFORM, terminal_id=terminal, destination=destination,
                     message_id=message_id, seq=seq, status="accepted",
                     issued_at=iso(issued)).to_json()


def batch(items: list[tuple[str, int]], issued: float, terminal: str = TERMINAL,
          destination: str = "platform") -> bytes:
    return build_ack_batch(PLATFORM, terminal_id=terminal, destination=destination,
                           acks=[Ack(message_id=m, seq=s, status="accepted") for m, s in items],
                           issued_at=iso(issued)).to_json()


async def test_an_ack_captured_in_an_earlier_drain_and_replayed_settles_nothing() -> None:
    """Drain 1 sends M and the platform's ack for it is captured; the terminal restarts and
    sends M again an hour later: the captured ack (and batch) is refused, a fresh one
    settles it."""
    mid = str(uuid.uuid4())
    captured_single = ack(mid, 7, FIRST_DRAIN + 1)
    captured_batch = batch([(mid, 7)], FIRST_DRAIN + 1)
    link = Link(FIRST_DRAIN + 3600)
    link.sent.sent(mid, 7)
    await link.receive(captured_single)
    await link.receive(captured_batch)
    assert link.settled == [] and link.transport.refused_acks == 2
    await link.receive(ack(mid, 7, FIRST_DRAIN + 3601))
    assert [a.message_id for a in link.settled] == [mid]
    await link.receive(ack(mid, 7, FIRST_DRAIN + 3602))  # settled already: answers nothing
    assert len(link.settled) == 1 and link.transport.refused_acks == 3


async def test_a_reordered_ack_naming_another_seq_settles_nothing() -> None:
    """The platform's genuine, fresh ack for this message id under another seq (an earlier
    use of the id, or acks shuffled between messages) is refused; in a batch, one such ack
    refuses the whole batch, its correct acks included."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    link = Link(FIRST_DRAIN)
    link.sent.sent(first, 1)
    link.sent.sent(second, 2)
    await link.receive(ack(first, 2, FIRST_DRAIN + 1))
    await link.receive(batch([(first, 1), (second, 1)], FIRST_DRAIN + 1))
    assert link.settled == [] and link.transport.refused_acks == 2
    await link.receive(batch([(second, 2), (first, 1)], FIRST_DRAIN + 2))  # any order
    assert {a.message_id for a in link.settled} == {first, second}


@pytest.mark.parametrize(("terminal", "destination"), [("ETK00002", "platform"),
                                                        (TERMINAL, "pop")])
async def test_a_redirected_ack_or_batch_settles_nothing(terminal: str, destination: str
                                                         ) -> None:
    """A fresh, correctly sequenced ack or batch the platform signed for another terminal or
    destination is refused whole."""
    mid = str(uuid.uuid4())
    link = Link(FIRST_DRAIN)
    link.sent.sent(mid, 3)
    await link.receive(ack(mid, 3, FIRST_DRAIN + 1, terminal, destination))
    await link.receive(batch([(mid, 3)], FIRST_DRAIN + 1, terminal, destination))
    assert link.settled == [] and link.transport.refused_acks == 2


async def test_a_platform_clock_behind_within_the_skew_is_tolerated() -> None:
    """Several platform workers, clocks not in step with the terminal's: an ack issued up
    to the documented skew before the first send still settles; a resend keeps the first
    send time, so a slow commit answered after the resend is not refused."""
    mid = str(uuid.uuid4())
    link = Link(FIRST_DRAIN)
    link.sent.sent(mid, 4)
    link.now += 120
    link.sent.sent(mid, 4)  # resent after a timeout
    await link.receive(ack(mid, 4, FIRST_DRAIN - ACK_CLOCK_SKEW_S + 1))
    assert [a.message_id for a in link.settled] == [mid]


def test_an_ack_without_seq_or_time_is_refused_for_a_message_sent() -> None:
    """An ack (verified) binding no seq or time cannot be held to anything: refused."""
    mid = str(uuid.uuid4())
    sent = SentLog(lambda: FIRST_DRAIN)
    sent.sent(mid, 1)
    with pytest.raises(SignatureError, match="binds no seq"):
        sent.settleable([Ack(message_id=mid, status="accepted")])
