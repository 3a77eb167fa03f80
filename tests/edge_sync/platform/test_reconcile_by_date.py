"""Reconciliation reads the day's sales by their business date and looks the rest up by
key: rows mirrored later (another day, another terminal) never push a day's sales out of
what is checked, as a capped "newest first" list did (issue 11 item 8)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.reconcile import reconcile_pop, reconcile_psp
from edge_sync.platform.storage import PlatformStorage, SqliteStorage
from edge_sync.signing import SoftwareSigner
from edge_sync.transaction_keys import advice_key
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432

DAY, NEXT_DAY = "2026-12-03", "2026-12-04"
OTHER_TERMINAL = "T-0002"


def _id(n: int) -> str:
    return str(uuid.UUID(int=0x3F2A1C9E_0000_4000_8000_000000000000 + n))


def _sale(n: int, day: str, *, state: str = "completed", amount: int = 60000) -> dict[str, Any]:
    return {"payment_id": _id(n), "type": "sale", "state": state, "amount_minor": amount,
            "currency": "MAD", "business_date": day, "pop_record_id": f"rec-{n}"}


def _refund(n: int, sale: int, day: str, amount: int) -> dict[str, Any]:
    return {"payment_id": _id(n), "type": "refund", "state": "approved",
            "amount_minor": amount, "currency": "MAD", "business_date": day,
            "refers_to": _id(sale)}


def _mirror(storage: PlatformStorage, signer: SoftwareSigner, payloads: list[dict[str, Any]],
            terminal_id: str = TERMINAL_ID) -> None:
    """Ingest ``payloads`` in order: each later one has a higher seq (is "newer")."""
    Ingestor(storage).ingest([
        RawUplink(terminal_id, envelope(signer, payload=p, terminal_id=terminal_id).to_json(),
                  "transaction") for p in payloads])


@pytest.fixture
def fleet(storage: PlatformStorage, registered: SoftwareSigner) -> PlatformStorage:
    """Day ``DAY``: sales 1–3 on T-0001 and 4–5 on T-0002, mirrored FIRST; then the next
    day's sales 10–17 on T-0001 and a refund (on the next day) of sale 1 — the newest rows."""
    other = SoftwareSigner.generate(key_version=1)
    storage.register_key(OTHER_TERMINAL, 1, other.public_key_pem().decode(),
                         "2026-11-21T00:00:00Z")
    _mirror(storage, registered, [_sale(1, DAY), _sale(2, DAY), _sale(3, DAY, state="cancelled")])
    _mirror(storage, other, [_sale(4, DAY), _sale(5, DAY)], OTHER_TERMINAL)
    _mirror(storage, registered, [_sale(n, NEXT_DAY) for n in range(10, 18)]
            + [_refund(20, 1, NEXT_DAY, 10000)])
    return storage


def test_the_day_is_read_by_date_however_many_newer_rows(fleet: PlatformStorage) -> None:
    """Every transaction of the day comes back, page after page, and only those; newer rows
    of another day do not push them out (the newest rows hold none of them)."""
    newest = {t["transaction_id"] for t in fleet.transactions(None, 5)}
    assert not newest & {_id(n) for n in range(1, 6)}  # a cap of 5 would have hidden them all
    day = list(fleet.day_transactions(DAY, page_size=2))
    assert [(t["terminal_id"], t["transaction_id"]) for t in day] == (
        [(TERMINAL_ID, _id(n)) for n in (1, 2, 3)] + [(OTHER_TERMINAL, _id(n)) for n in (4, 5)])
    assert [t["transaction_id"] for t in fleet.day_transactions(DAY, OTHER_TERMINAL)] == [
        _id(4), _id(5)]
    assert len(list(fleet.day_transactions(NEXT_DAY, page_size=3))) == 9
    assert list(fleet.day_transactions("2026-12-05")) == []
    with pytest.raises(ValueError, match="page_size"):
        next(fleet.day_transactions(DAY, page_size=0))


