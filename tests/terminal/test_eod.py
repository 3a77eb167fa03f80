"""End of day: the terminal's totals, and the platform reconciling against them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from edge_sync.messages import build_envelope
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.reconcile import reconcile
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from terminal.cli.main import main
from terminal.eod import CurrencyTotal, end_of_day_totals, report_end_of_day
from terminal.store import StateChange, Store

DAY = dt.date(2026, 11, 22)


def _payment(store: Store, amount: int, currency: str, path: list[str],
             created: str = "2026-11-22T10:00:00+00:00") -> str:
    payment_id = str(uuid.uuid4())
    store.record(StateChange("payment", payment_id, "created",
                             {"amount_minor": amount, "currency": currency}))
    for state in path:
        store.record(StateChange("payment", payment_id, state))
    store.connection.execute("UPDATE payments SET created_at = ? WHERE id = ?",
                             (created, payment_id))
    return payment_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "etika.db")
    yield opened
    opened.close()


def _fill(store: Store) -> dict[str, tuple[int, str]]:
    """A day of payments in every state; returns the counted ones by id."""
    counted = {}
    for amount, currency, path in [
        (12500, "MAD", ["authorising", "completed"]),
        (7000,  "MAD", ["authorising", "pop_deferred"]),
        (3000,  "EUR", ["authorising", "completed"]),
    ]:
        counted[_payment(store, amount, currency, path)] = (amount, currency)
    _payment(store, 99900, "MAD", ["authorising", "financial_declined"])
    _payment(store, 55500, "MAD", ["authorising", "reversal_pending", "reversed"])
    _payment(store, 11100, "MAD", ["authorising", "completed"], created="2026-11-21T23:59:00+00:00")
    return counted


def test_totals_count_what_moved_money_that_day(store: Store) -> None:
    """Completed, PoP-deferred payments count; declined, reversed, voided and other days do
    not; approved refunds count negative, a void does not (its payment already left)."""
    counted = _fill(store)
    paid = next(iter(counted))
    store.record(StateChange("refund", "r1", "requested",
                             {"payment_id": paid, "amount_minor": 2500, "currency": "MAD"}))
    store.record(StateChange("refund", "r1", "approved"))
    voided = _payment(store, 4000, "MAD", ["authorising", "completed", "voided"])
    store.record(StateChange("refund", "v1", "requested",
                             {"payment_id": voided, "amount_minor": 4000, "currency": "MAD",
                              "kind": "void"}))
    store.record(StateChange("refund", "v1", "approved"))
    store.connection.execute("UPDATE refunds SET created_at = '2026-11-22T11:00:00+00:00'")
    assert end_of_day_totals(store, DAY) == [
        CurrencyTotal("EUR", 1, 3000),
        CurrencyTotal("MAD", 3, 12500 + 7000 - 2500),
    ]


def test_report_is_journalled_and_queued_for_the_platform(store: Store) -> None:
    """The report goes out through the outbox, with its journal entry."""
    _fill(store)
    report_end_of_day(store, "ETK00001", DAY)
    destination, payload = store.connection.execute(
        "SELECT destination, payload FROM outbox WHERE kind = 'eod_totals'").fetchone()
    assert destination == "platform"
    assert json.loads(payload) == {
        "business_date": "2026-11-22",
        "totals": [{"currency": "EUR", "count": 1, "amount_minor": 3000},
                   {"currency": "MAD", "count": 2, "amount_minor": 19500}],
    }
    assert store.verify_journal() > 0


def test_platform_reconciles_against_the_report(store: Store, tmp_path: Path) -> None:
    """The platform's sums of the same payments match the report; a payment it never got
    is listed as a mismatch."""
    counted = _fill(store)
    report_end_of_day(store, "ETK00001", DAY)
    signer = SoftwareSigner.generate()
    platform = open_storage(tmp_path / "platform.db")
    platform.register_key("ETK00001", 1, signer.public_key_pem().decode(), "2026-11-22T00:00:00Z")
    ingestor = Ingestor(platform)

    def send(kind: str, payload: dict[str, object], seq: int) -> None:
        envelope = build_envelope(signer, terminal_id="ETK00001", kind=kind, seq=seq,
                                  idempotency_key=f"k{seq}", payload=payload)
        acks = ingestor.ingest([RawUplink("ETK00001", envelope.to_json(), kind)])
        assert acks[0].status == "accepted", acks[0]

    eod = json.loads(store.connection.execute(
        "SELECT payload FROM outbox WHERE kind = 'eod_totals'").fetchone()[0])
    records = list(counted.items())
    for seq, (payment_id, (amount, currency)) in enumerate(records[:-1], start=1):
        send("transaction", {"transaction_id": payment_id, "amount_minor": amount,
                             "currency": currency, "business_date": "2026-11-22",
                             "state": "completed"}, seq)
    send("eod_totals", eod, 100)
    result = reconcile(platform, "2026-11-22")
    assert [(m.currency, m.kind) for m in result.mismatches] == [("EUR", "missing_on_platform")]
    payment_id, (amount, currency) = records[-1]
    send("transaction", {"transaction_id": payment_id, "amount_minor": amount,
                         "currency": currency, "business_date": "2026-11-22",
                         "state": "completed"}, 101)
    assert reconcile(platform, "2026-11-22").ok
    platform.close()


def test_cli_eod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """etika sync eod --date queues the report and prints the totals; a bad date is a usage
    error."""
    data_dir = tmp_path / "data"
    with Store.open(data_dir / "etika.db") as store:
        _fill(store)
    assert main(["--data-dir", str(data_dir), "sync", "eod", "--date", "2026-11-22",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"][1] == {
        "currency": "MAD", "count": 2, "amount_minor": 19500}
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(data_dir), "sync", "eod", "--date", "22/11/2026"])
    assert exit_info.value.code == 2
    assert "not a date like 2026-11-22" in capsys.readouterr().err
