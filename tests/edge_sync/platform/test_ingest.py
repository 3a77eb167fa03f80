"""Ingestion: idempotency, signatures, malformed input, booking — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_sync.messages import canonical_json
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


def raw(env: Any, terminal_id: str = TERMINAL_ID, kind: str | None = "transaction") -> RawUplink:
    body = env if isinstance(env, bytes) else env.to_json()
    return RawUplink(terminal_id=terminal_id, body=body, topic_kind=kind)


def refused(storage: PlatformStorage, *raws: RawUplink) -> str:
    """Ingest bodies whose signature cannot be checked: no ack at all (anyone could have
    sent them), each counted as refused; returns the reason kept in the rejection log."""
    ingestor = Ingestor(storage)
    acks = ingestor.ingest(list(raws))
    assert acks == [None] * len(raws)
    assert ingestor.counts["refused"] == len(raws)
    return storage.rejections(limit=1)[0].reason


def test_same_message_twice_is_one_row_and_a_duplicate_ack(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A redelivered message_id is stored once; the second ack says duplicate."""
    ingestor = Ingestor(storage)
    message = envelope(registered)
    first = ingestor.ingest([raw(message)])
    second = ingestor.ingest([raw(message)])
    assert [a.status for a in first] == ["accepted"]
    assert [a.status for a in second] == ["duplicate"]
    assert second[0].message_id == message.message_id
    assert storage.message_count() == 1


def test_duplicates_inside_one_batch(storage: PlatformStorage, registered: SoftwareSigner) -> None:
    """The same message twice in one batch: accepted then duplicate, one row."""
    message = envelope(registered)
    acks = Ingestor(storage).ingest([raw(message), raw(message)])
    assert [a.status for a in acks] == ["accepted", "duplicate"]
    assert storage.message_count() == 1


def test_tampered_payload_is_rejected(storage: PlatformStorage, registered: SoftwareSigner) -> None:
    """Changing one byte of a signed payload: no ack, a refusal naming the signature."""
    wire = envelope(registered).wire()
    wire["payload"]["amount_minor"] = 1
    assert "bad signature" in refused(storage, raw(json.dumps(wire).encode()))
    assert storage.rejections(limit=1)[0].message_id == wire["message_id"]
    assert storage.message_count() == 0
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and summary.rejected == 1


def test_unknown_terminal_is_rejected(storage: PlatformStorage) -> None:
    """A terminal nobody registered is refused with a reason that names it."""
    stranger = SoftwareSigner.generate()
    message = envelope(stranger, terminal_id="T-9999")
    assert "unknown terminal T-9999" in refused(storage, raw(message, terminal_id="T-9999"))


def test_other_key_is_rejected(storage: PlatformStorage, registered: SoftwareSigner) -> None:
    """A message signed by another key than the registered one is refused."""
    impostor = SoftwareSigner.generate(key_version=1)
    assert "bad signature" in refused(storage, raw(envelope(impostor)))


