"""The HTTP API through httpx: HTTPS fallback ingestion, fleet views, reconciliation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from edge_sync.messages import parse_ack
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


def _tx(
    number: int, amount: int, currency: str = "MAD", state: str = "completed"
) -> dict[str, Any]:
    return {"transaction_id": f"tx-{number}", "amount_minor": amount, "currency": currency,
            "business_date": "2026-11-21", "state": state}


async def post(http: httpx.AsyncClient, messages: list[Any], terminal_id: str = TERMINAL_ID
               ) -> httpx.Response:
    return await http.post(f"/v1/terminals/{terminal_id}/messages", json={"messages": messages})


async def test_https_batch_is_acked_after_commit_and_deduplicated(
    client: httpx.AsyncClient, storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """POSTed envelopes come back as acks in order; a resend is acked duplicate."""
    batch = [envelope(registered).wire() for _ in range(3)]
    first = await post(client, batch)
    assert first.status_code == 200
    acks = [parse_ack(a) for a in first.json()["acks"]]
    assert [a.status for a in acks] == ["accepted"] * 3
    assert [a.message_id for a in acks] == [m["message_id"] for m in batch]
    again = await post(client, batch[:1])
    assert [a["status"] for a in again.json()["acks"]] == ["duplicate"]
    assert storage.message_count(TERMINAL_ID) == 3


async def test_https_rejects_each_bad_message_alone(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """A tampered and a non-object message go unanswered; the good one is accepted."""
    good = envelope(registered).wire()
    tampered = envelope(registered).wire()
    tampered["payload"]["amount_minor"] += 1
    response = await post(client, [good, tampered, "junk"])
    statuses = [(a["message_id"], a["status"]) for a in response.json()["acks"]]
    assert statuses == [(good["message_id"], "accepted")]
    reasons = [r["reason"] for r in (await client.get("/v1/rejections")).json()["rejections"]]
    assert any("bad signature" in r for r in reasons)
    assert any("not an object" in r for r in reasons)


async def test_https_message_for_another_terminal_is_rejected(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """An envelope posted under another terminal's URL is refused, without an ack."""
    response = await post(client, [envelope(registered).wire()], terminal_id="T-0002")
    assert response.json()["acks"] == []
    reasons = [r["reason"] for r in (await client.get("/v1/rejections")).json()["rejections"]]
    assert any("does not match" in r for r in reasons)


