"""The platform mirrors each payment from the terminal's uplinks: its latest state, fraud
check and PSP attempts, refunds referring to their sale; never a clear card number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from edge_sync.platform.api import create_app
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


@pytest.fixture
async def client(storage: PlatformStorage) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://platform") as http:
        yield http


def _payment(state: str, **extra: Any) -> dict[str, Any]:
    return {"payment_id": "pay-1", "type": "sale", "state": state, "amount_minor": 60000,
            "currency": "MAD", "business_date": "2026-12-03", "network": "visa",
            "pan_masked": "476173…0010", "offline": False,
            "fraud": {"risk_score": "0.05", "risk_level": "low", "decision": "approve"},
            "attempts": [{"connector": "cih", "status": "approved", "code": "00"}], **extra}


async def _post(http: httpx.AsyncClient, messages: list[Any]) -> list[dict[str, Any]]:
    answer = await http.post(f"/v1/terminals/{TERMINAL_ID}/messages",
                             json={"messages": [m.wire() for m in messages]})
    acks: list[dict[str, Any]] = answer.json()["acks"]
    return acks


async def test_latest_state_with_fraud_and_attempts(client: httpx.AsyncClient,
                                                    registered: SoftwareSigner) -> None:
    """Two state reports of one payment leave one mirrored row with the later state; its
    fraud check, attempts and masked PAN are kept; a refund names its sale."""
    acks = await _post(client, [
        envelope(registered, payload=_payment("pop_deferred")),
        envelope(registered, payload=_payment("completed")),
        envelope(registered, payload={"payment_id": "ref-1", "type": "refund",
                                      "state": "approved", "amount_minor": 10000,
                                      "currency": "MAD", "business_date": "2026-12-03",
                                      "refers_to": "pay-1"}),
    ])
    assert [a["status"] for a in acks] == ["accepted"] * 3
    rows = (await client.get(f"/v1/terminals/{TERMINAL_ID}/transactions")).json()
    by_id = {r["transaction_id"]: r for r in rows["transactions"]}
    sale = by_id["pay-1"]
    assert (sale["state"], sale["amount_minor"]) == ("completed", 60000)
    assert sale["details"]["fraud"]["risk_level"] == "low"
    assert sale["details"]["attempts"] == [{"connector": "cih", "status": "approved",
                                            "code": "00"}]
    assert sale["details"]["pan_masked"] == "476173…0010"
    refund = by_id["ref-1"]
    assert (refund["amount_minor"], refund["details"]["refers_to"]) == (-10000, "pay-1")


async def test_a_clear_card_number_is_refused(client: httpx.AsyncClient,
                                              registered: SoftwareSigner) -> None:
    """A payment report carrying a Luhn-valid card number is refused, and nothing of it is
    mirrored."""
    acks = await _post(client, [envelope(registered,
                                         payload=_payment("completed",
                                                          pan_masked="4761739001010010"))])
    assert acks[0]["status"] == "rejected" and "card number" in acks[0]["reason"]
    rows = (await client.get(f"/v1/terminals/{TERMINAL_ID}/transactions")).json()
    assert rows["transactions"] == []


async def test_unknown_terminal_is_404(client: httpx.AsyncClient) -> None:
    """Asking for an unregistered terminal's payments is a 404, not an empty list."""
    answer = await client.get("/v1/terminals/NOPE/transactions")
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("state",          "record_status", "expected"),
    [
        ("completed",    "confirmed",     None),
        ("completed",    "pending",       "pop_not_confirmed"),
        ("completed",    None,            "pop_missing"),
        ("cancelled",    "confirmed",     "pop_confirmed_for_failed_sale"),
        ("cancelled",    "cancelled",     None),
    ],
)
def test_reconciliation_with_the_pop_ledger(storage: PlatformStorage,
                                            registered: SoftwareSigner, state: str,
                                            record_status: str | None,
                                            expected: str | None) -> None:
    """Each sale of the day is matched one to one with its PoP record: one that counts needs
    its record confirmed, one that failed must not have it confirmed."""
    from edge_sync.platform.ingest import Ingestor, RawUplink
    from edge_sync.platform.reconcile import reconcile_pop

    message = envelope(registered, payload=_payment(state, pop_record_id="rec-1"))
    Ingestor(storage).ingest([RawUplink(TERMINAL_ID, message.to_json(), "transaction")])
    records = ([] if record_status is None else
               [{"record_id": "rec-1", "terminal_id": TERMINAL_ID, "kind": "sale",
                 "status": record_status, "currency": "MAD", "amount_minor": 60000}])
    found = reconcile_pop(storage, "2026-12-03", records)
    assert [m.kind for m in found] == ([] if expected is None else [expected])


