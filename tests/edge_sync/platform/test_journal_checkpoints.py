"""The platform checks a terminal's signed journal checkpoints (#12 item 5): each links to
the one before, so a journal truncated or rewritten on the terminal is refused here, where
the terminal's file edits cannot reach — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_sync.messages import build_envelope
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from terminal.store import Store
from terminal.store.changes import StateChange
from terminal.store.checkpoints import CHECKPOINT_KIND, checkpoint_if_due, sign_checkpoint
from tests.edge_sync.platform.conftest import TERMINAL_ID
from tests.terminal.test_journal_checkpoints import _journalled, _rechain

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


def uplink_checkpoints(store: Store, signer: SoftwareSigner, ingestor: Ingestor) -> list[Any]:
    """Send the queued checkpoints as the worker would; the acks."""
    rows = store.connection.execute(
        "SELECT id, payload FROM outbox WHERE kind = ? AND state = 'pending' ORDER BY id",
        (CHECKPOINT_KIND,)).fetchall()
    acks = []
    for row_id, payload in rows:
        envelope = build_envelope(signer, terminal_id=TERMINAL_ID, kind=CHECKPOINT_KIND,
                                  seq=row_id, idempotency_key=f"cp-{row_id}",
                                  payload=json.loads(payload))
        acks += ingestor.ingest([RawUplink(TERMINAL_ID, envelope.to_json(), CHECKPOINT_KIND)])
        store.connection.execute("UPDATE outbox SET state = 'delivered' WHERE id = ?", (row_id,))
    return acks


@pytest.mark.parametrize(("keep", "edit"), [(3, None), (None, 2), (None, None)])
def test_a_truncated_or_rewritten_journal_breaks_the_link(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path,
    keep: int | None, edit: int | None,
) -> None:
    """Checkpoints of an untouched journal link and are accepted; after a truncation or a
    rewrite (hashes recomputed) the next one is refused, naming what happened."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    assert [a.status for a in uplink_checkpoints(store, registered, ingestor)] == ["accepted"]
    path = store.path
    store.close()
    if keep is not None or edit is not None:
        _rechain(path, keep=keep, edit=edit)
    store = Store.open(path)
    store.connection.execute("UPDATE outbox SET state = 'delivered'")
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    ack, = uplink_checkpoints(store, registered, ingestor)
    store.close()
    if keep is None and edit is None:
        assert ack.status == "accepted"
        return
    assert ack.status == "rejected"
    assert "truncated or rewritten" in (ack.reason or "")
    assert "truncated or rewritten" in storage.rejections(TERMINAL_ID, limit=1)[0].reason


def test_a_checkpoint_signed_by_another_key_is_refused(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """A checkpoint whose inner signature is not the terminal's key is refused."""
    ingestor = Ingestor(storage)
    store = _journalled(tmp_path)
    sign_checkpoint(store, SoftwareSigner.generate(), TERMINAL_ID, "end_of_day")
    ack, = uplink_checkpoints(store, registered, ingestor)
    store.close()
    assert ack.status == "rejected" and "does not verify" in (ack.reason or "")


def test_interval_checkpoints_are_checked_like_end_of_day_ones(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """Interval checkpoints (no end of day at all) link one to the next; a journal cut
    between two of them makes the platform refuse the second."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    first = checkpoint_if_due(store, registered, TERMINAL_ID, 900)
    assert first is not None and first.payload["reason"] == "interval"
    assert [a.status for a in uplink_checkpoints(store, registered, ingestor)] == ["accepted"]
    path = store.path
    store.close()
    _rechain(path, keep=3)
    store = Store.open(path)
    for i in range(4):
        store.record(StateChange("terminal", f"later{i}", None, action="report"))
    later = datetime.now(UTC) + timedelta(seconds=901)
    assert checkpoint_if_due(store, registered, TERMINAL_ID, 900, now=later) is not None
    ack, = uplink_checkpoints(store, registered, ingestor)
    store.close()
    assert ack.status == "rejected" and "truncated or rewritten" in (ack.reason or "")


def test_a_replayed_or_reordered_checkpoint_is_refused(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """An older checkpoint sent again after a newer one (even in a fresh, validly signed
    envelope) is refused: a replay cannot roll the platform's record of the journal back."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    first = sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    store.record(StateChange("terminal", "later", None, action="report"))
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    statuses = [a.status for a in uplink_checkpoints(store, registered, ingestor)]
    store.close()
    assert statuses == ["accepted", "accepted"]
    replay = build_envelope(registered, terminal_id=TERMINAL_ID, kind=CHECKPOINT_KIND,
                            seq=1000, idempotency_key="cp-replay",
                            payload={**first.payload, "signature": first.signature})
    ack, = ingestor.ingest([RawUplink(TERMINAL_ID, replay.to_json(), CHECKPOINT_KIND)])
    assert ack.status == "rejected" and "does not link" in (ack.reason or "")
