"""The Outbox rules, checked on the SQLite store's outbox and on the in-memory fake alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.outbox import Outbox
from terminal.store import OutboxMessage, StateChange, Store
from terminal.store.outbox import SqliteOutbox

NOW = 2_000_000_000.0  # after the wall clock Store.record stamps rows with


class Harness:
    """An outbox plus a way to write rows the way the terminal does."""

    def __init__(self, outbox: Outbox, add: Callable[..., str], store: Store | None) -> None:
        self.outbox = outbox
        self._add = add
        self.store = store

    def add(self, destination: str = "platform", kind: str = "transaction", **kw: Any) -> str:
        return self._add(destination, kind, **kw)

    def state(self, message_id: str) -> str:
        if self.store is None:
            assert isinstance(self.outbox, MemoryOutbox)
            return self.outbox.state_of(message_id)
        row = self.store.connection.execute(
            "SELECT state FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        return str(row[0])

    def kinds(self) -> list[str]:
        if self.store is None:
            assert isinstance(self.outbox, MemoryOutbox)
            return [r.row.kind for r in self.outbox.rows()]
        return [r[0] for r in self.store.connection.execute("SELECT kind FROM outbox ORDER BY id")]


@pytest.fixture(params=["memory", "sqlite"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        memory = MemoryOutbox()

        def add_memory(destination: str, kind: str, **kw: Any) -> str:
            return memory.enqueue(
                destination, kind, kw.get("payload", {}), kw.get("key", kind), NOW,
                priority=kw.get("priority", 100), ttl_s=kw.get("ttl_s"), ref_id=kw.get("ref_id"),
            )

        yield Harness(memory, add_memory, None)
        return
    store = Store.open(tmp_path / "etika.db")

    def add_sqlite(destination: str, kind: str, **kw: Any) -> str:
        message = OutboxMessage(
            destination=destination, kind=kind, payload=kw.get("payload", {}),
            idempotency_key=kw.get("key", kind), ref_id=kw.get("ref_id"),
            priority=kw.get("priority", 100), ttl_s=kw.get("ttl_s"),
        )
        store.record(StateChange(entity="test", entity_id=kw.get("ref_id") or "x",
                                 to_state=None, action="test", outbox=(message,)))
        # Store.record stamps rows with the wall clock; pin them to NOW for the test clock.
        with store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET created_at = ?, next_attempt_at = ?,"
                " expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE ? END"
                " WHERE message_id = ?",
                (NOW, NOW, NOW + (kw.get("ttl_s") or 0), message.message_id),
            )
        return message.message_id

    yield Harness(SqliteOutbox(store), add_sqlite, store)
    store.close()


def test_claim_order_is_priority_then_id(harness: Harness) -> None:
    """Claims follow (priority, id): a reversal first, then rows in write order."""
    a = harness.add(payload={"n": 1})
    b = harness.add(payload={"n": 2})
    rev = harness.add(kind="reversal", priority=10)
    rows = harness.outbox.claim("platform", 10, NOW)
    assert [r.message_id for r in rows] == [rev, a, b]
    assert rows[1].payload == {"n": 1} and rows[1].attempts == 1
    assert all(harness.state(m) == "in_flight" for m in (a, b, rev))
    assert harness.outbox.claim("platform", 10, NOW) == []


def test_claim_stops_at_a_row_backing_off(harness: Harness) -> None:
    """A row waiting for its retry blocks the rows behind it in its destination only."""
    a, b = harness.add(), harness.add()
    other = harness.add(destination="pop")
    harness.outbox.claim("platform", 1, NOW)
    assert harness.outbox.retry_later([(a, NOW + 30)], "timeout") == 1
    assert harness.outbox.claim("platform", 10, NOW) == []
    assert [r.message_id for r in harness.outbox.claim("pop", 10, NOW)] == [other]
    assert [r.message_id for r in harness.outbox.claim("platform", 10, NOW + 31)] == [a, b]


def test_pop_record_waits_for_financial_leg(harness: Harness) -> None:
    """A pop_record is not claimable while an earlier PSP row with its ref_id is open; the
    payment's platform record does not hold it back."""
    harness.add(destination="platform", kind="transaction", ref_id="pay-1")
    fin = harness.add(destination="psp:cmi", kind="advice", ref_id="pay-1")
    pop = harness.add(destination="pop", kind="pop_record", ref_id="pay-1")
    unrelated = harness.add(destination="pop", kind="pop_record", ref_id="pay-2")
    assert harness.outbox.claim("pop", 10, NOW) == []
    harness.outbox.claim("psp:cmi", 10, NOW)
    harness.outbox.mark_delivered([fin], NOW)
    assert [r.message_id for r in harness.outbox.claim("pop", 10, NOW)] == [pop, unrelated]


