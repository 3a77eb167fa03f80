"""The outbox worker over the in-process outbox and receiver fakes."""

from __future__ import annotations

import random

import pytest

from edge_sync.errors import TransportError
from edge_sync.fake_transport import FakeReceiver
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import REUSED_ID_REASON, build_envelope, verify_envelope
from edge_sync.outbox import RetryPolicy
from edge_sync.signing import ANNOUNCED_WITH, SoftwareSigner
from edge_sync.transport import FailoverTransport
from edge_sync.worker import OutboxWorker, TokenBucket, WorkerSettings

SIGNER = SoftwareSigner.generate()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_worker(
    outbox: MemoryOutbox,
    receiver: object,
    clock: Clock,
    *,
    batch_size: int = 10,
    max_in_flight: int = 30,
    max_attempts: int | None = None,
) -> OutboxWorker:
    settings = WorkerSettings(
        terminal_id="T-0001",
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        ack_timeout_s=1.0,
        retry=RetryPolicy(base_s=2.0, cap_s=60.0, max_attempts=max_attempts, rng=random.Random(7)),
    )
    transports = {"platform": receiver, "pop": receiver}
    return OutboxWorker(outbox, transports, SIGNER, settings, clock=clock)  # type: ignore[arg-type]


def fill(
    outbox: MemoryOutbox, clock: Clock, count: int, destination: str = "platform"
) -> list[str]:
    return [
        outbox.enqueue(destination, "transaction", {"n": i}, f"txn-{i}", clock.now)
        for i in range(count)
    ]


async def test_drain_delivers_everything_once_in_order() -> None:
    """A backlog drains with each message committed exactly once, in seq order, signed."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver(SIGNER.public_key_pem())
    ids = fill(outbox, clock, 95)
    worker = make_worker(outbox, receiver, clock)
    report = await worker.drain()
    assert report.delivered == 95
    assert [e.message_id for e in receiver.committed] == ids
    assert all(outbox.state_of(m) == "delivered" for m in ids)
    verify_envelope(receiver.committed[0], SIGNER.public_key_pem())
    worker.close()


async def test_reversals_go_first() -> None:
    """A reversal (priority 10) is sent before older ordinary rows of its destination."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    fill(outbox, clock, 3)
    rev = outbox.enqueue("platform", "reversal", {}, "rev-1", clock.now, priority=10)
    worker = make_worker(outbox, receiver, clock)
    await worker.drain()
    assert receiver.committed[0].message_id == rev
    worker.close()


async def test_pop_record_waits_for_its_financial_leg() -> None:
    """A PoP record is not sent while its financial leg (same ref_id) is still open."""
    outbox, clock = MemoryOutbox(), Clock()
    psp = FakeReceiver(name="psp")
    pop = FakeReceiver(name="pop")
    psp.fail_next_calls = 1
    fin = outbox.enqueue("psp:cmi", "advice", {}, "adv-1", clock.now, ref_id="txn-1")
    rec = outbox.enqueue("pop", "pop_record", {}, "pop-1", clock.now, ref_id="txn-1")
    settings = WorkerSettings(terminal_id="T1", batch_size=5, max_in_flight=5)
    worker = OutboxWorker(outbox, {"psp:cmi": psp, "pop": pop}, SIGNER, settings, clock=clock)
    await worker.drain()
    assert outbox.state_of(fin) == "pending" and outbox.state_of(rec) == "pending"
    assert pop.received == []
    clock.now += 3600
    await worker.drain()  # gather order: psp and pop drain together; pop sees leg still open
    await worker.drain()
    assert outbox.state_of(fin) == "delivered" and outbox.state_of(rec) == "delivered"
    worker.close()


