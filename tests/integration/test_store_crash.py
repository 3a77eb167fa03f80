"""Crash safety: a writer SIGKILLed at random moments never leaves a torn state change."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal.store import Store

KILLS = 50


def _check_consistent(path: Path) -> int:
    with Store.open(path) as store:
        assert store.integrity_check() == "ok"
        entries = store.verify_journal()
        conn = store.connection
        outbox_ids = {r[0] for r in conn.execute("SELECT message_id FROM outbox")}
        journalled: set[str] = set()
        last_state: dict[str, str] = {}
        for entity_id, to_state, data in conn.execute(
            "SELECT entity_id, to_state, data FROM audit_journal ORDER BY id"
        ):
            ids = json.loads(data).get("outbox", [])
            missing = set(ids) - outbox_ids
            assert not missing, f"journal names outbox rows that do not exist: {missing}"
            journalled.update(ids)
            last_state[entity_id] = to_state
        assert outbox_ids == journalled, "outbox rows without the state change that made them"
        states = dict(conn.execute("SELECT id, status FROM payments").fetchall())
        assert states == last_state, "a payment's state differs from its journal"
        return entries


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    """50 SIGKILLs mid-write: the store opens, checks ok, the journal verifies, nothing torn."""
    path = tmp_path / "etika.db"
    Store.open(path).close()
    rng = random.Random(20261122)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    previous = 0
    progressed = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.store_writer", str(path)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()
        entries = _check_consistent(path)
        assert entries >= previous
        progressed += entries > previous
        previous = entries
    assert progressed > KILLS // 2, "the writer rarely got to write: the test proves little"
