"""Durable state changes per second against a bare sqlite3 insert loop on the same disk.

Each of our operations is one ``Store.record``: state row + outbox row + hash-chained
journal entry in one ``synchronous=FULL`` WAL transaction. The raw limit is a bare
``sqlite3`` loop committing one single-row INSERT per transaction with the same pragmas,
in the same directory, in the same run. Prints JSON ``{"ops_per_s", "raw_ops_per_s",
"ratio"}`` (target: ratio >= 0.5).

    .venv/bin/python bench/store.py [--ops N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from terminal.store import PRAGMAS, OutboxMessage, StateChange, Store


def raw_inserts(path: Path, ops: int, progress: Progress) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
    task = progress.add_task("raw sqlite3 inserts", total=ops)
    start = time.perf_counter()
    for _ in range(ops):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (str(uuid.uuid4()), '{"amount":1250}'))
        conn.execute("COMMIT")
        progress.advance(task)
    elapsed = time.perf_counter() - start
    conn.close()
    return ops / elapsed


def durable_changes(path: Path, ops: int, progress: Progress) -> float:
    store = Store.open(path)
    task = progress.add_task("durable state changes", total=ops)
    states = ("created", "authorising", "completed")
    payment_id = ""
    start = time.perf_counter()
    for n in range(ops):
        state = states[n % 3]
        if state == "created":
            payment_id = str(uuid.uuid4())
        fields = {"amount_minor": 1250, "currency": "MAD"} if state == "created" else {}
        outbox = [OutboxMessage("platform", "transaction", {"id": payment_id, "s": state},
                                payment_id)]
        store.record(StateChange("payment", payment_id, state, fields, outbox))
        progress.advance(task)
    elapsed = time.perf_counter() - start
    store.close()
    return ops / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1500)
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        with Progress(transient=True) as progress:
            # Alternate to spread the machine's noise over both measurements.
            raw = [raw_inserts(Path(tmp) / "raw1.db", args.ops // 2, progress)]
            ours = [durable_changes(Path(tmp) / "ours1.db", args.ops // 2, progress)]
            raw.append(raw_inserts(Path(tmp) / "raw2.db", args.ops // 2, progress))
            ours.append(durable_changes(Path(tmp) / "ours2.db", args.ops // 2, progress))
    ops_per_s = sum(ours) / 2
    raw_ops_per_s = sum(raw) / 2
    print(json.dumps({
        "benchmark": "store",
        "ops_per_s": round(ops_per_s, 1),
        "raw_ops_per_s": round(raw_ops_per_s, 1),
        "ratio": round(ops_per_s / raw_ops_per_s, 3),
        "target_ratio": 0.5,
    }))


if __name__ == "__main__":
    main()
