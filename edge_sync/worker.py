"""The outbox worker: drains due rows to their destination's transport, in order, durably.

One pass per destination: claim a batch (in ``(priority, id)`` order, see
:mod:`edge_sync.outbox`), sign each row into an :class:`~edge_sync.messages.Envelope`, hand the
batch to the destination's :class:`~edge_sync.transport.Transport`, then record the outcome of
every row in one store transaction:

* ack ``accepted`` / ``duplicate`` → ``delivered``;
* ack ``rejected`` → ``dead`` with the receiver's reason, plus an alert row (resending a message
  the receiver refuses cannot help; a person must look);
* no ack in time, or the link down → back to ``pending`` with exponential backoff and jitter
  (``next_attempt_at`` is stored, so a restart keeps the schedule), or ``dead`` once the retry
  policy's attempts are exhausted. A receiver answers nothing for a message it cannot verify
  (a key it does not hold): :attr:`DrainReport.unacknowledged` counts those rows.

Several batches of one destination may be in flight at once (``max_in_flight`` messages), which
keeps the link busy while acks come back; they are handed to the transport in claim order and a
transport keeps that order on the wire. Blocking store calls and signing cross into one worker
thread (SQLite connections belong to a thread; the HSM signs synchronously).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from edge_sync.bounded_json import storable_text
from edge_sync.errors import TransportError
from edge_sync.json_types import JsonValue
from edge_sync.messages import Ack, Envelope, build_envelope
from edge_sync.outbox import Outbox, OutboxRow, RetryPolicy
from edge_sync.signing import ANNOUNCED_WITH, RotatingSigner, Signer
from edge_sync.transport import Transport

__all__ = ["DrainReport", "OutboxWorker", "TokenBucket", "WorkerSettings"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker paces itself (from the profile's ``[sync]`` section)."""

    terminal_id: str
    batch_size: int = 500
    #: Messages sent and not yet acknowledged, per destination (aiomqtt has no back-pressure).
    max_in_flight: int = 2000
    ack_timeout_s: float = 10.0
    #: Upper bound on uplink bytes per second (None: unlimited), for metered links.
    max_bytes_per_s: float | None = None
    #: How long ``run`` sleeps when nothing is due and nobody calls :meth:`OutboxWorker.wake`.
    idle_poll_s: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_in_flight < self.batch_size:
            raise ValueError("max_in_flight must be at least batch_size")
        if self.ack_timeout_s <= 0:
            raise ValueError("ack_timeout_s must be positive")
        if self.max_bytes_per_s is not None and self.max_bytes_per_s <= 0:
            raise ValueError("max_bytes_per_s must be positive (or None)")


@dataclass
class DrainReport:
    """What one drain did (the CLI prints it with ``--json``)."""

    delivered: int = 0
    rejected: int = 0
    retried: int = 0
    #: Of the rows handed to a working link, those that got no ack in time (queued again, or
    #: dead once out of attempts). A receiver that cannot verify a message answers nothing,
    #: so this is how a key the receiver does not hold shows; a link down is not counted.
    unacknowledged: int = 0
    expired: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DrainReport) -> None:
        """Count ``other`` (one more drain pass) into this report."""
        self.delivered += other.delivered
        self.rejected += other.rejected
        self.retried += other.retried
        self.unacknowledged += other.unacknowledged
        self.expired += other.expired
        self.dead += other.dead
        self.errors = [*self.errors, *other.errors][-100:]

    def as_dict(self) -> dict[str, JsonValue]:
        return {
            "delivered": self.delivered,
            "rejected": self.rejected,
            "retried": self.retried,
            "unacknowledged": self.unacknowledged,
            "expired": self.expired,
            "dead": self.dead,
            "errors": self.errors[-10:],
        }


class TokenBucket:
    """Bandwidth limit: ``rate`` bytes per second with a burst of ``burst`` bytes."""

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._tokens = self.burst
        self._clock = clock
        self._stamp = clock()

    async def take(self, amount: int) -> None:
        if self.rate is None:
            return
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # A batch larger than the burst goes once the bucket is full, else it never would.
            need = min(float(amount), self.burst)
            if self._tokens >= need:
                self._tokens -= amount
                return
            await asyncio.sleep((need - self._tokens) / self.rate)


ProgressCallback = Callable[[str, int], None]


