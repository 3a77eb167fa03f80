"""The PoP stand-in's ledger: records, their status, and a hash-chained event log in SQLite.

Rules (the same the in-package fake :class:`edge_sync.pop_fake.InMemoryPopBackend` keeps, and
that one contract test checks on both):

* dedup on ``record_id``: the same id with the same content gets the same answer; with other
  content it is refused (``conflict``);
* one record per ``(terminal, sequence)``: a new record on a used sequence is a replay
  (``replayed_sequence``); ``created_at`` must rise with ``sequence`` (``out_of_order``);
* a refund or cancel record must refer to a sale of the same terminal (``unknown_sale``);
* ``created_at`` older than ``max_record_age_s`` or in the future is refused (``stale``);
* a cancel for a record not seen yet leaves a tombstone: the late record is then answered
  ``cancelled`` and never enters the ledger as accepted.

Every accepted record, confirmation and cancellation is appended to ``ledger``; each entry's
``hash`` is SHA-256 over the previous entry's hash and the entry's canonical JSON, so a
changed or removed entry breaks :meth:`PopLedger.verify_chain`. Records are confirmed
``confirm_delay_s`` after acceptance (lazily, when anything next touches the ledger); the
``pop_reference`` is taken from the confirming entry's hash.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_sync.messages import canonical_json
from edge_sync.pop import PopReceipt, PopRecord
from simulators.pop.errors import PopLedgerError

__all__ = ["GENESIS", "PopLedger", "Refusal"]

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id     TEXT PRIMARY KEY,
    terminal_id   TEXT,
    sequence      INTEGER,
    created_at    TEXT,
    kind          TEXT,
    refers_to     TEXT,
    currency      TEXT,
    amount_minor  INTEGER,
    content_hash  TEXT,
    payload       TEXT,
    status        TEXT NOT NULL,
    pop_reference TEXT,
    reason        TEXT,
    confirm_due   REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_sequence ON records (terminal_id, sequence)
    WHERE payload IS NOT NULL;
CREATE TABLE IF NOT EXISTS ledger (
    entry     INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    event     TEXT NOT NULL,
    body      TEXT NOT NULL,
    at        TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refusals (
    code  TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: a short ``code``, a sentence, and the HTTP status."""

    code: str
    reason: str
    http_status: int = 409


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class PopLedger:
    """The ledger of one stand-in process (one SQLite file; ``":memory:"`` for tests)."""

    def __init__(self, path: Path | str, *, confirm_delay_s: float = 0.0,
                 max_record_age_s: float = 30 * 86400, max_skew_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        if confirm_delay_s < 0:
            raise ValueError("confirm_delay_s cannot be negative")
        self.confirm_delay_s = confirm_delay_s
        self.max_record_age_s = max_record_age_s
        self.max_skew_s = max_skew_s
        self._clock = clock
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (what the tests and the demo do); only
            # a power cut may lose the last commits, acceptable for a stand-in, and it keeps
            # an fsync off every answer.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise PopLedgerError(f"cannot open the PoP ledger {path}: {exc}; give another "
                                 "--data-dir or move the file away", path=str(path)) from exc

    @property
    def connection(self) -> sqlite3.Connection:
        """The ledger's SQLite connection (the key registry and token log share the file)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    # --- requests ---------------------------------------------------------------------------

    def submit(self, record: PopRecord) -> PopReceipt | Refusal:
        """Apply the rules to ``record``; an accepted one is appended to the ledger."""
        self.confirm_due()
        now = self._clock()
        digest = record.content_hash()
        with self._tx():
            row = self._row(record.record_id)
            if row is not None:
                if row["payload"] is None:  # tombstone: cancelled before it arrived
                    self._db.execute(
                        "UPDATE records SET terminal_id=?, sequence=?, created_at=?, kind=?, "
                        "refers_to=?, currency=?, amount_minor=?, content_hash=?, payload=? "
                        "WHERE record_id=?", (*self._columns(record, digest),
                                              str(record.record_id)))
                    return self._receipt(row)
                if row["content_hash"] != digest:
                    return self._refuse("conflict", f"record id {record.record_id} was "
                                        "already used with other content")
                return self._receipt(row)
            refusal = self._check_new(record, now)
            if refusal is not None:
                return self._refuse(refusal.code, refusal.reason, refusal.http_status)
            return self._accept(record, digest, now)

    def reject_next(self, record: PopRecord, reason: str) -> PopReceipt:
        """Store ``record`` as rejected (the ``reject`` fault), unless already known."""
        with self._tx():
            row = self._row(record.record_id)
            if row is not None:
                return self._receipt(row)
            self._db.execute(
                "INSERT INTO records (terminal_id, sequence, created_at, kind, refers_to, "
                "currency, amount_minor, content_hash, payload, record_id, status, reason) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,'rejected',?)",
                (*self._columns(record, record.content_hash()), str(record.record_id),
                 reason))
            self._count("rejected_by_consensus")
            return PopReceipt(record.record_id, "rejected", None, reason)

    def is_new(self, record: PopRecord) -> bool:
        return self._row(record.record_id) is None

    def cancel(self, record_id: Any, reason: str) -> PopReceipt:
        """Cancel a record (a tombstone when it has not arrived); idempotent."""
        self.confirm_due()
        with self._tx():
            row = self._row(record_id)
            if row is None:
                self._db.execute("INSERT INTO records (record_id, status, reason) "
                                 "VALUES (?, 'cancelled', ?)", (str(record_id), reason))
                self._append(str(record_id), "cancel", {"reason": reason, "tombstone": True})
            elif row["status"] in ("pending", "confirmed"):
                self._db.execute("UPDATE records SET status='cancelled', reason=?, "
                                 "confirm_due=NULL WHERE record_id=?", (reason, str(record_id)))
                self._append(str(record_id), "cancel", {"reason": reason})
            return self._receipt(self._row(record_id))

    def status(self, record_id: Any) -> PopReceipt | None:
        self.confirm_due()
        row = self._row(record_id)
        return None if row is None else self._receipt(row)

    def confirm_due(self) -> int:
        """Confirm every pending record whose delay has passed; how many were confirmed."""
        now = self._clock()
        due = self._db.execute(
            "SELECT record_id FROM records WHERE status='pending' AND confirm_due <= ? "
            "ORDER BY confirm_due, rowid", (now,)).fetchall()
        if not due:
            return 0
        with self._tx():
            for row in due:
                self._confirm(row["record_id"])
        return len(due)

    # --- reconciliation ---------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts and sums per currency and status (and kind), refusals, the chain head."""
        self.confirm_due()
        by_status: dict[str, int] = {}
        by_currency: dict[str, dict[str, dict[str, int]]] = {}
        by_kind: dict[str, dict[str, dict[str, int]]] = {}
        for row in self._db.execute(
                "SELECT status, currency, kind, COUNT(*) AS n, "
                "COALESCE(SUM(amount_minor), 0) AS total FROM records WHERE payload IS NOT NULL "
                "GROUP BY status, currency, kind"):
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
            for table, key in ((by_currency, row["status"]), (by_kind, row["kind"])):
                cell = table.setdefault(row["currency"], {}).setdefault(
                    key, {"count": 0, "amount_minor": 0})
                cell["count"] += row["n"]
                cell["amount_minor"] += row["total"]
        head = self._db.execute("SELECT entry, hash FROM ledger ORDER BY entry DESC LIMIT 1"
                                ).fetchone()
        tombstones = self._db.execute("SELECT COUNT(*) FROM records WHERE payload IS NULL"
                                      ).fetchone()[0]
        return {
            "records": sum(by_status.values()),
            "by_status": by_status,
            "by_currency": by_currency,
            "by_kind": by_kind,
            "tombstones": tombstones,
            "refused": {r["code"]: r["count"] for r in self._db.execute(
                "SELECT code, count FROM refusals ORDER BY code")},
            "ledger_entries": head["entry"] if head else 0,
            "head_hash": head["hash"] if head else GENESIS,
        }

    def records(self) -> list[dict[str, Any]]:
        """Every record with its status (for reconciliation one to one)."""
        self.confirm_due()
        return [
            {"record_id": r["record_id"], "terminal_id": r["terminal_id"],
             "sequence": r["sequence"], "kind": r["kind"], "currency": r["currency"],
             "amount_minor": r["amount_minor"], "status": r["status"],
             "pop_reference": r["pop_reference"], "reason": r["reason"]}
            for r in self._db.execute("SELECT * FROM records ORDER BY rowid")]

    def verify_chain(self) -> int:
        """Recompute every entry's hash; the number of entries, or :class:`PopLedgerError`."""
        previous = GENESIS
        count = 0
        for row in self._db.execute("SELECT * FROM ledger ORDER BY entry"):
            expected = _entry_hash(previous, row["entry"], row["record_id"], row["event"],
                                   json.loads(row["body"]), row["at"])
            if row["prev_hash"] != previous or row["hash"] != expected:
                raise PopLedgerError(f"the PoP ledger's hash chain breaks at entry "
                                     f"{row['entry']}", entry=row["entry"])
            previous = row["hash"]
            count += 1
        return count

    def count_refusal(self, code: str) -> None:
        """Count a refusal decided outside the ledger (bad signature, redirected, stale)."""
        with self._tx():
            self._count(code)

    # --- internals --------------------------------------------------------------------------

    def _tx(self) -> Any:
        return _Transaction(self._db)

    def _row(self, record_id: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM records WHERE record_id=?", (str(record_id),)).fetchone()
        return row

    @staticmethod
    def _columns(record: PopRecord, digest: str) -> tuple[Any, ...]:
        payload = record.as_payload()
        return (record.terminal_id, record.sequence, record.created_at, record.kind,
                payload["refers_to"], record.currency, record.amount_minor, digest,
                canonical_json(payload).decode())

    @staticmethod
    def _receipt(row: sqlite3.Row | None) -> PopReceipt:
        if row is None:  # read back inside the transaction that wrote it: cannot happen
            raise PopLedgerError("a PoP record vanished from the ledger mid-transaction")
        return PopReceipt(uuid.UUID(row["record_id"]), row["status"], row["pop_reference"],
                          row["reason"])

    def _check_new(self, record: PopRecord, now: float) -> Refusal | None:
        created = datetime.fromisoformat(record.created_at).timestamp()
        if created < now - self.max_record_age_s:
            return Refusal("stale", f"record created {record.created_at} is older than "
                           f"{self.max_record_age_s:g} s")
        if created > now + self.max_skew_s:
            return Refusal("stale", f"record created {record.created_at} is in the future")
        used = self._db.execute(
            "SELECT record_id FROM records WHERE terminal_id=? AND sequence=? AND payload IS "
            "NOT NULL", (record.terminal_id, record.sequence)).fetchone()
        if used is not None:
            return Refusal("replayed_sequence", f"sequence {record.sequence} already used by "
                           f"record {used['record_id']} (replay)")
        before = self._db.execute(
            "SELECT record_id, created_at FROM records WHERE terminal_id=? AND sequence<? "
            "AND payload IS NOT NULL ORDER BY sequence DESC LIMIT 1",
            (record.terminal_id, record.sequence)).fetchone()
        after = self._db.execute(
            "SELECT record_id, created_at FROM records WHERE terminal_id=? AND sequence>? "
            "AND payload IS NOT NULL ORDER BY sequence LIMIT 1",
            (record.terminal_id, record.sequence)).fetchone()
        mine = datetime.fromisoformat(record.created_at)
        if (before is not None and datetime.fromisoformat(before["created_at"]) > mine) or (
                after is not None and datetime.fromisoformat(after["created_at"]) < mine):
            other = before if before is not None and datetime.fromisoformat(
                before["created_at"]) > mine else after
            return Refusal("out_of_order", f"sequence {record.sequence} and created_at "
                           f"{record.created_at} are out of order with record "
                           f"{other['record_id']}")
        if record.refers_to is not None:
            sale = self._db.execute(
                "SELECT kind, terminal_id FROM records WHERE record_id=? AND payload IS NOT "
                "NULL", (str(record.refers_to),)).fetchone()
            if sale is None or sale["kind"] != "sale" or sale["terminal_id"] != (
                    record.terminal_id):
                return Refusal("unknown_sale", f"refers to unknown sale {record.refers_to}")
        return None

    def _accept(self, record: PopRecord, digest: str, now: float) -> PopReceipt:
        self._db.execute(
            "INSERT INTO records (terminal_id, sequence, created_at, kind, refers_to, "
            "currency, amount_minor, content_hash, payload, record_id, status, confirm_due) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,'pending',?)",
            (*self._columns(record, digest), str(record.record_id),
             now + self.confirm_delay_s))
        self._append(str(record.record_id), "submit", record.as_payload())
        if self.confirm_delay_s == 0:
            self._confirm(str(record.record_id))
        return self._receipt(self._row(record.record_id))

    def _confirm(self, record_id: str) -> None:
        digest = self._append(record_id, "confirm", {})
        self._db.execute("UPDATE records SET status='confirmed', confirm_due=NULL, "
                         "pop_reference=? WHERE record_id=?", (f"pop-{digest[:16]}", record_id))

    def _append(self, record_id: str, event: str, body: dict[str, Any]) -> str:
        head = self._db.execute("SELECT entry, hash FROM ledger ORDER BY entry DESC LIMIT 1"
                                ).fetchone()
        entry = (head["entry"] + 1) if head else 1
        previous = head["hash"] if head else GENESIS
        at = _iso(self._clock())
        digest = _entry_hash(previous, entry, record_id, event, body, at)
        self._db.execute("INSERT INTO ledger VALUES (?,?,?,?,?,?,?)",
                         (entry, record_id, event, canonical_json(body).decode(), at,
                          previous, digest))
        return digest

    def _refuse(self, code: str, reason: str, http_status: int = 409) -> Refusal:
        self._count(code)
        return Refusal(code, reason, http_status)

    def _count(self, code: str) -> None:
        self._db.execute("INSERT INTO refusals VALUES (?, 1) ON CONFLICT(code) DO UPDATE SET "
                         "count = count + 1", (code,))


def _entry_hash(previous: str, entry: int, record_id: str, event: str, body: dict[str, Any],
                at: str) -> str:
    content = canonical_json({"entry": entry, "record_id": record_id, "event": event,
                              "body": body, "at": at})
    return hashlib.sha256(previous.encode("ascii") + content).hexdigest()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
