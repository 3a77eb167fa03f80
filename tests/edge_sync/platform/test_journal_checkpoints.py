"""The platform checks a terminal's signed journal checkpoints (#12 item 5): each links to
the one before, so a journal truncated or rewritten on the terminal is refused here, where
the terminal's file edits cannot reach — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_sync.messages import build_envelope, canonical_json
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


def _checkpoint_envelopes(store: Store, signer: SoftwareSigner) -> list[RawUplink]:
    """The queued checkpoints as signed uplinks, in the order the terminal queued them."""
    rows = store.connection.execute(
        "SELECT id, payload FROM outbox WHERE kind = ? AND state = 'pending' ORDER BY id",
        (CHECKPOINT_KIND,)).fetchall()
    store.connection.execute("UPDATE outbox SET state = 'delivered' WHERE kind = ?",
                             (CHECKPOINT_KIND,))
    return [RawUplink(TERMINAL_ID, build_envelope(
        signer, terminal_id=TERMINAL_ID, kind=CHECKPOINT_KIND, seq=row_id,
        idempotency_key=f"cp-{row_id}", payload=json.loads(payload)).to_json(), CHECKPOINT_KIND)
        for row_id, payload in rows]


def _three_checkpoints(store: Store, signer: SoftwareSigner) -> list[RawUplink]:
    for round_ in range(3):
        store.record(StateChange("terminal", f"round{round_}", None, action="report"))
        sign_checkpoint(store, signer, TERMINAL_ID, "end_of_day")
    return _checkpoint_envelopes(store, signer)


@pytest.mark.parametrize("one_batch", [False, True])
def test_checkpoints_delivered_out_of_order_are_all_accepted_and_linked(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path, one_batch: bool
) -> None:
    """Two platform workers (or a resend) deliver checkpoints in reverse order: each is the
    terminal's, so each is kept; the links are checked when the gap fills, and the chain
    goes on (the next checkpoint links to the newest). Resending one is a duplicate."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    first, second, third = _three_checkpoints(store, registered)
    if one_batch:
        statuses = [a.status for a in ingestor.ingest([third, first, second])]
    else:
        statuses = [a.status for raw in (third, first, second) for a in ingestor.ingest([raw])]
    assert statuses == ["accepted", "accepted", "accepted"]
    assert [a.status for a in ingestor.ingest([second])] == ["duplicate"]
    store.record(StateChange("terminal", "later", None, action="report"))
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    fourth, = _checkpoint_envelopes(store, registered)
    store.close()
    assert [a.status for a in ingestor.ingest([fourth])] == ["accepted"]


@pytest.mark.parametrize(("keep", "edit"), [(None, 2), (3, None)])
def test_a_cut_is_seen_when_the_gap_fills_whichever_side_came_first(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path,
    keep: int | None, edit: int | None,
) -> None:
    """The checkpoint signed after a rewrite (or truncation) arrives first and is kept (a
    gap); when the checkpoint from before the rewrite arrives, the stored successor does
    not name its hash: refused as truncated or rewritten — tolerating the order does not
    hide the cut."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    before, = _checkpoint_envelopes(store, registered)
    path = store.path
    store.close()
    _rechain(path, keep=keep, edit=edit)
    store = Store.open(path)
    for i in range(8):
        store.record(StateChange("terminal", f"after{i}", None, action="report"))
    sign_checkpoint(store, registered, TERMINAL_ID, "end_of_day")
    after, = _checkpoint_envelopes(store, registered)
    store.close()
    first_ack, = ingestor.ingest([after])
    late_ack, = ingestor.ingest([before])
    statuses = [first_ack.status, late_ack.status]
    assert "rejected" in statuses
    reason = next(a.reason for a in (first_ack, late_ack) if a.status == "rejected")
    assert "truncated or rewritten" in (reason or "")


def test_a_replayed_checkpoint_in_a_fresh_envelope_is_refused_out_of_order_too(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """Tolerating order is not tolerating replays: a stored checkpoint re-sent in a new,
    validly signed envelope is refused, before and after its successor arrived, and a
    checkpoint that jumps over a stored one (a forged link) is refused."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    first, second, third = _three_checkpoints(store, registered)
    store.close()
    assert [a.status for a in ingestor.ingest([third, first])] == ["accepted", "accepted"]
    payload = json.loads(first.body)["payload"]
    replay = build_envelope(registered, terminal_id=TERMINAL_ID, kind=CHECKPOINT_KIND,
                            seq=1000, idempotency_key="cp-replay", payload=payload)
    ack, = ingestor.ingest([RawUplink(TERMINAL_ID, replay.to_json(), CHECKPOINT_KIND)])
    assert ack.status == "rejected" and "already received" in (ack.reason or "")
    # A checkpoint re-signed by the terminal's key but claiming to follow the first one
    # directly (it jumps over the stored second... once the second is stored).
    assert [a.status for a in ingestor.ingest([second])] == ["accepted"]
    third_payload = json.loads(third.body)["payload"]
    forged = {k: v for k, v in third_payload.items() if k != "signature"}
    forged.update(entry_id=third_payload["entry_id"] + 50,
                  prev_entry_id=payload["entry_id"], prev_entry_hash=payload["entry_hash"])
    signature = base64.b64encode(registered.sign(canonical_json(forged))).decode("ascii")
    jumped = build_envelope(registered, terminal_id=TERMINAL_ID, kind=CHECKPOINT_KIND,
                            seq=1001, idempotency_key="cp-jump",
                            payload={**forged, "signature": signature})
    ack, = ingestor.ingest([RawUplink(TERMINAL_ID, jumped.to_json(), CHECKPOINT_KIND)])
    assert ack.status == "rejected" and "truncated or rewritten" in (ack.reason or "")