class OutboxWorker:
    """Drains an :class:`Outbox` through one :class:`Transport` per destination."""

    def __init__(
        self,
        outbox: Outbox,
        transports: Mapping[str, Transport],
        signer: Signer,
        settings: WorkerSettings,
        *,
        clock: Callable[[], float] = time.time,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._outbox = outbox
        self._transports = dict(transports)
        self._signer = signer
        self._settings = settings
        self._clock = clock
        self._on_progress = on_progress
        self._bucket = TokenBucket(settings.max_bytes_per_s)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._wake = asyncio.Event()
        self._recovered = False
        #: Everything :meth:`run` did so far, pass after pass (a stopped run reports it).
        self.totals = DrainReport()

    @property
    def destinations(self) -> list[str]:
        return sorted(self._transports)

    def wake(self) -> None:
        """Drain now instead of at the next poll (the ``sync now`` command, a new row)."""
        self._wake.set()

    def late_ack(self, ack: Ack) -> None:
        """An ack that arrived after its batch timed out (give it to the transport's
        ``on_late_ack``, which verified it): the row is marked delivered instead of being
        sent again — only a row of the destination the ack names, still open."""
        if not ack.delivered or ack.destination is None:
            return  # a rejection is met again on the resend; an unbound ack settles nothing
        loop = asyncio.get_running_loop()
        loop.run_in_executor(
            self._executor,
            functools.partial(self._outbox.mark_delivered, destination=ack.destination),
            [ack.message_id],
            self._clock(),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _db(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def recover(self) -> int:
        """Requeue rows a previous run left in flight; done once, before the first drain."""
        self._recovered = True
        count = await self._db(self._outbox.recover, self._clock())
        if count:
            log.info("sync: %d message(s) left in flight by the last run are queued again", count)
        return count

    async def drain(self) -> DrainReport:
        """Send everything that is due now, destination by destination; then return."""
        if not self._recovered:
            await self.recover()
        report = DrainReport()
        expired = await self._db(self._outbox.expire, self._clock())
        report.expired += len(expired)
        report.dead += len(expired)
        open_destinations = set(await self._db(self._outbox.destinations))
        targets = [d for d in self.destinations if d in open_destinations]
        # One destination's failure must not abort the others mid-batch: all finish, then
        # the first error is raised.
        results = await asyncio.gather(
            *(self._drain_destination(d, report) for d in targets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Drain, then wait for :meth:`wake` or the poll interval, until ``stop`` is set."""
        while not stop.is_set():
            # Cleared before the pass, so a wake() arriving during it starts the next at once.
            self._wake.clear()
            try:
                self.totals.add(await self.drain())
            except Exception:  # the loop must outlive a bad pass; the error is logged
                log.exception("sync: drain pass failed")
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(
                    waiters, timeout=self._settings.idle_poll_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _drain_destination(self, destination: str, report: DrainReport) -> None:
        try:
            await self._pipeline(destination, report)
        except BaseExceptionGroup as group:
            # One failure (the key store, the store) is what the caller should see, not a
            # group: the CLI prints an EtikaError's message, never a traceback.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _pipeline(self, destination: str, report: DrainReport) -> None:
        transport = self._transports[destination]
        settings = self._settings
        slots = asyncio.Semaphore(max(1, settings.max_in_flight // settings.batch_size))
        stalled = asyncio.Event()  # a batch failed: stop claiming, let in-flight ones finish
        async with asyncio.TaskGroup() as group:
            while not stalled.is_set():
                await slots.acquire()
                if stalled.is_set():
                    slots.release()
                    break
                rows = await self._db(
                    self._outbox.claim, destination, settings.batch_size, self._clock()
                )
                if not rows:
                    slots.release()
                    break
                try:
                    rows, envelopes = await self._db(self._sign, rows, report)
                except BaseException:
                    # The signer failed (key store unavailable): not the rows' fault. Put
                    # them back on their backoff instead of leaving them in flight.
                    await self._db(self._release, rows, "signing failed")
                    raise
                if not rows:
                    slots.release()
                    continue
                if self._bucket.rate is not None:
                    await self._bucket.take(sum(len(e.to_json()) for e in envelopes))
                group.create_task(
                    self._send(destination, transport, rows, envelopes, report, slots, stalled),
                    name=f"sync-send-{destination}-{rows[0].id}",
                )

    def _sign(
        self, rows: Sequence[OutboxRow], report: DrainReport
    ) -> tuple[list[OutboxRow], list[Envelope]]:
        """Envelopes for the rows that can form one; the others are dead-lettered (a row
        that breaks the wire contract — a kind unusable in a topic, a payload that is not
        JSON — would fail the same way on every retry)."""
        good: list[OutboxRow] = []
        envelopes: list[Envelope] = []
        bad: list[tuple[str, str]] = []
        for row in rows:
            try:
                envelope = self._envelope(row)
                envelope.to_json()  # serialise here, in the store thread, not on the loop
            except (ValueError, TypeError) as exc:
                bad.append((row.message_id, f"cannot form an uplink envelope: {exc}"))
                continue
            good.append(row)
            envelopes.append(envelope)
        now = self._clock()
        for message_id, reason in bad:
            self._outbox.dead_letter([message_id], reason, now)
            report.dead += 1
            report.errors.append(f"{rows[0].destination}: {reason}")
        return good, envelopes

    def _release(self, rows: Sequence[OutboxRow], why: str) -> None:
        at = self._clock() + self._settings.retry.delay(1)
        self._outbox.retry_later([(row.message_id, at) for row in rows], why)

    def _signer_for(self, row: OutboxRow) -> Signer:
        """The terminal key, except for a key rotation's report: that one is signed with
        the previous key, which the platform trusts, so it can register the new key."""
        announced_with = row.payload.get(ANNOUNCED_WITH) if row.kind == "keys_rotated" else None
        if isinstance(announced_with, int) and isinstance(self._signer, RotatingSigner):
            return self._signer.for_version(announced_with)
        return self._signer

    def _envelope(self, row: OutboxRow) -> Envelope:
        created = datetime.fromtimestamp(row.created_at, UTC)
        return build_envelope(
            self._signer_for(row),
            terminal_id=self._settings.terminal_id,
            kind=row.kind,
            seq=row.id,
            idempotency_key=row.idempotency_key,
            payload=row.payload,
            message_id=row.message_id,
            created_at=created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )

    async def _send(
        self,
        destination: str,
        transport: Transport,
        rows: Sequence[OutboxRow],
        envelopes: Sequence[Envelope],
        report: DrainReport,
        slots: asyncio.Semaphore,
        stalled: asyncio.Event,
    ) -> None:
        try:
            try:
                acks = await transport.deliver(envelopes, self._settings.ack_timeout_s)
                error = None
            except TransportError as exc:
                acks, error = {}, str(exc)
            ok, delivered = await self._db(self._settle, destination, rows, acks, error, report)
            if not ok:
                stalled.set()
            if delivered and self._on_progress is not None:
                self._on_progress(destination, delivered)
        finally:
            slots.release()

    def _settle(
        self,
        destination: str,
        rows: Sequence[OutboxRow],
        acks: Mapping[str, Ack],
        error: str | None,
        report: DrainReport,
    ) -> tuple[bool, int]:
        """Record a batch's outcome (runs in the store thread): (not stalled, delivered)."""
        now = self._clock()
        delivered: list[str] = []
        rejected: list[tuple[str, str]] = []
        retries: list[tuple[str, float]] = []
        exhausted: list[str] = []
        policy = self._settings.retry
        for row in rows:
            ack = acks.get(row.message_id)
            if ack is not None and ack.delivered:
                delivered.append(row.message_id)
            elif ack is not None:
                # A receiver's reason is outside text (a PSP's answer, the platform's words):
                # storable whatever it holds, or dead-lettering it would fail in the store.
                rejected.append((row.message_id,
                                 storable_text(ack.reason or "rejected without a reason")))
            else:
                if error is None:
                    report.unacknowledged += 1
                if policy.exhausted(row.attempts):
                    exhausted.append(row.message_id)
                else:
                    retries.append((row.message_id, now + policy.delay(row.attempts)))
        if delivered:
            self._outbox.mark_delivered(delivered, now)
            report.delivered += len(delivered)
        for message_id, reason in rejected:
            self._outbox.dead_letter([message_id], f"rejected by the receiver: {reason}", now)
        report.rejected += len(rejected)
        report.dead += len(rejected)
        if retries or exhausted:
            why = storable_text(
                error or f"no acknowledgement within {self._settings.ack_timeout_s:g} s")
            if retries:
                self._outbox.retry_later(retries, why)
                report.retried += len(retries)
            if exhausted:
                self._outbox.dead_letter(exhausted, f"gave up after retries: {why}", now)
                report.dead += len(exhausted)
            report.errors.append(f"{destination}: {why}")
            self._outbox.note_result(destination, ok=False, now=now, error=why)
        else:
            if delivered:
                self._outbox.note_result(destination, ok=True, now=now)
            if rejected:
                reason = f"rejected by the receiver: {rejected[-1][1]}"
                self._outbox.note_result(destination, ok=False, now=now, error=reason)
        return not (retries or exhausted), len(delivered)