@pytest.mark.parametrize(
    ("content",                         "status"),
    [
        (b"{not json",                       400),
        (b'{"messages": 3}',                 400),
        (b"[]",                              400),
        (b" " * (16 * 1024 * 1024 + 1),      413),
        (b'{"messages": [' + b"9" * 5000 + b"]}", 400),
        (b"[" * 100_000,                     400),
    ],
    # Short ids: a 16 MiB body as a test id would be carried in every report.
    ids=["not-json", "messages-not-a-list", "bare-list", "16MiB-plus-1-of-spaces",
         "integer-past-the-digit-limit", "nested-too-deep"],
)
async def test_https_malformed_body_is_a_400(
    client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    """A body that is not a message batch is refused as a whole, with a detail."""
    response = await client.post(f"/v1/terminals/{TERMINAL_ID}/messages", content=content)
    assert response.status_code == status
    assert "detail" in response.json()


async def test_fleet_views(
    client: httpx.AsyncClient, storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Terminals list last seen, backlog and counts; the fleet sums totals per currency."""
    await post(client, [
        envelope(registered, payload=_tx(1, 1500)).wire(),
        envelope(registered, payload=_tx(2, 2500)).wire(),
        envelope(registered, payload=_tx(3, 700, "EUR")).wire(),
        envelope(registered, kind="status", payload={"backlog": {"platform": 4}}).wire(),
    ])
    await post(client, ["x"])
    listing = (await client.get("/v1/terminals")).json()["terminals"]
    assert len(listing) == 1
    row = listing[0]
    assert row["terminal_id"] == TERMINAL_ID
    assert row["last_seen_at"] is not None
    assert row["backlog"] == {"platform": 4} and row["backlog_total"] == 4
    assert (row["messages"], row["rejected"]) == (4, 1)
    listed = (await client.get(f"/v1/terminals/{TERMINAL_ID}/messages",
                               params={"kind": "status"})).json()["messages"]
    assert [m["envelope"]["payload"] for m in listed] == [{"backlog": {"platform": 4}}]
    assert listed[0]["received_at"] is not None
    every = (await client.get(f"/v1/terminals/{TERMINAL_ID}/messages",
                              params={"limit": 2})).json()["messages"]
    assert len(every) == 2 and every[0]["envelope"]["seq"] > every[1]["envelope"]["seq"]
    one = (await client.get(f"/v1/terminals/{TERMINAL_ID}")).json()
    assert one["messages_by_kind"] == {"status": 1, "transaction": 3}
    fleet = (await client.get("/v1/fleet", params={"date": "2026-11-21"})).json()
    assert fleet["totals_by_currency"] == {
        "EUR": {"count": 1, "amount_minor": 700},
        "MAD": {"count": 2, "amount_minor": 4000},
    }
    assert fleet["backlog_total"] == 4 and fleet["terminals"] == 1
    refused = (await client.get("/v1/rejections", params={"terminal_id": TERMINAL_ID})).json()
    assert [r["reason"] for r in refused["rejections"]] == ["malformed envelope: not an object"]
    assert (await client.get("/v1/rejections", params={"terminal_id": "T-X"})).json() == {
        "rejections": []}
    assert (await client.get("/v1/terminals/T-NOPE")).status_code == 404
    assert (await client.get("/v1/fleet", params={"date": "21/11"})).status_code == 422


async def test_reconciliation_lists_every_mismatch(
    client: httpx.AsyncClient, storage: PlatformStorage, signer: SoftwareSigner
) -> None:
    """Matching, differing, missing-on-either-side and unreported terminals are all listed."""
    keys = {tid: SoftwareSigner.generate() for tid in ("T-A", "T-B", "T-C", "T-D")}
    for tid, key in keys.items():
        storage.register_key(tid, 1, key.public_key_pem().decode(), "2026-11-21T00:00:00Z")

    async def send(tid: str, kind: str, payload: dict[str, Any]) -> None:
        response = await post(client, [envelope(keys[tid], kind, payload, tid).wire()], tid)
        assert response.json()["acks"][0]["status"] == "accepted", response.json()

    # T-A: everything agrees (a refund and a reversed sale included).
    await send("T-A", "transaction", _tx(101, 5000))
    await send("T-A", "transaction", {**_tx(102, 1000), "type": "refund"})
    await send("T-A", "transaction", _tx(103, 9999, state="reversed"))
    await send("T-A", "eod_totals", {"business_date": "2026-11-21", "totals": [
        {"currency": "MAD", "count": 2, "amount_minor": 4000}]})
    # T-B: amount differs in MAD; EUR reported but never received; USD received, not reported.
    await send("T-B", "transaction", _tx(201, 3000))
    await send("T-B", "transaction", _tx(202, 800, "USD"))
    await send("T-B", "eod_totals", {"business_date": "2026-11-21", "totals": [
        {"currency": "MAD", "count": 1, "amount_minor": 3100},
        {"currency": "EUR", "count": 2, "amount_minor": 900}]})
    # T-C: sales but no end-of-day report.  T-D: an empty report and no sales: fine.
    await send("T-C", "transaction", _tx(301, 1200))
    await send("T-D", "eod_totals", {"business_date": "2026-11-21", "totals": []})

    result = (await client.get("/v1/reconciliation", params={"date": "2026-11-21"})).json()
    assert result["ok"] is False
    assert result["terminals_checked"] == ["T-A", "T-B", "T-C", "T-D"]
    assert result["matched"] == [{"terminal_id": "T-A", "currency": "MAD"}]
    found = {(m["terminal_id"], m["currency"], m["kind"]): m for m in result["mismatches"]}
    assert set(found) == {
        ("T-B", "EUR", "missing_on_platform"),
        ("T-B", "MAD", "amount_mismatch"),
        ("T-B", "USD", "missing_in_report"),
        ("T-C", None, "no_report"),
    }
    mad = found[("T-B", "MAD", "amount_mismatch")]
    assert mad["terminal"] == {"count": 1, "amount_minor": 3100}
    assert mad["platform"] == {"count": 1, "amount_minor": 3000}
    assert found[("T-C", None, "no_report")]["platform"] == {"count": 1, "amount_minor": 1200}
    # Another day has nothing to reconcile.
    other = (await client.get("/v1/reconciliation", params={"date": "2026-11-20"})).json()
    assert other == {**other, "ok": True, "mismatches": [], "terminals_checked": []}


async def test_later_eod_report_replaces_the_earlier(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """A corrected end-of-day report supersedes the first; a stale one arriving late does not."""
    await post(client, [envelope(registered, payload=_tx(1, 500)).wire()])
    day = {"business_date": "2026-11-21"}
    wrong = {**day, "totals": [{"currency": "MAD", "count": 9, "amount_minor": 9}]}
    right = {**day, "totals": [{"currency": "MAD", "count": 1, "amount_minor": 500}]}
    await post(client, [envelope(registered, "eod_totals", wrong, seq=50).wire()])
    await post(client, [envelope(registered, "eod_totals", right, seq=51).wire()])
    await post(client, [envelope(registered, "eod_totals", wrong, seq=49).wire()])
    result = (await client.get("/v1/reconciliation", params={"date": "2026-11-21"})).json()
    assert result["ok"] is True, json.dumps(result)


async def test_https_held_message_gets_no_ack(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """A message signed with an unregistered key version is left out of the acks."""
    rotated = SoftwareSigner.generate(key_version=2)
    good = envelope(registered).wire()
    held = envelope(rotated).wire()
    response = await post(client, [held, good])
    assert [a["message_id"] for a in response.json()["acks"]] == [good["message_id"]]


async def test_metrics_count_outcomes(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """/metrics exposes uplinks by outcome in the Prometheus text format."""
    good = envelope(registered).wire()
    await post(client, [good, good, "junk", envelope(SoftwareSigner.generate(2)).wire()])
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    for outcome, count in (("accepted", 1), ("duplicate", 1), ("refused", 1), ("held", 1)):
        assert f'etika_platform_uplinks_total{{outcome="{outcome}"}} {count}.0' in lines
    assert "etika_platform_commits_total 1.0" in lines


TOKEN = "operator-token-0123456789"


@pytest.mark.parametrize(
    ("method", "path",                                    "authorization",      "status"),
    [
        ("GET",  "/v1/terminals",                           None,                 401),
        ("GET",  "/v1/terminals",                           "Bearer wrong-token", 401),
        ("GET",  "/v1/terminals",                           f"Bearer {TOKEN}",    200),
        ("GET",  "/v1/reconciliation?date=2026-11-21",      None,                 401),
        ("GET",  "/metrics",                                None,                 401),
        ("GET",  "/healthz",                                None,                 200),
        ("POST", f"/v1/terminals/{TERMINAL_ID}/messages",   None,                 200),
    ],
)
async def test_operator_token_guards_the_fleet_views_not_the_uplink(
    storage: PlatformStorage, method: str, path: str, authorization: str | None, status: int
) -> None:
    """With a token, operators' endpoints want it; terminals' uplink and health stay open."""
    app = create_app(storage, operator_token=TOKEN)
    headers = {"authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://platform") as http:
        body = {"json": {"messages": []}} if method == "POST" else {}
        response = await http.request(method, path, headers=headers, **body)
    assert response.status_code == status