async def test_link_down_schedules_backoff_and_keeps_order() -> None:
    """A failed batch goes back to pending with backoff; nothing behind it overtakes it."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    ids = fill(outbox, clock, 25)
    receiver.fail_next_calls = 1
    worker = make_worker(outbox, receiver, clock, max_in_flight=10)
    report = await worker.drain()
    assert report.delivered == 0 and report.retried == 10
    rows = {r.row.message_id: r for r in outbox.rows()}
    first = rows[ids[0]]
    assert first.state == "pending" and first.next_attempt_at > clock.now
    assert first.next_attempt_at <= clock.now + 2.0
    assert (await worker.drain()).delivered == 0  # not due yet: the head blocks the rest
    clock.now += 60
    await worker.drain()
    assert [e.message_id for e in receiver.committed] == ids
    status = {s.destination: s for s in outbox.status(clock.now)}["platform"]
    assert status.last_error is not None and status.last_success_at == clock.now
    worker.close()


async def test_lost_ack_is_resent_and_deduplicated() -> None:
    """A message whose ack was lost is resent; the receiver answers duplicate; it is delivered."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    ids = fill(outbox, clock, 5)
    receiver.lose_ack_once.add(ids[2])
    worker = make_worker(outbox, receiver, clock)
    await worker.drain()
    assert outbox.state_of(ids[2]) == "pending"
    clock.now += 60
    await worker.drain()
    assert outbox.state_of(ids[2]) == "delivered"
    assert len(receiver.committed) == 5 and len(receiver.received) == 6
    worker.close()


async def test_rejected_message_is_dead_lettered_with_an_alert() -> None:
    """A message the receiver rejects (it verified it, but another message holds its id)
    goes dead with the receiver's reason and an alert row is queued."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver(SIGNER.public_key_pem())
    (mid,) = fill(outbox, clock, 1)
    receiver.judge(build_envelope(SIGNER, terminal_id="T-0001", kind="transaction", seq=99,
                                  idempotency_key="another", payload={}, message_id=mid))
    worker = make_worker(outbox, receiver, clock)
    report = await worker.drain()
    assert report.rejected == 1 and report.unacknowledged == 0
    dead = next(r for r in outbox.rows() if r.row.message_id == mid)
    assert dead.state == "dead" and REUSED_ID_REASON in (dead.last_error or "")
    alerts = [r for r in outbox.rows() if r.row.kind == "alert"]
    assert alerts[0].row.payload["message_id"] == mid
    worker.close()


async def test_unverifiable_message_stays_queued_unacknowledged() -> None:
    """A message signed with a key the receiver does not hold gets no ack (as from the
    platform): it is not dead-lettered nor delivered but queued again with backoff, and
    the report counts it as unacknowledged, naming the timeout."""
    other = SoftwareSigner.generate()
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver(other.public_key_pem())
    ids = fill(outbox, clock, 3)
    worker = make_worker(outbox, receiver, clock)
    report = await worker.drain()
    assert (report.delivered, report.rejected, report.dead) == (0, 0, 0)
    assert report.retried == 3 and report.unacknowledged == 3
    assert report.errors == ["platform: no acknowledgement within 1 s"]
    assert [outbox.state_of(m) for m in ids] == ["pending"] * 3
    assert [m for m, _ in receiver.refused] == ids and not receiver.committed
    worker.close()


async def test_link_down_is_not_counted_as_unacknowledged() -> None:
    """Rows that never reached the receiver (the link down) are retried, and not counted as
    sent-but-unacknowledged: that count points at the receiver, not the link."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    fill(outbox, clock, 2)
    receiver.fail_next_calls = 1
    worker = make_worker(outbox, receiver, clock)
    report = await worker.drain()
    assert report.retried == 2 and report.unacknowledged == 0
    worker.close()


async def test_ttl_expiry_dead_letters_with_alert() -> None:
    """A row past its time to live is dead-lettered and reported by an alert row."""
    outbox, clock = MemoryOutbox(), Clock()
    mid = outbox.enqueue("platform", "advice", {}, "a", clock.now, ttl_s=10)
    clock.now += 11
    worker = make_worker(outbox, FakeReceiver(), clock)
    report = await worker.drain()
    assert report.expired == 1 and outbox.state_of(mid) == "dead"
    assert [r.row.payload["alert"] for r in outbox.rows() if r.row.kind == "alert"] == [
        "dead_letter"
    ]
    worker.close()


async def test_attempts_exhausted_goes_dead() -> None:
    """With max_attempts, a row that never gets an ack ends dead instead of retrying forever."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    (mid,) = fill(outbox, clock, 1)
    receiver.fail_next_calls = 99
    worker = make_worker(outbox, receiver, clock, max_attempts=2)
    await worker.drain()
    clock.now += 600
    report = await worker.drain()
    assert report.dead == 1 and outbox.state_of(mid) == "dead"
    worker.close()


async def test_restart_requeues_in_flight_rows() -> None:
    """Rows left in flight by a crash are sent again after recover(); nothing is lost."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    ids = fill(outbox, clock, 4)
    outbox.claim("platform", 2, clock.now)  # a previous run crashed with these in flight
    worker = make_worker(outbox, receiver, clock)
    assert await worker.recover() == 2
    await worker.drain()
    assert [e.message_id for e in receiver.committed] == ids
    worker.close()