def test_lookups_by_key(fleet: PlatformStorage) -> None:
    """A payment is found by its own id or its advice's key, by its PoP record, and a sale's
    refunds by the sale, whatever their date; an unknown key finds nothing."""
    by_key = fleet.transactions_by_psp_key([_id(11), str(advice_key(_id(12))), "ghost"])
    assert [t["transaction_id"] for t in by_key] == [_id(11), _id(12)]
    assert [t["transaction_id"] for t in fleet.transactions_by_pop_record(
        ["rec-4", "rec-13", "rec-99"])] == [_id(13), _id(4)]  # by (terminal, id)
    refunds = fleet.refunds_of([_id(1), _id(2)])
    assert [(t["transaction_id"], t["business_date"]) for t in refunds] == [(_id(20), NEXT_DAY)]
    assert fleet.transactions_by_psp_key([]) == []


def _charge(key: str, amount: int = 60000, refunded: int = 0) -> dict[str, Any]:
    return {"key": key, "kind": "sale", "state": "captured", "amount_minor": amount,
            "currency": "MAD", "captured": amount, "refunded": refunded,
            "original_key": None, "code": "00"}


def test_psp_reconciliation_of_a_day_that_is_not_the_newest(fleet: PlatformStorage) -> None:
    """Sales of the day are each checked though newer rows were mirrored after them: sale 2
    (not charged) is psp_missing, sale 1 (refunded the next day) and 4 match; the next day's
    charges, under their own or their advice's key, are explained, not psp_only."""
    entries = [_charge(_id(1), refunded=10000), _charge(_id(4)), _charge(_id(5), 59000),
               _charge(_id(10)), _charge(str(advice_key(_id(11)))), _charge("ghost", 100)]
    found = reconcile_psp(fleet, DAY, entries, batch=2)
    assert sorted((m.kind, m.transaction_id or m.psp_keys[0]) for m in found) == [
        ("amount_mismatch", _id(5)), ("psp_missing", _id(2)), ("psp_only", "ghost")]


def test_pop_reconciliation_of_a_day_that_is_not_the_newest(fleet: PlatformStorage) -> None:
    """Each sale of the day is matched with its PoP record though it is not among the newest
    rows; a confirmed record of the next day's sale is known, a ghost record is not."""
    records = [{"record_id": f"rec-{n}", "terminal_id": TERMINAL_ID, "kind": "sale",
                "status": "confirmed"} for n in (1, 4, 5, 10, 99)]
    found = reconcile_pop(fleet, DAY, records)
    assert sorted((m.kind, m.transaction_id or m.pop_record_id) for m in found) == [
        ("pop_missing", _id(2)), ("pop_only", "rec-99")]


def test_rows_mirrored_before_the_lookup_columns_are_filled_on_open(
        tmp_path: Path, signer: SoftwareSigner) -> None:
    """A database mirrored before migration 0008 gets its lookup columns on the next open,
    so its payments are found by key like new ones."""
    path = tmp_path / "old.db"
    storage = SqliteStorage(path)
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(),
                         "2026-11-21T00:00:00Z")
    _mirror(storage, signer, [_sale(1, DAY), _refund(2, 1, DAY, 500)])
    storage.close()
    with sqlite3.connect(path) as raw:  # what a row written before 0008 looks like
        raw.execute("UPDATE platform_transactions SET psp_advice_key = NULL, "
                    "pop_record_id = NULL, refers_to = NULL")
    reopened = SqliteStorage(path)
    try:
        assert [t["transaction_id"] for t in reopened.transactions_by_psp_key(
            [str(advice_key(_id(1)))])] == [_id(1)]
        assert [t["transaction_id"] for t in reopened.transactions_by_pop_record(
            ["rec-1"])] == [_id(1)]
        assert [t["transaction_id"] for t in reopened.refunds_of([_id(1)])] == [_id(2)]
    finally:
        reopened.close()
