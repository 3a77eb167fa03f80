"""The platform forwards the terminals' token-activation events to the token system."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage
from edge_sync.platform.token_forward import TokenActivationForwarder
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


def _activation(payment: str) -> dict[str, object]:
    return {"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, payment)), "terminal_id": TERMINAL_ID,
            "payment_id": payment, "card_token": "4761730000000019", "amount_minor": 2500,
            "currency": "MAD", "pop_reference": "POP-1"}


async def test_stored_activations_are_posted_once(storage: PlatformStorage,
                                                  registered: SoftwareSigner) -> None:
    """Each accepted token_activation uplink is posted once to the token system; other
    kinds are not; a second round sends nothing new; a refusal is counted, not retried."""
    received: list[dict[str, object]] = []

    def token_system(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        received.append(body)
        return httpx.Response(422 if body["payment_id"] == "refused" else 200,
                              json={"status": "recorded"})

    ingestor = Ingestor(storage)
    batch = [envelope(registered, "token_activation", _activation(p)) for p in ("p1", "refused")]
    batch.append(envelope(registered))  # a transaction: not forwarded
    acks = ingestor.ingest([RawUplink(TERMINAL_ID, e.to_json(), e.kind) for e in batch])
    assert all(a is not None and a.status == "accepted" for a in acks)
    forwarder = TokenActivationForwarder(storage, "http://token.test/v1/token-system/activations",
                                         transport=httpx.MockTransport(token_system))
    try:
        assert await forwarder.forward_once() == 1
        assert await forwarder.forward_once() == 0
    finally:
        await forwarder.aclose()
    assert [r["payment_id"] for r in received] == ["p1", "refused"]
    assert (forwarder.stats.forwarded, forwarder.stats.refused) == (1, 1)


async def test_unreachable_token_system_is_retried(storage: PlatformStorage,
                                                   registered: SoftwareSigner) -> None:
    """A token system that cannot be reached is tried again at the next round."""
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"status": "recorded"})

    message = envelope(registered, "token_activation", _activation("p2"))
    Ingestor(storage).ingest([RawUplink(TERMINAL_ID, message.to_json(), "token_activation")])
    forwarder = TokenActivationForwarder(storage, "http://token.test/a",
                                         transport=httpx.MockTransport(flaky))
    try:
        assert await forwarder.forward_once() == 0
        assert await forwarder.forward_once() == 1
    finally:
        await forwarder.aclose()
    assert forwarder.stats.failed_rounds == 1