async def test_failover_uses_https_while_mqtt_is_down() -> None:
    """FailoverTransport sends through the second transport while the first raises."""
    mqtt, https = FakeReceiver(name="mqtt"), FakeReceiver(name="https")
    mqtt.fail_next_calls = 1
    failover = FailoverTransport([mqtt, https], retry_preferred_s=0)
    outbox, clock = MemoryOutbox(), Clock()
    fill(outbox, clock, 3)
    worker = make_worker(outbox, failover, clock)
    await worker.drain()
    assert len(https.committed) == 3 and failover.last_used == "https"
    fill(outbox, clock, 2)
    await worker.drain()
    assert len(mqtt.committed) == 2 and failover.last_used == "mqtt"
    worker.close()


async def test_failover_raises_when_all_down() -> None:
    """When every transport is down the error names them all."""
    a, b = FakeReceiver(name="a"), FakeReceiver(name="b")
    a.fail_next_calls = b.fail_next_calls = 1
    with pytest.raises(TransportError, match="no sync transport"):
        await FailoverTransport([a, b]).deliver([], 1.0)


async def test_token_bucket_paces_bytes() -> None:
    """The bandwidth limiter waits for tokens rather than sending over the limit."""
    stamps = iter([0.0, 0.0, 0.0, 1.0])
    bucket = TokenBucket(rate=100, burst=100, clock=lambda: next(stamps))
    await bucket.take(100)
    await bucket.take(50)  # empty bucket: sleeps (100-0)/100… then refills at t=1
    assert bucket._tokens == pytest.approx(50)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1,          1.0,   2.0),
        (2,          2.0,   4.0),
        (5,          16.0,  32.0),
        (20,         30.0,  60.0),
    ],
)
def test_backoff_is_exponential_with_jitter(attempts: int, low: float, high: float) -> None:
    """Retry delay doubles per attempt, capped, with jitter in [½, 1) of the step."""
    policy = RetryPolicy(base_s=2.0, cap_s=60.0)
    for _ in range(50):
        assert low <= policy.delay(attempts) < high or policy.delay(attempts) == high


def test_settings_validate() -> None:
    """Settings refuse nonsense limits with ValueError."""
    with pytest.raises(ValueError):
        WorkerSettings(terminal_id="T", batch_size=10, max_in_flight=5)
    with pytest.raises(ValueError):
        WorkerSettings(terminal_id="T", max_bytes_per_s=0)


