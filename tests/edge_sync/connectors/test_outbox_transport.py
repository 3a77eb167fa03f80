"""Queued reversals and completions drained to a PSP through the outbox worker's Transport."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from edge_sync.connectors import Operation, Outcome, PspReference, Router, RouteRule
from edge_sync.connectors.base import SEARCH_SETTLE_S
from edge_sync.connectors.errors import PspTimeoutError, PspUnreachableError
from edge_sync.connectors.fake import ScriptedConnector, response
from edge_sync.connectors.outbox_transport import PspOutboxTransport
from edge_sync.errors import TransportError
from edge_sync.messages import Envelope, build_envelope
from edge_sync.signing import SoftwareSigner
from edge_sync.transport import Transport

SIGNER = SoftwareSigner.generate()
ORIGINAL = PspReference(connector="cih", transaction_id="t-1", mti="0200", stan="000001",
                        transmitted_at="1122100000").as_dict()
AMOUNT = {"minor": 2500, "currency": "MAD", "numeric": 504, "exponent": 2}


async def no_sleep(_: float) -> None:
    return None


def envelope(kind: str = "reversal", payload: dict[str, Any] | None = None, seq: int = 1
             ) -> Envelope:
    return build_envelope(SIGNER, terminal_id="ETK00001", kind=kind, seq=seq,
                          idempotency_key=f"k{seq}",
                          payload=payload or {"original": ORIGINAL, "amount": AMOUNT})


def transport(connector: ScriptedConnector) -> PspOutboxTransport:
    router = Router([RouteRule("all", ("cih",))], {"cih": connector}, {}, sleep=no_sleep,
                    max_attempts=1)
    return PspOutboxTransport(router, "cih")


async def test_is_a_transport_and_acks_in_order() -> None:
    """Approved reversal and completion are accepted; a replayed one counts as duplicate."""
    cih = ScriptedConnector("cih", {Operation.COMPLETE: [replace(response(), replayed=True)]})
    t = transport(cih)
    assert isinstance(t, Transport) and t.name == "psp:cih"
    batch = [envelope("reversal", seq=1), envelope("completion", seq=2)]
    acks = await t.deliver(batch, timeout=5)
    assert [acks[e.message_id].status for e in batch] == ["accepted", "duplicate"]
    assert [op for op, _ in cih.calls] == [Operation.REVERSE, Operation.COMPLETE]


@pytest.mark.parametrize(
    ("script",                                                  "statuses"),
    [
        ([response(Outcome.DECLINE, "12")],                         ["rejected", "accepted"]),
        ([PspTimeoutError("no answer", connector="cih")],                []),
        ([response(Outcome.RETRY, "96")],                           []),
    ],
)
async def test_decline_is_rejected_unknown_stops_the_batch(script: list[Any],
                                                           statuses: list[str]) -> None:
    """A refusal dead-letters its row; no definite answer leaves it and the rest for later."""
    t = transport(ScriptedConnector("cih", {Operation.REVERSE: script}))
    batch = [envelope(seq=1), envelope(seq=2)]
    acks = await t.deliver(batch, timeout=5)
    assert [acks[e.message_id].status for e in batch if e.message_id in acks] == statuses


async def test_unreachable_before_any_ack_is_a_transport_error() -> None:
    """A PSP that cannot be reached is the link being down, as the worker expects."""
    t = transport(ScriptedConnector("cih", {Operation.REVERSE: [PspUnreachableError("down")]}))
    with pytest.raises(TransportError, match="psp:cih"):
        await t.deliver([envelope()], timeout=5)


@pytest.mark.parametrize(
    ("kind",        "payload"),
    [
        ("advice",      {"original": ORIGINAL, "amount": AMOUNT}),
        ("reversal",    {"amount": AMOUNT}),
        ("reversal",    {"original": {**ORIGINAL, "connector": "bmce"}, "amount": AMOUNT}),
    ],
)
async def test_rows_it_cannot_carry_are_rejected(kind: str, payload: dict[str, Any]) -> None:
    """Unknown kinds, broken payloads and rows for another PSP are rejected, not retried."""
    acks = await transport(ScriptedConnector("cih")).deliver([envelope(kind, payload)], 5)
    assert [a.status for a in acks.values()] == ["rejected"]


async def test_accepted_rows_reach_the_hook_and_a_failing_hook_holds_the_ack() -> None:
    """Each approved row is handed to ``on_accepted`` with the PSP's answer before its ack;
    a hook that fails leaves that row and the rest unacknowledged (sent again later)."""
    from etika_errors import EtikaError

    seen: list[tuple[str, str]] = []

    async def hook(row: Envelope, answer: Any) -> None:
        seen.append((row.message_id, answer.code))
        if len(seen) == 2:
            raise EtikaError("the store is full")

    router = Router([RouteRule("all", ("cih",))], {"cih": ScriptedConnector("cih")}, {},
                    sleep=no_sleep, max_attempts=1)
    t = PspOutboxTransport(router, "cih", on_accepted=hook)
    batch = [envelope(seq=1), envelope(seq=2), envelope(seq=3)]
    acks = await t.deliver(batch, timeout=5)
    assert list(acks) == [batch[0].message_id]
    assert seen == [(batch[0].message_id, "00"), (batch[1].message_id, "00")]


@pytest.mark.parametrize(
    ("age_s",                     "statuses"),
    [
        (5.0,                         []),
        (SEARCH_SETTLE_S + 1,         ["accepted"]),
    ],
)
async def test_a_lagging_search_is_believed_only_once_the_row_is_old(
        age_s: float, statuses: list[str]) -> None:
    """A queued reversal that a REST PSP's search cannot find stays queued until the search
    has had SEARCH_SETTLE_S to show a charge; then "nothing to undo" acknowledges it."""
    not_found = replace(response(Outcome.APPROVE, "not_found"), not_found_by_search=True)
    row = envelope()
    queued = datetime.fromisoformat(row.created_at)
    router = Router([RouteRule("all", ("cih",))],
                    {"cih": ScriptedConnector("cih", {Operation.REVERSE: [not_found]})}, {},
                    sleep=no_sleep, max_attempts=1)
    t = PspOutboxTransport(router, "cih", now=lambda: queued + timedelta(seconds=age_s))
    acks = await t.deliver([row], timeout=5)
    assert [a.status for a in acks.values()] == statuses
