"""Two platform workers committing conflicting journal checkpoints of one terminal at once:
the link check runs inside each commit, so the second is refused — on SQLite and on
PostgreSQL, with two storage connections whose transactions overlap."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from edge_sync.platform.records import IngestOutcome, StoredCheckpoint, Uplink
from edge_sync.platform.storage import PlatformStorage, open_storage
from tests.edge_sync.platform.conftest import TERMINAL_ID
from tests.fixtures.postgres import POSTGRES_URL

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432

H = {n: f"{n:064x}" for n in range(100)}
RECEIVED = "2026-12-03T10:00:00.000Z"


def checkpoint_uplink(entry: int, prev: int, message_id: str = "") -> Uplink:
    """A verified ``journal_checkpoint`` uplink of ``entry`` naming ``prev`` (honest hashes)."""
    message_id = message_id or f"cp-{entry}"
    return Uplink(message_id=message_id, terminal_id=TERMINAL_ID, kind="journal_checkpoint",
                  seq=entry, idempotency_key=message_id, created_at=RECEIVED,
                  envelope_json=f'{{"message_id": "{message_id}"}}',
                  checkpoint=StoredCheckpoint(entry, H[entry], prev, H[prev], RECEIVED,
                                              message_id))


@contextmanager
def holding_the_terminal(database: str) -> Iterator[Any]:
    """A third connection holding what every ingest of the terminal needs to commit (its
    row on PostgreSQL, the write lock on SQLite) until the block ends: ingests started
    meanwhile are all in flight together."""
    if database.startswith("postgresql://"):
        import psycopg

        schema = dict(parse_qsl(urlsplit(database).query))["schema"]
        with psycopg.connect(POSTGRES_URL) as conn:  # one transaction until the block ends
            conn.execute(f'SET LOCAL search_path TO "{schema}"')
            conn.execute("SELECT 1 FROM platform_terminals WHERE terminal_id = %s FOR UPDATE",
                         (TERMINAL_ID,))
            yield conn
    else:
        conn = sqlite3.connect(database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()


def wait_until_both_wait(holder: Any, database: str) -> None:
    """On PostgreSQL, until both ingests wait behind the holder (one on the terminal's row,
    the other on the first); SQLite has no view of its waiters: both are at their BEGIN
    IMMEDIATE or about to be, and the outcome is the same either way."""
    if not database.startswith("postgresql://"):
        return
    import psycopg

    mine = holder.info.backend_pid
    with psycopg.connect(POSTGRES_URL, autocommit=True) as observer:
        for _ in range(6000):
            rows = observer.execute(
                "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                "WHERE datname = current_database()").fetchall()
            behind = {mine}
            while True:
                more = {pid for pid, blockers in rows if set(blockers) & behind} - behind
                if not more:
                    break
                behind |= more
            if len(behind) == 3:
                return
            observer.execute("SELECT pg_sleep(0.01)")
    pytest.fail("the two ingests never both waited behind the held terminal row")


@pytest.mark.parametrize(("one", "other"), [((9, 5), (14, 5)), ((9, 5), (9, 5))],
                         ids=["a-fork", "the-same-entry-twice"])
def test_of_two_conflicting_checkpoints_committed_at_once_the_second_is_refused(
    database: str, one: tuple[int, int], other: tuple[int, int]
) -> None:
    """Two workers each hold one of two checkpoints that cannot both be the terminal's
    (two successors of entry 5; the same entry in two messages); each links to what is
    committed. Their transactions overlap: exactly one is stored, the other is refused as
    not linking, and the stored chain holds the winner only."""
    worker_a, worker_b = open_storage(database), open_storage(database)
    try:
        worker_a.register_key(TERMINAL_ID, 1, "pem", RECEIVED)
        assert worker_a.ingest([checkpoint_uplink(5, 0)], RECEIVED)[0].new
        first, second = checkpoint_uplink(*one), checkpoint_uplink(*other, "cp-other")
        with ThreadPoolExecutor(2) as pool, holding_the_terminal(database) as holder:
            futures = [pool.submit(worker.ingest, [uplink], RECEIVED)
                       for worker, uplink in ((worker_a, first), (worker_b, second))]
            wait_until_both_wait(holder, database)
        outcomes: list[IngestOutcome] = [f.result()[0] for f in futures]
        assert sorted(o.new for o in outcomes) == [False, True]
        loser = next(o for o in outcomes if not o.new)
        assert "does not link" in (loser.refused or "")
        winner = next(o for o in outcomes if o.new)
        _, at_five, above = worker_b.journal_checkpoints_around(TERMINAL_ID, 5)
        assert at_five is not None and above is not None
        assert (at_five.message_id, above.message_id) == ("cp-5", winner.message_id)
        assert worker_b.journal_checkpoints_around(TERMINAL_ID, above.entry_id)[2] is None
        assert worker_b.message_count(TERMINAL_ID) == 2
    finally:
        worker_a.close()
        worker_b.close()


def test_a_batch_is_checked_against_itself_in_the_commit(storage: PlatformStorage) -> None:
    """Within one batch too, a checkpoint is checked against those stored before it in
    the same transaction: of a fork in one batch, one is refused."""
    storage.register_key(TERMINAL_ID, 1, "pem", RECEIVED)
    outcomes = storage.ingest([checkpoint_uplink(5, 0), checkpoint_uplink(9, 5),
                               checkpoint_uplink(14, 5)], RECEIVED)
    assert [o.new for o in outcomes][:1] == [True]
    assert sorted(o.refused is None for o in outcomes[1:]) == [False, True]


def test_gaps_open_split_and_close_as_checkpoints_arrive(storage: PlatformStorage) -> None:
    """Each gap runs from just after the nearest stored checkpoint below the missing one to
    that one; a checkpoint arriving inside a gap splits it, its missing one closes it."""
    storage.register_key(TERMINAL_ID, 1, "pem", RECEIVED)

    def gaps_after(entry: int, prev: int) -> list[tuple[int, int, int]]:
        outcome, = storage.ingest([checkpoint_uplink(entry, prev)], RECEIVED)
        assert outcome.new, outcome.refused
        return [(g.first_entry, g.last_entry, g.checkpoint_entry)
                for g in storage.checkpoint_gaps(TERMINAL_ID)]

    assert gaps_after(5, 0) == []
    assert gaps_after(30, 25) == [(6, 25, 30)]
    assert gaps_after(14, 9) == [(6, 9, 14), (15, 25, 30)]
    assert gaps_after(25, 20) == [(6, 9, 14), (15, 20, 25)]
    assert gaps_after(9, 5) == [(15, 20, 25)]
    assert gaps_after(20, 14) == []