def _entries(raws: list[RawUplink]) -> list[tuple[int, int]]:
    """``(entry_id, prev_entry_id)`` of each checkpoint uplink."""
    payloads = [json.loads(raw.body)["payload"] for raw in raws]
    return [(int(p["entry_id"]), int(p["prev_entry_id"])) for p in payloads]


def test_an_unfilled_gap_is_reported_until_its_checkpoint_arrives(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """A checkpoint whose predecessor has not arrived leaves a journal stretch no verified
    checkpoint covers: reported per terminal (from just after the checkpoint below to the
    missing one, since the checkpoint that revealed it came) until the gap fills."""
    arrivals = iter(["2026-12-03T10:00:00.000Z", "2026-12-03T11:00:00.000Z",
                     "2026-12-03T12:00:00.000Z"])
    ingestor = Ingestor(storage, clock=lambda: next(arrivals),
                        signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    first, second, third = _three_checkpoints(store, registered)
    store.close()
    (one, _), (two, _), (three, prev_of_three) = _entries([first, second, third])
    assert prev_of_three == two
    assert [a.status for a in ingestor.ingest([first])] == ["accepted"]
    assert storage.checkpoint_gaps() == []
    assert [a.status for a in ingestor.ingest([third])] == ["accepted"]
    gap, = storage.checkpoint_gaps(TERMINAL_ID)
    assert (gap.first_entry, gap.last_entry, gap.checkpoint_entry, gap.since) == (
        one + 1, two, three, "2026-12-03T11:00:00.000Z")
    assert gap.describe() == (
        f"{TERMINAL_ID}: journal entries {one + 1}-{two} not covered by a verified "
        f"checkpoint since 2026-12-03T11:00:00.000Z (the checkpoint of entry {three} names "
        f"entry {two}, not received)")
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and summary.as_json()["checkpoint_gaps"] == [gap.as_json()]
    assert storage.checkpoint_gaps("T-OTHER") == []
    assert [a.status for a in ingestor.ingest([second])] == ["accepted"]
    assert storage.checkpoint_gaps() == []


def test_a_gap_below_the_first_checkpoint_received_starts_at_entry_one(
    storage: PlatformStorage, registered: SoftwareSigner, tmp_path: Path
) -> None:
    """When the terminal's earlier checkpoints never arrived, the whole journal up to the
    one the first received checkpoint names is reported as unverified."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    store = _journalled(tmp_path)
    _, second, _ = _three_checkpoints(store, registered)
    store.close()
    (_, prev_of_second), = _entries([second])
    assert [a.status for a in ingestor.ingest([second])] == ["accepted"]
    gap, = storage.checkpoint_gaps()
    assert (gap.first_entry, gap.last_entry) == (1, prev_of_second)