async def test_run_drains_on_wake_until_stopped() -> None:
    """run() drains what is queued, drains again when woken, and returns once stop is set."""
    import asyncio

    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    first = fill(outbox, clock, 3)
    worker = OutboxWorker(
        outbox, {"platform": receiver}, SIGNER,
        WorkerSettings(terminal_id="T1", batch_size=10, max_in_flight=10, idle_poll_s=30),
        clock=clock,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def committed(count: int) -> None:
        while len(receiver.committed) < count and not task.done():
            await asyncio.sleep(0.01)

    # The bound only keeps a broken worker from hanging the suite; it times nothing.
    await asyncio.wait_for(committed(3), 30)
    assert not task.done(), "run() returned before it was told to stop"
    assert [e.message_id for e in receiver.committed] == first
    second = [outbox.enqueue("platform", "transaction", {"n": i}, f"later-{i}", clock.now)
              for i in range(2)]
    worker.wake()  # idle_poll_s=30: only the wake can make it drain again before the bound
    await asyncio.wait_for(committed(5), 20)
    assert [e.message_id for e in receiver.committed] == first + second
    stop.set()
    assert await asyncio.wait_for(task, 5) is None
    assert all(outbox.state_of(m) == "delivered" for m in first + second)
    worker.close()


async def test_row_that_cannot_form_an_envelope_is_dead_lettered() -> None:
    """A row whose kind cannot go in a topic is dead-lettered; its neighbours still go."""
    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    bad = outbox.enqueue("platform", "Bad Kind/#", {}, "k-bad", clock.now)
    (good,) = fill(outbox, clock, 1)
    worker = make_worker(outbox, receiver, clock)
    report = await worker.drain()
    assert outbox.state_of(bad) == "dead" and outbox.state_of(good) == "delivered"
    assert report.dead == 1 and "envelope" in report.errors[0]
    worker.close()


async def test_signer_failure_puts_rows_back_instead_of_in_flight() -> None:
    """When the key store fails, the drain raises and the claimed rows wait their backoff."""

    class BrokenSigner(SoftwareSigner):
        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("token removed")

    outbox, clock = MemoryOutbox(), Clock()
    (mid,) = fill(outbox, clock, 1)
    settings = WorkerSettings(terminal_id="T1", batch_size=5, max_in_flight=5)
    worker = OutboxWorker(outbox, {"platform": FakeReceiver()}, BrokenSigner.generate(),
                          settings, clock=clock)
    with pytest.raises(RuntimeError, match="token removed"):
        await worker.drain()
    assert outbox.state_of(mid) == "pending"
    worker.close()


async def test_late_ack_marks_the_row_delivered() -> None:
    """An ack arriving after its batch timed out marks the row delivered (no resend); only
    one naming the row's destination does."""
    import asyncio

    from edge_sync.messages import Ack

    outbox, clock, receiver = MemoryOutbox(), Clock(), FakeReceiver()
    (mid,) = fill(outbox, clock, 1)
    receiver.lose_ack_once.add(mid)
    worker = make_worker(outbox, receiver, clock)
    await worker.drain()
    assert outbox.state_of(mid) == "pending"
    worker.late_ack(Ack(message_id=mid, status="rejected", reason="x", destination="platform"))
    worker.late_ack(Ack(message_id=mid, status="accepted"))
    worker.late_ack(Ack(message_id=mid, status="accepted", destination="pop"))
    await asyncio.get_running_loop().run_in_executor(worker._executor, lambda: None)
    assert outbox.state_of(mid) == "pending"
    worker.late_ack(Ack(message_id=mid, status="accepted", destination="platform"))
    await asyncio.get_running_loop().run_in_executor(worker._executor, lambda: None)
    assert outbox.state_of(mid) == "delivered"
    worker.close()


async def test_failover_when_the_preferred_link_gets_no_acks() -> None:
    """MQTT connected but silent (no consumer): the same batch goes over HTTPS instead."""

    class Silent(FakeReceiver):
        async def deliver(self, envelopes, timeout):  # type: ignore[no-untyped-def]
            self.received.extend(envelopes)
            return {}

    mqtt, https = Silent(name="mqtt"), FakeReceiver(name="https")
    failover = FailoverTransport([mqtt, https], retry_preferred_s=60)
    outbox, clock = MemoryOutbox(), Clock()
    ids = fill(outbox, clock, 4)
    worker = make_worker(outbox, failover, clock)
    await worker.drain()
    assert [e.message_id for e in https.committed] == ids and len(mqtt.received) == 4
    fill(outbox, clock, 1)
    await worker.drain()  # MQTT is skipped for retry_preferred_s
    assert len(mqtt.received) == 4 and len(https.committed) == 5
    worker.close()


class _Keyring:
    """A RotatingSigner over two software keys: version 1 (old) and 2 (current)."""

    def __init__(self) -> None:
        self.keys = {1: SoftwareSigner.generate(1), 2: SoftwareSigner.generate(2)}

    @property
    def key_version(self) -> int:
        return 2

    def sign(self, data: bytes) -> bytes:
        return self.keys[2].sign(data)

    def public_key_pem(self) -> bytes:
        return self.keys[2].public_key_pem()

    def for_version(self, version: int) -> SoftwareSigner:
        return self.keys[version]


async def test_key_rotation_report_is_signed_with_the_announcing_key() -> None:
    """A keys_rotated report is signed with the key it names, which the platform trusts,
    so the platform can register the new key without an operator."""
    keyring, outbox, clock = _Keyring(), MemoryOutbox(), Clock()
    receiver = FakeReceiver(keyring.keys[1].public_key_pem())  # knows only the old key
    outbox.enqueue("platform", "keys_rotated", {"key_version": 2, ANNOUNCED_WITH: 1}, "rot-2",
                   clock.now)
    settings = WorkerSettings(terminal_id="T-0001", batch_size=10, max_in_flight=10,
                              ack_timeout_s=1.0)
    worker = OutboxWorker(outbox, {"platform": receiver}, keyring, settings,  # type: ignore[arg-type]
                          clock=clock)
    report = await worker.drain()
    assert report.delivered == 1
    assert receiver.committed[0].key_version == 1
    verify_envelope(receiver.committed[0], keyring.keys[1].public_key_pem())
    worker.close()
