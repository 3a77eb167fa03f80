"""The payment row TypedDicts mirror the migrated schema, and the ledger's reads fill exactly
their keys (JSON columns decoded, the sealed card data never read back)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal.payments import ledger
from terminal.payments.outcome import outcome_from_row
from terminal.payments.rows import (
    AttemptRow,
    FraudCheckRow,
    PaymentDetail,
    PaymentRow,
    PaymentSummary,
    PopRow,
    RefundRow,
    connector_of,
)
from terminal.store import Store

#: The columns the ledger decodes from JSON text; their TypedDict type is ``JsonValue``.
JSON_COLUMNS = {"emv", "route_connectors", "psp_reference", "receipt", "gateway_response",
                "checks_performed"}
SQL_TO_PY = {"TEXT": "str", "INTEGER": "int", "REAL": "float"}
PID = "6f1c1e8a-5d0b-4c1e-9a57-3f6a2b1c0d11"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "etika.db")
    yield opened
    opened.close()


def _expected(conn: sqlite3.Connection, table: str, key: str) -> str:
    """The annotation a TypedDict key must have for ``table.key``, from the schema."""
    for _cid, name, sql_type, notnull, _default, pk in conn.execute(f"PRAGMA table_info({table})"):
        if name == key:
            if key in JSON_COLUMNS:
                return "JsonValue"
            base = SQL_TO_PY[sql_type]
            return base if notnull or pk else f"{base} | None"
    raise AssertionError(f"{table} has no column {key}")


@pytest.mark.parametrize(("shape", "table"), [
    (PaymentSummary, "payments"),
    (PaymentRow,     "payments"),
    (AttemptRow,     "payment_attempts"),
    (FraudCheckRow,  "fraud_checks"),
    (PopRow,         "pop_transactions"),
    (RefundRow,      "refunds"),
])
def test_row_types_follow_the_schema(store: Store, shape: type, table: str) -> None:
    """Each key of a row TypedDict is a column of its table with the schema's type and nullability."""
    conn = store.connection
    # TypedDict keeps each annotation as a ForwardRef (rows.py postpones evaluation).
    annotations = {key: getattr(hint, "__forward_arg__", hint)
                   for key, hint in shape.__annotations__.items()}
    wrong = {key: (hint, _expected(conn, table, key)) for key, hint in annotations.items()
             if hint != _expected(conn, table, key)}
    assert wrong == {}


def test_payment_row_is_every_column_but_the_vault_blob(store: Store) -> None:
    """PaymentRow names every payments column (a new migration column must be added) except vault_blob."""
    columns = {row[1] for row in store.connection.execute("PRAGMA table_info(payments)")}
    assert set(PaymentRow.__annotations__) == columns - {"vault_blob"}


def _seed(store: Store) -> None:
    emv = {"aid": "A0000000041010", "tvr": "0000000000"}
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO payments (id, amount_minor, currency, status, vault_blob, offline, "
            "created_at, updated_at, emv, receipt, pan_masked, network) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (PID, 12_50, "MAD", "completed", b"\x00sealed", 0, "2026-12-03T10:00:00+00:00",
             "2026-12-03T10:00:01+00:00", json.dumps(emv), "not json", "541333******0001",
             "mastercard"))
        conn.execute(
            "INSERT INTO payment_attempts (id, payment_id, attempt_number, status, "
            "gateway_response, created_at) VALUES (?,?,?,?,?,?)",
            ("a1", PID, 1, "approved", json.dumps({"connector": "cih"}), "2026-12-03T10:00:00"))
        conn.execute(
            "INSERT INTO refunds (id, payment_id, amount_minor, currency, status, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?,?)",
            ("r1", PID, 500, "MAD", "approved", "2026-12-03T11:00:00", "2026-12-03T11:00:00"))


def test_payment_detail_fills_exactly_its_keys(store: Store) -> None:
    """payment_detail returns PaymentDetail's keys, JSON decoded (or kept as text), no vault_blob."""
    _seed(store)
    detail = ledger.payment_detail(store, PID)
    assert detail is not None
    assert set(detail) == set(PaymentDetail.__annotations__)
    assert "vault_blob" not in detail
    assert detail["emv"] == {"aid": "A0000000041010", "tvr": "0000000000"}
    assert detail["receipt"] == "not json"
    assert [connector_of(a) for a in detail["attempts"]] == ["cih"]
    assert [(r["kind"], r["amount_minor"]) for r in detail["refunds"]] == [("refund", 500)]
    assert (detail["fraud_check"], detail["pop"]) == (None, None)


def test_list_and_outcome_read_the_typed_rows(store: Store) -> None:
    """list_payments gives PaymentSummary keys, and outcome_from_row builds from a PaymentRow."""
    _seed(store)
    (summary,) = ledger.list_payments(store)
    assert set(summary) == set(PaymentSummary.__annotations__)
    row = ledger.payment_row(store, PID)
    assert row is not None
    outcome = outcome_from_row(store, row)
    assert (outcome.state, outcome.amount.minor, outcome.masked_pan, outcome.network,
            outcome.offline, dict(outcome.emv)) == (
        "completed", 1250, "541333******0001", "mastercard", False,
        {"aid": "A0000000041010", "tvr": "0000000000"})


def test_connector_of_an_attempt_without_one() -> None:
    """An attempt whose stored response names no connector (or is not an object) shows ``-``."""
    base: AttemptRow = {"attempt_number": 1, "status": "timeout", "error_code": None,
                        "error_message": None, "gateway_response": None, "created_at": "t"}
    assert connector_of(base) == "-"
    assert connector_of({**base, "gateway_response": "text"}) == "-"
    assert connector_of({**base, "gateway_response": {"connector": 3}}) == "-"
