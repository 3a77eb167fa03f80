"""Platform API hygiene against an unauthenticated sender (#12 item 11, #15 item 4): bounded
refusal logging, no fleet enumeration, no database text in errors, size and depth capped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from edge_sync.platform.api import create_app
from edge_sync.platform.errors import StorageError
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


@pytest.fixture
async def client(storage: PlatformStorage) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(storage, Ingestor(storage, signer=SoftwareSigner.generate()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://platform") as http:
        yield http


async def test_junk_posts_write_a_bounded_number_of_rejection_rows(
    client: httpx.AsyncClient, storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A flood of unverifiable messages is counted but logged only up to the rate limit."""
    for _ in range(5):
        response = await client.post(f"/v1/terminals/{TERMINAL_ID}/messages",
                                     json={"messages": ["junk"] * 100})
        assert response.status_code == 200 and response.json()["acks"] == []
    assert len(storage.rejections(limit=1000)) <= 20
    metrics = (await client.get("/metrics")).text
    assert 'etika_platform_uplinks_total{outcome="suppressed"} 480.0' in metrics


def test_the_rejection_log_is_capped(storage: PlatformStorage) -> None:
    """Past its cap, the oldest refusals make room for new ones."""
    from edge_sync.platform.records import Rejection

    storage.rejections_kept = 3  # type: ignore[attr-defined]
    for second in range(6):
        storage.record_rejections([Rejection("T-X", f"m{second}", "junk")],
                                  f"2026-11-21T00:00:0{second}Z")
    assert [r.message_id for r in storage.rejections(limit=10)] == ["m5", "m4", "m3"]


async def test_unknown_and_known_terminals_are_refused_alike(
    client: httpx.AsyncClient, registered: SoftwareSigner
) -> None:
    """A forged message for a registered terminal and one for a terminal that does not
    exist get the same answer: the fleet cannot be enumerated."""
    forger = SoftwareSigner.generate()
    known = await client.post(f"/v1/terminals/{TERMINAL_ID}/messages",
                              json={"messages": [envelope(forger).wire()]})
    unknown = await client.post("/v1/terminals/T-NOBODY/messages",
                                json={"messages": [envelope(forger,
                                                            terminal_id="T-NOBODY").wire()]})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.json() == {"acks": []}


class _DatabaseDown:
    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise StorageError("connection to server at 10.0.0.7 port 5432 failed: "
                               "password authentication failed for user etika_prod")

        return fail


async def test_503_does_not_echo_the_database_error() -> None:
    """The database's host, user and error text stay in the log, not in the answer."""
    app = create_app(_DatabaseDown())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://platform") as http:
        response = await http.post(f"/v1/terminals/{TERMINAL_ID}/messages",
                                   json={"messages": [{"v": 1}]})
    assert response.status_code == 503
    assert "10.0.0.7" not in response.text and "etika_prod" not in response.text


@pytest.mark.parametrize(
    ("content",                                         "status"),
    [
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
        (b"[" * 20_000_000,                                  413),
    ],
    # Short ids: a 20 MB body as a test id would be carried in every report.
    ids=["nested-100000-deep", "20MB-of-brackets"],
)
async def test_hostile_bodies_are_refused_before_parsing_goes_wrong(
    client: httpx.AsyncClient, storage: PlatformStorage, content: bytes, status: int
) -> None:
    """A deeply nested body is a 400 and an oversized one a 413; nothing is stored."""
    response = await client.post(f"/v1/terminals/{TERMINAL_ID}/messages", content=content)
    assert response.status_code == status
    assert storage.message_count() == 0


def test_a_nested_uplink_over_mqtt_is_refused_not_raised(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Deep nesting inside one uplink body is a refusal of that message (#17 item 9)."""
    body = b'{"v": 1, "payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    ingestor = Ingestor(storage)
    assert ingestor.ingest([RawUplink(TERMINAL_ID, body, "transaction")]) == [None]
    assert ingestor.counts["refused"] == 1
    assert "nested" in storage.rejections(limit=1)[0].reason