def test_delivered_and_recover(harness: Harness) -> None:
    """Delivered rows stay delivered; recover() requeues only rows left in flight."""
    a, b = harness.add(), harness.add()
    harness.outbox.claim("platform", 10, NOW)
    assert harness.outbox.mark_delivered([a], NOW) == 1
    assert harness.outbox.recover(NOW) == 1
    assert (harness.state(a), harness.state(b)) == ("delivered", "pending")
    assert harness.outbox.mark_delivered([a], NOW) == 0
    assert harness.outbox.destinations() == ["platform"]


def test_dead_letter_writes_one_alert(harness: Harness) -> None:
    """Dead-lettering marks the row dead and queues an alert row for the platform."""
    a = harness.add(destination="pop", kind="pop_record")
    harness.outbox.claim("pop", 10, NOW)
    assert harness.outbox.dead_letter([a], "rejected: schema", NOW) == 1
    assert harness.state(a) == "dead"
    assert harness.kinds() == ["pop_record", "alert"]
    alert = harness.outbox.claim("platform", 10, NOW)[0]
    assert alert.payload["alert"] == "dead_letter" and alert.payload["message_id"] == a
    harness.outbox.dead_letter([alert.message_id], "again", NOW)
    assert harness.kinds() == ["pop_record", "alert"]  # a dead alert raises no alert


def test_expire_only_past_ttl(harness: Harness) -> None:
    """expire() dead-letters pending rows whose time to live has passed, and only those."""
    short = harness.add(ttl_s=10)
    keep = harness.add(ttl_s=100)
    forever = harness.add()
    assert harness.outbox.expire(NOW + 50) == [short]
    assert [harness.state(m) for m in (short, keep, forever)] == ["dead", "pending", "pending"]


def test_status_reports_depth_age_and_results(harness: Harness) -> None:
    """status() gives depth, oldest age, dead count and the last success and error."""
    a = harness.add()
    harness.add()
    harness.outbox.claim("platform", 1, NOW)
    harness.outbox.mark_delivered([a], NOW)
    harness.outbox.note_result("platform", ok=True, now=NOW + 1)
    harness.outbox.note_result("platform", ok=False, now=NOW + 2, error="broker down")
    (status,) = harness.outbox.status(NOW + 10)
    assert (status.pending, status.delivered, status.dead) == (1, 1, 0)
    assert status.oldest_pending_age_s == pytest.approx(10)
    assert (status.last_success_at, status.last_error) == (NOW + 1, "broker down")
    assert status.as_dict()["depth"] == 1


def test_enqueue_adds_a_pending_row(harness: Harness) -> None:
    """enqueue() (downlink reports) adds a due row the next claim returns."""
    mid = harness.outbox.enqueue("platform", "alert", {"alert": "x"}, "k-1", NOW, priority=50)
    claimed = harness.outbox.claim("platform", 10, NOW + 1)
    assert [r.message_id for r in claimed] == [mid]


def test_requeue_dead_gives_rows_another_chance(harness: Harness) -> None:
    """requeue_dead() puts dead rows of a destination back to pending, due now, no TTL."""
    a = harness.add(destination="pop", kind="pop_record", ttl_s=1)
    other = harness.add(destination="psp:cmi", kind="advice", ttl_s=1)
    harness.outbox.expire(NOW + 5)
    assert harness.outbox.requeue_dead("pop", NOW + 10) == 1
    assert (harness.state(a), harness.state(other)) == ("pending", "dead")
    (row,) = harness.outbox.claim("pop", 10, NOW + 10)
    assert row.message_id == a and row.attempts == 1 and row.expires_at is None
    assert harness.outbox.requeue_dead(None, NOW + 10) == 1


def test_expired_status_report_raises_no_alert(harness: Harness) -> None:
    """A status report that outlived its TTL is dropped silently (the next one supersedes it)."""
    report = harness.add(kind="status", ttl_s=10)
    assert harness.outbox.expire(NOW + 60) == [report]
    assert harness.state(report) == "dead" and harness.kinds() == ["status"]
