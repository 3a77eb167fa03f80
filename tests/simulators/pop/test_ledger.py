"""The PoP stand-in's ledger: delayed confirmation, hash chain, summary, stale records, faults."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from edge_sync.pop import PopReceipt
from simulators.pop.errors import PopFaultSpecError, PopLedgerError
from simulators.pop.faults import PopFaults, parse_faults
from simulators.pop.ledger import GENESIS, PopLedger, Refusal
from tests.fixtures.pop import RecordMaker


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger_at(tmp_path: Path, delay_s: float = 0.0) -> tuple[PopLedger, Clock, RecordMaker]:
    records = RecordMaker()
    clock = Clock(datetime.fromisoformat(records.created_at(0)).timestamp() + 60)
    return PopLedger(tmp_path / "l.sqlite3", confirm_delay_s=delay_s, clock=clock), clock, \
        records


def test_records_confirm_only_after_the_delay(tmp_path: Path) -> None:
    """With a 2 s delay a record is pending, then confirmed once the clock has moved on."""
    ledger, clock, records = ledger_at(tmp_path, delay_s=2.0)
    record = records.sale()
    first = ledger.submit(record)
    assert isinstance(first, PopReceipt) and first.status == "pending"
    assert first.pop_reference is None
    clock.now += 1.9
    assert ledger.status(record.record_id).status == "pending"  # type: ignore[union-attr]
    clock.now += 0.2
    confirmed = ledger.status(record.record_id)
    assert confirmed is not None and confirmed.status == "confirmed"
    assert confirmed.pop_reference and confirmed.pop_reference.startswith("pop-")


def test_the_chain_verifies_and_a_changed_entry_breaks_it(tmp_path: Path) -> None:
    """Every entry hashes its predecessor; editing one entry's body is detected at that entry."""
    ledger, _, records = ledger_at(tmp_path)
    for _ in range(3):
        ledger.submit(records.sale())
    assert ledger.verify_chain() == 6  # submit + confirm each
    ledger.close()
    db = sqlite3.connect(tmp_path / "l.sqlite3")
    db.execute("UPDATE ledger SET body = replace(body, '2500', '2501') WHERE entry = 3")
    db.commit()
    db.close()
    with pytest.raises(PopLedgerError, match="entry 3"):
        PopLedger(tmp_path / "l.sqlite3").verify_chain()


def test_a_removed_entry_breaks_the_chain(tmp_path: Path) -> None:
    """Deleting an entry is detected at the next one (its prev_hash no longer matches)."""
    ledger, _, records = ledger_at(tmp_path)
    ledger.submit(records.sale())
    ledger.submit(records.sale())
    ledger.connection.execute("DELETE FROM ledger WHERE entry = 2")
    with pytest.raises(PopLedgerError, match="entry 3"):
        ledger.verify_chain()


def test_summary_counts_and_sums_per_currency_and_status(tmp_path: Path) -> None:
    """The reconciliation summary: counts and amounts per currency × status, and per kind."""
    ledger, _, records = ledger_at(tmp_path)
    sale = records.sale(2500, "MAD")
    ledger.submit(sale)
    ledger.submit(records.sale(1000, "EUR"))
    ledger.submit(records.make("refund", 500, "MAD", refers_to=sale.record_id))
    cancelled = records.sale(700, "MAD")
    ledger.submit(cancelled)
    ledger.cancel(cancelled.record_id, "void")
    summary = ledger.summary()
    assert summary["by_status"] == {"confirmed": 3, "cancelled": 1}
    assert summary["by_currency"]["MAD"]["confirmed"] == {"count": 2, "amount_minor": 3000}
    assert summary["by_currency"]["MAD"]["cancelled"] == {"count": 1, "amount_minor": 700}
    assert summary["by_kind"]["MAD"]["refund"] == {"count": 1, "amount_minor": 500}
    assert summary["head_hash"] != GENESIS and summary["ledger_entries"] == 9


@pytest.mark.parametrize(("shift_s", "why"), [(-31 * 86400, "older"), (3600, "future")])
def test_stale_or_future_records_are_refused_and_counted(
    tmp_path: Path, shift_s: float, why: str
) -> None:
    """A record created long ago or in the future is refused (stale) and counted."""
    ledger, clock, records = ledger_at(tmp_path)
    clock.now -= shift_s
    result = ledger.submit(records.sale())
    assert isinstance(result, Refusal) and result.code == "stale" and why in result.reason
    assert ledger.summary()["refused"] == {"stale": 1}


def test_a_refund_of_another_terminals_sale_is_refused(tmp_path: Path) -> None:
    """refers_to must name a sale of the same terminal."""
    ledger, _, records = ledger_at(tmp_path)
    sale = records.sale()
    ledger.submit(sale)
    other = RecordMaker()
    refund = other.make("refund", refers_to=sale.record_id)
    result = ledger.submit(replace(refund, created_at=records.created_at(50)))
    assert isinstance(result, Refusal) and result.code == "unknown_sale"


def test_the_ledger_survives_a_reopen(tmp_path: Path) -> None:
    """Records, statuses and the chain are on disk: a new process sees the same ledger."""
    ledger, _, records = ledger_at(tmp_path)
    record = records.sale()
    receipt = ledger.submit(record)
    ledger.close()
    again = PopLedger(tmp_path / "l.sqlite3")
    assert again.status(record.record_id) == receipt
    assert again.verify_chain() == 2


def test_an_unopenable_ledger_is_one_clear_error(tmp_path: Path) -> None:
    """A directory where the ledger file belongs is a PopLedgerError naming the path."""
    (tmp_path / "l.sqlite3").mkdir()
    with pytest.raises(PopLedgerError, match=r"l\.sqlite3"):
        PopLedger(tmp_path / "l.sqlite3")


@pytest.mark.parametrize(
    ("spec",                          "expected"),
    [
        ("",                          PopFaults()),
        ("reject",                    PopFaults(reject=1)),
        ("reject=3, timeout, slow=250", PopFaults(reject=3, timeout=1, slow_ms=250)),
        ("drop=2,error=1,twice=4",    PopFaults(drop=2, error=1, twice=4)),
    ],
)
def test_fault_specs_parse(spec: str, expected: PopFaults) -> None:
    """--faults accepts name or name=N items, comma-separated."""
    assert parse_faults(spec) == expected


@pytest.mark.parametrize("spec", ["explode", "slow", "reject=-1", "timeout=x", "slow=1e9"])
def test_bad_fault_specs_are_refused(spec: str) -> None:
    """An unknown fault or a bad value is a PopFaultSpecError naming it."""
    with pytest.raises(PopFaultSpecError):
        parse_faults(spec)