@pytest.mark.parametrize(
    ("body",                                         "reason"),
    [
        (b"",                                         "not json"),
        (b"{\"v\": 1, \"message_id\": \"6f1c0b2e-1",   "not json"),
        (b"\xff\xfe garbage",                         "not json"),
        (b"[1, 2, 3]",                                "not an object"),
        (b"{\"v\": 1}",                               "message_id"),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(
    storage: PlatformStorage, body: bytes, reason: str
) -> None:
    """Truncated, non-JSON or schema-breaking bodies give a rejected ack, never an exception."""
    assert reason in refused(storage, raw(body))


def test_truncated_body_quotes_its_message_id(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A body cut short still names its message_id in the rejection when it can be read."""
    message = envelope(registered)
    refused(storage, raw(message.to_json()[:-20]))
    assert storage.rejections(limit=1)[0].message_id == message.message_id


def test_a_bad_message_does_not_sink_its_batch(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """One malformed message among good ones: only it goes unanswered, acks keep order."""
    good1, good2 = envelope(registered), envelope(registered)
    acks = Ingestor(storage).ingest([raw(good1), raw(b"{oops"), raw(good2)])
    assert [a.status if a else None for a in acks] == ["accepted", None, "accepted"]
    assert acks[0] is not None and acks[2] is not None
    assert [acks[0].message_id, acks[2].message_id] == [good1.message_id, good2.message_id]


@pytest.mark.parametrize(
    ("terminal_id", "kind",        "reason"),
    [
        ("T-0002",      "transaction", "does not match the channel"),
        (TERMINAL_ID,   "status",      "does not match the topic"),
    ],
)
def test_channel_must_match_the_envelope(
    storage: PlatformStorage, registered: SoftwareSigner, terminal_id: str, kind: str, reason: str
) -> None:
    """A message published on another terminal's (or kind's) topic is refused."""
    assert reason in refused(storage, raw(envelope(registered), terminal_id, kind))


@pytest.mark.parametrize(
    ("payload",                                                               "reason"),
    [
        ({"amount_minor": 1, "currency": "MAD", "transaction_id": ""},         "transaction_id"),
        ({"amount_minor": 1},                                                  "currency"),
        ({"transaction_id": "t", "amount_minor": "1", "currency": "MAD"},      "amount_minor"),
        ({"transaction_id": "t", "amount_minor": True, "currency": "MAD"},     "amount_minor"),
        ({"transaction_id": "t", "amount_minor": 1, "currency": "dirham"},     "currency"),
        ({"transaction_id": "t", "amount_minor": 1, "currency": "MAD\n"},      "currency"),
        ({"transaction_id": "t", "amount_minor": 1, "currency": "MAD",
          "business_date": "21/11/2026"},                                      "business_date"),
        ({"transaction_id": "t", "amount_minor": 1, "currency": "MAD",
          "type": "gift"},                                                     "payload.type"),
    ],
)
def test_unbookable_transaction_payloads_are_rejected(
    storage: PlatformStorage, registered: SoftwareSigner, payload: dict[str, Any], reason: str
) -> None:
    """A signed transaction the platform cannot book is refused, naming the field."""
    ack, = Ingestor(storage).ingest([raw(envelope(registered, payload=payload))])
    assert ack.status == "rejected"
    assert ack.reason is not None and reason in ack.reason


def test_later_state_of_a_transaction_wins(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A reversal reported after completion takes the transaction out of the totals."""
    base = {"transaction_id": "tx-r", "amount_minor": 2500, "currency": "MAD",
            "business_date": "2026-11-21"}
    ingestor = Ingestor(storage)
    ingestor.ingest([raw(envelope(registered, payload={**base, "state": "completed"}, seq=10))])
    assert [t.amount_minor for t in storage.transaction_totals("2026-11-21")] == [2500]
    ingestor.ingest([raw(envelope(registered, payload={**base, "state": "reversed"}, seq=11))])
    assert storage.transaction_totals("2026-11-21") == []
    # An older state arriving late changes nothing.
    ingestor.ingest([raw(envelope(registered, payload={**base, "state": "completed"}, seq=9))])
    assert storage.transaction_totals("2026-11-21") == []


def test_status_backlog_and_last_seen(storage: PlatformStorage, registered: SoftwareSigner) -> None:
    """A status message records the terminal's backlog; every message updates last seen."""
    clock = iter(["2026-11-21T10:00:00.000Z", "2026-11-21T10:05:00.000Z"])
    ingestor = Ingestor(storage, clock=lambda: next(clock))
    status = envelope(registered, kind="status", payload={"backlog": {"platform": 7, "pop": 2}})
    ingestor.ingest([raw(status, kind="status")])
    ingestor.ingest([raw(status, kind="status")])
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None
    assert summary.backlog == {"platform": 7, "pop": 2}
    assert summary.last_seen_at == "2026-11-21T10:05:00.000Z"
    assert summary.as_json()["backlog_total"] == 9


def test_canonical_json_is_what_is_verified(registered: SoftwareSigner) -> None:
    """The signature covers the contract's canonical JSON (sorted keys, no spaces)."""
    message = envelope(registered)
    text = canonical_json(message.wire()).decode()
    assert '"signature"' not in text and ", " not in text


@pytest.mark.parametrize(
    ("change",                                                            "reason"),
    [
        ({"payload": {"transaction_id": "t", "amount_minor": 2**70,
                      "currency": "MAD"}},                                  "out of range"),
        ({"payload": {"transaction_id": "t\x00x", "amount_minor": 1,
                      "currency": "MAD"}},                                  "without NUL"),
        ({"seq": 2**64},                                                    "seq is out of range"),
        ({"idempotency_key": "k\x00"},                                      "without NUL"),
    ],
)
def test_values_the_database_cannot_hold_are_rejected(
    storage: PlatformStorage, registered: SoftwareSigner, change: dict[str, Any], reason: str
) -> None:
    """Signed values beyond the columns' limits are refused, never retried for ever."""
    from edge_sync.messages import build_envelope

    fields: dict[str, Any] = {"terminal_id": TERMINAL_ID, "kind": "transaction", "seq": 1,
                              "idempotency_key": "k", "payload": {}}
    fields.update(change)
    message = build_envelope(registered, **fields)
    neighbour = envelope(registered)
    acks = Ingestor(storage).ingest([raw(message), raw(neighbour)])
    assert acks[0].status == "rejected" and acks[0].reason is not None
    assert reason in acks[0].reason
    assert acks[1].status == "accepted"


class RefusesOne:
    """A database that cannot store one particular message (a value it refuses)."""

    def __init__(self, inner: PlatformStorage, message_id: str) -> None:
        self.inner, self.message_id = inner, message_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ingest(self, uplinks: Any, received_at: str) -> Any:
        from edge_sync.platform.errors import UnstorableDataError

        if any(u.message_id == self.message_id for u in uplinks):
            raise UnstorableDataError("refused") from ValueError("value out of range")
        return self.inner.ingest(uplinks, received_at)


def test_unstorable_message_is_isolated_from_its_batch(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """When the database refuses a value, the batch is split and only the culprit rejected."""
    batch = [envelope(registered) for _ in range(3)]
    ingestor = Ingestor(RefusesOne(storage, batch[1].message_id))  # type: ignore[arg-type]
    acks = ingestor.ingest([raw(m) for m in batch])
    assert [a.status for a in acks] == ["accepted", "rejected", "accepted"]
    assert acks[1].reason is not None and "cannot store" in acks[1].reason
    assert storage.message_count() == 2


def test_lone_surrogate_is_rejected_not_raised(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """JSON may escape a lone surrogate no UTF-8 can carry: a rejection, not a crash."""
    wire = envelope(registered).wire()
    body = json.dumps(wire).replace('"state": "completed"', '"state": "\\ud800"').encode()
    assert b"ud800" in body
    assert "not valid Unicode" in refused(storage, raw(body))


def test_an_integer_past_the_digit_limit_is_rejected_not_raised(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """An integer literal CPython will not convert (over 4300 digits) is not JSON here."""
    body = json.dumps(envelope(registered).wire())[:-1].encode() + b', "x": ' + b"9" * 5000 + b"}"
    assert "not json" in refused(storage, raw(body))


def test_an_unexpected_error_in_checks_rejects_only_that_message(
    storage: PlatformStorage, registered: SoftwareSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug hit by one message rejects it with a reason; its neighbours are stored."""
    import edge_sync.platform.ingest as ingest_module

    poisoned = envelope(registered, kind="note", payload={})
    real = ingest_module.book_payload

    def explode(env: Any) -> Any:
        if env.message_id == poisoned.message_id:
            raise KeyError("boom")
        return real(env)

    monkeypatch.setattr(ingest_module, "book_payload", explode)
    good = envelope(registered)
    acks = Ingestor(storage).ingest([raw(poisoned, kind="note"), raw(good)])
    assert [a.status for a in acks] == ["rejected", "accepted"]
    assert acks[0].reason is not None and "KeyError" in acks[0].reason


def test_transaction_without_an_amount_is_stored_unbooked(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A signed transaction record with no money is kept (never dead-lettered) and flagged."""
    message = envelope(registered, payload={"id": "pay-1", "state": "authorising"})
    ack, = Ingestor(storage).ingest([raw(message)])
    assert ack.status == "accepted"
    assert storage.transaction_totals() == []
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and (summary.messages, summary.unbooked) == (1, 1)


def test_transaction_id_falls_back_to_id_then_idempotency_key(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Two records of one payment (by ``id``) are one transaction; the later state wins."""
    money = {"amount_minor": 700, "currency": "MAD", "business_date": "2026-11-21"}
    ingestor = Ingestor(storage)
    ingestor.ingest([raw(envelope(registered, payload={**money, "id": "p", "state": "completed"},
                                  seq=1)),
                     raw(envelope(registered, payload={**money, "id": "p", "state": "reversed"},
                                  seq=2)),
                     raw(envelope(registered, payload=money, seq=3))])
    totals = storage.transaction_totals("2026-11-21")
    assert [(t.count, t.amount_minor) for t in totals] == [(1, 700)]


@pytest.mark.parametrize(
    ("payload",                                                              "counted"),
    [
        ({"payment_id": "p1", "status": "completed"},                         True),
        ({"payment_id": "p1", "status": "reversed"},                          False),
        ({"id": "p1", "state": "financial_declined"},                         False),
        ({"transaction_id": "p1"},                                            True),
    ],
)
def test_aliases_of_the_transaction_fields(
    storage: PlatformStorage, registered: SoftwareSigner, payload: dict[str, Any], counted: bool
) -> None:
    """payment_id/id name the transaction and status/state its state, as terminals send them."""
    money = {"amount_minor": 900, "currency": "MAD", "business_date": "2026-11-21"}
    ack, = Ingestor(storage).ingest([raw(envelope(registered, payload={**money, **payload}))])
    assert ack.status == "accepted"
    totals = storage.transaction_totals("2026-11-21")
    assert [(t.count, t.amount_minor) for t in totals] == ([(1, 900)] if counted else [])


@pytest.mark.parametrize(
    ("field",        "value"),
    [
        ("key_version",  "1"),
        ("seq",          "{seq}.0"),
        ("v",            None),
    ],
)
def test_signature_covers_the_object_as_sent(
    storage: PlatformStorage, registered: SoftwareSigner, field: str, value: str | None
) -> None:
    """A value the model would coerce back ("1" → 1) or default (v) does not verify."""
    wire = envelope(registered).wire()
    if value is None:
        del wire[field]
        body = json.dumps(wire).encode()
    elif value == "{seq}.0":
        body = json.dumps(wire).replace(f'"seq": {wire["seq"]}', f'"seq": {wire["seq"]}.0').encode()
    else:
        wire[field] = value
        body = json.dumps(wire).encode()
    assert "bad signature" in refused(storage, raw(body))
    assert storage.message_count() == 0


def test_key_version_beyond_the_column_is_refused_alone(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A key_version no registry column can hold is one rejection, not a failed batch."""
    wire = envelope(registered).wire()
    wire["key_version"] = 2**63
    neighbour = envelope(registered)
    acks = Ingestor(storage).ingest([raw(json.dumps(wire).encode()), raw(neighbour)])
    assert [a.status if a else None for a in acks] == [None, "accepted"]
    assert "key_version" in storage.rejections(limit=1)[0].reason


def test_reasons_quoting_huge_input_are_kept_short(storage: PlatformStorage) -> None:
    """A megabyte of junk in a field does not come back in the logged reason."""
    body = json.dumps({"v": 1, "message_id": "x" * 1_000_000}).encode()
    assert len(refused(storage, raw(body))) <= 300


def _again(signer: SoftwareSigner, first: Any, **changes: Any) -> bytes:
    """The same outbox row sent again (a fresh signature), with ``changes`` if any."""
    from edge_sync.messages import build_envelope

    fields = {name: getattr(first, name) for name in
              ("terminal_id", "kind", "seq", "idempotency_key", "payload", "message_id",
               "created_at")}
    fields.update(changes)
    return build_envelope(signer, **fields).to_json()


def test_resend_with_a_new_signature_or_key_is_a_duplicate(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A retry re-signed (ECDSA is randomised), even after a key rotation, is a duplicate."""
    ingestor = Ingestor(storage)
    first = envelope(registered)
    rotated = SoftwareSigner.generate(key_version=2)
    storage.register_key(TERMINAL_ID, 2, rotated.public_key_pem().decode(), "later")
    acks = ingestor.ingest([raw(first), raw(_again(registered, first)),
                            raw(_again(rotated, first))])
    assert [a.status for a in acks] == ["accepted", "duplicate", "duplicate"]


def test_a_reused_message_id_with_other_content_is_rejected(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Another message under a stored id is refused, never absorbed as a duplicate."""
    ingestor = Ingestor(storage)
    first = envelope(registered)
    ingestor.ingest([raw(first)])
    other = _again(registered, first, payload={**first.payload, "amount_minor": 1})
    ack, = ingestor.ingest([raw(other)])
    assert ack.status == "rejected"
    assert ack.reason is not None and "already used by a different message" in ack.reason
    totals = storage.transaction_totals("2026-11-21")
    assert [t.amount_minor for t in totals] == [10000]
