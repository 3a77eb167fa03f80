"""A message id belongs to its terminal: another terminal cannot pre-empt it (#12 item 4)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_sync.messages import build_envelope
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage, open_storage
from edge_sync.platform.storage.schema import MIGRATIONS_TABLE, shipped_migrations
from edge_sync.signing import SoftwareSigner

_PAYLOAD = {"transaction_id": "tx-b-1", "amount_minor": 4200, "currency": "MAD",
            "business_date": "2026-11-21", "state": "completed"}


def test_a_message_id_taken_by_another_terminal_does_not_refuse_the_real_one(
    storage: PlatformStorage,
) -> None:
    """Terminal A publishing B's next message id first leaves B's transaction accepted."""
    attacker, victim = SoftwareSigner.generate(), SoftwareSigner.generate()
    storage.register_key("T-A", 1, attacker.public_key_pem().decode(), "2026-11-21T00:00:00Z")
    storage.register_key("T-B", 1, victim.public_key_pem().decode(), "2026-11-21T00:00:00Z")
    stolen_id = "0b0b0b0b-0000-4000-8000-000000000001"
    squat = build_envelope(attacker, terminal_id="T-A", kind="note", seq=1,
                           idempotency_key="squat", payload={}, message_id=stolen_id)
    real = build_envelope(victim, terminal_id="T-B", kind="transaction", seq=7,
                          idempotency_key="tx-b-1", payload=_PAYLOAD, message_id=stolen_id)
    ingestor = Ingestor(storage)
    assert [a.status for a in ingestor.ingest([RawUplink("T-A", squat.to_json(), "note")])] == [
        "accepted"
    ]
    ack, = ingestor.ingest([RawUplink("T-B", real.to_json(), "transaction")])
    assert (ack.message_id, ack.status) == (stolen_id, "accepted")
    assert [(t.terminal_id, t.amount_minor) for t in storage.transaction_totals()] == [
        ("T-B", 4200)
    ]
    assert storage.message_count("T-A") == storage.message_count("T-B") == 1


def test_migration_keeps_messages_stored_before_it(tmp_path: Path) -> None:
    """A database at schema 1 keeps its messages, and their dedup, after the re-keying."""
    path = tmp_path / "platform.db"
    first = shipped_migrations()[0]
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in first.statements():
        conn.execute(statement)
    conn.execute(
        f"CREATE TABLE {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (1, ?, ?, 'then')",
                 (first.name, first.checksum))
    signer = SoftwareSigner.generate()
    conn.execute("INSERT INTO platform_terminals (terminal_id, registered_at) VALUES ('T-B', 'x')")
    conn.execute("INSERT INTO platform_terminal_keys VALUES ('T-B', 1, ?, 'x')",
                 (signer.public_key_pem().decode(),))
    old = build_envelope(signer, terminal_id="T-B", kind="note", seq=1, idempotency_key="n",
                         payload={})
    conn.execute(
        "INSERT INTO platform_messages VALUES (?, 'T-B', 'note', 1, 'n', ?, 'then', 1, ?)",
        (old.message_id, old.created_at, old.to_json().decode()),
    )
    conn.close()
    storage = open_storage(str(path))
    try:
        ack, = Ingestor(storage).ingest([RawUplink("T-B", old.to_json(), "note")])
        assert ack.status == "duplicate"
        assert storage.message_count("T-B") == 1
    finally:
        storage.close()