def test_a_confirmed_record_unknown_to_the_platform_is_reported(
        storage: PlatformStorage, registered: SoftwareSigner) -> None:
    """A PoP record confirmed for a sale the platform never heard of is a mismatch."""
    from edge_sync.platform.reconcile import reconcile_pop

    found = reconcile_pop(storage, "2026-12-03", [
        {"record_id": "ghost", "terminal_id": TERMINAL_ID, "kind": "sale",
         "status": "confirmed", "currency": "MAD", "amount_minor": 100}])
    assert [(m.kind, m.pop_record_id) for m in found] == [("pop_only", "ghost")]


_PAY = "3f2a1c9e-0000-4000-8000-000000000001"


def _entry(key: str, state: str = "captured", amount: int = 60000, *, kind: str = "sale",
           refunded: int = 0, code: str = "00", currency: str = "MAD") -> dict[str, Any]:
    return {"key": key, "kind": kind, "state": state, "amount_minor": amount,
            "currency": currency, "captured": amount if state != "held" else 0,
            "refunded": refunded, "original_key": None, "code": code}


@pytest.mark.parametrize(
    ("state",        "refund", "ledger",                                           "expected"),
    [
        ("completed",  0,        [("own", "captured", 60000, 0)],                   []),
        ("completed",  0,        [("advice", "captured", 60000, 0)],                []),
        ("completed",  10000,    [("own", "captured", 60000, 10000)],               []),
        ("completed",  0,        [],                                                ["psp_missing"]),
        ("completed",  0,        [("own", "declined", 60000, 0)],                   ["psp_missing"]),
        ("completed",  0,        [("own", "captured", 59999, 0)],                   ["amount_mismatch"]),
        ("completed",  0,        [("own", "captured", 60000, 0),
                                  ("advice", "captured", 60000, 0)],                ["double_charge"]),
        ("completed",  10000,    [("own", "captured", 60000, 0)],                   ["refund_mismatch"]),
        ("completed",  0,        [("own", "captured", 60000, 500)],                 ["refund_mismatch"]),
        ("cancelled",  0,        [("own", "reversed", 60000, 0)],                   []),
        ("cancelled",  0,        [("own", "captured", 60000, 0)],                   ["psp_charged_for_failed_sale"]),
        ("voided",     0,        [("own", "reversed", 60000, 0)],                   []),
    ],
)
def test_reconciliation_with_the_psp_ledger(storage: PlatformStorage,
                                            registered: SoftwareSigner, state: str,
                                            refund: int,
                                            ledger: list[tuple[str, str, int, int]],
                                            expected: list[str]) -> None:
    """Each sale of the day is matched one to one with what the PSPs booked for it (under its
    own key, or its advice's when approved offline): charged once, for its amount, refunds
    equal; a sale that failed holds no charge."""
    from edge_sync.platform.ingest import Ingestor, RawUplink
    from edge_sync.platform.reconcile import reconcile_psp
    from edge_sync.transaction_keys import advice_key

    keys = {"own": _PAY, "advice": str(advice_key(_PAY))}
    messages = [envelope(registered, payload={**_payment(state), "payment_id": _PAY})]
    if refund:
        messages.append(envelope(registered, payload={
            "payment_id": "ref-1", "type": "refund", "state": "approved",
            "amount_minor": refund, "currency": "MAD", "business_date": "2026-12-03",
            "refers_to": _PAY}))
    Ingestor(storage).ingest([RawUplink(TERMINAL_ID, m.to_json(), "transaction")
                              for m in messages])
    entries = [_entry(keys[which], st, amount, refunded=back)
               for which, st, amount, back in ledger]
    found = reconcile_psp(storage, "2026-12-03", entries)
    assert [m.kind for m in found] == expected
    assert all(m.transaction_id == _PAY for m in found)


def test_a_charge_unknown_to_the_platform_is_reported(storage: PlatformStorage,
                                                      registered: SoftwareSigner) -> None:
    """A PSP charge under a key no payment of the platform explains is a mismatch; a
    declined one is not."""
    from edge_sync.platform.reconcile import reconcile_psp

    found = reconcile_psp(storage, "2026-12-03", [_entry("ghost", amount=100),
                                                  _entry("refused", "declined", code="51")])
    assert [(m.kind, m.psp_keys, m.psp_amount_minor) for m in found] == [
        ("psp_only", ("ghost",), 100)]


async def test_a_uuid_that_looks_like_a_card_number_is_not_one(
        client: httpx.AsyncClient, registered: SoftwareSigner) -> None:
    """A PoP record id whose last group is 12 decimal digits passing the Luhn check (the
    headless demo met one) is an id, not a card number: the payment is mirrored; the same
    digits on their own are still refused."""
    from hsm.cards import luhn_valid

    record_id = "0b8326cd-abe0-4a5b-99f8-497078014162"
    assert luhn_valid(record_id[-12:])
    acks = await _post(client, [envelope(registered,
                                         payload=_payment("completed",
                                                          pop_record_id=record_id))])
    assert acks[0]["status"] == "accepted", acks
    refused = await _post(client, [envelope(registered, payload=_payment(
        "completed", payment_id="pay-2", pop_record_id=record_id[-12:]))])
    assert refused[0]["status"] == "rejected" and "card number" in refused[0]["reason"]
