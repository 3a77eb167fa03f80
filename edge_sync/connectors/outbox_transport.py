"""Store-and-forward to a PSP: the outbox worker's :class:`~edge_sync.transport.Transport`
for destination ``psp:<connector>``.

What the terminal queues for a PSP (outbox ``kind`` → payload → call):

=============  =====================================================  ====================
kind           payload (JSON, no card data)                           call
=============  =====================================================  ====================
``reversal``   ``ReversalPendingError.reversal``: connector, original       ``Router.reverse``
               (:class:`PspReference` as a dict), amount
``completion`` ``{"original": {...}, "amount": {...}}`` (same forms)   ``Router.complete``
``advice``     ``{"payment_id", "advice_id", "connector", "network",   ``Router.advice``
               "amount", "entry_mode"}``: an offline approval, sent
               under its own ``advice_id`` (not the payment's id, which
               an online attempt may hold); the card data is
               re-sealed for the PSP from the vault by ``advice_card``
=============  =====================================================  ====================

A reversal answered "original not found" (ISO 8583 ``25``) is acknowledged: the PSP holds no
charge to undo (recovery reverses at every PSP a payment could have reached). A REST PSP's
"not found" comes from its search, which lags behind its charges: it is believed only once
the row is :data:`~edge_sync.connectors.base.SEARCH_SETTLE_S` old; before that the row (and
the rows after it) come back later.

An accepted row is handed to ``on_accepted`` with the PSP's answer before it is acknowledged:
the terminal records an advice's acquirer reference (RRN, STAN and DE 7, or the REST capture
id) on its payment there, since a later refund or void must name it. A hook that fails
(:class:`~etika_errors.EtikaError`) leaves the row unacknowledged: it is sent again as a
repeat, the PSP replays its answer and the hook gets a second chance.

Rows go in order and stop at the first one without a definite answer (it and the rest stay
unacknowledged and come back later, sent as ISO 8583 repeats or under the same idempotency
key). An approval is ``accepted`` (``duplicate`` when the PSP replayed it); a decline is
``rejected`` with the PSP's code, so the worker dead-letters it and raises an alert — a
reversal the PSP refuses needs a person. A PSP that cannot be reached before anything was
acknowledged is a :class:`~edge_sync.errors.TransportError`, as the worker expects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from edge_sync.connectors.base import (
    SEARCH_SETTLE_S,
    Amount,
    AuthorisationRequest,
    CardInput,
    EntryMode,
    Outcome,
    PspReference,
    PspResponse,
)
from edge_sync.connectors.errors import (
    CircuitOpenError,
    OutcomeUnknownError,
    PspRejectedError,
    PspUnreachableError,
)
from edge_sync.connectors.routing import Router
from edge_sync.errors import TransportError
from edge_sync.messages import Ack, Envelope
from etika_errors import EtikaError

__all__ = ["KINDS", "AcceptedHook", "PspOutboxTransport"]

KINDS = ("reversal", "completion", "advice")
#: ISO 8583 response code "unable to locate original": nothing to reverse.
ORIGINAL_NOT_FOUND = "25"
#: Re-seals an offline approval's card for its PSP (the terminal opens the vault blob in the
#: key store); given the advice row's payload.
AdviceCard = Callable[[Mapping[str, Any]], Awaitable[CardInput]]
#: Told of every row the PSP approved, with its answer, before the row is acknowledged.
AcceptedHook = Callable[[Envelope, PspResponse], Awaitable[None]]


def _reference_and_amount(payload: Mapping[str, Any]) -> tuple[PspReference, Amount]:
    try:
        return PspReference.from_dict(payload["original"]), Amount(**payload["amount"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"payload lacks a valid original/amount ({exc})") from exc


class PspOutboxTransport:
    """Delivers ``psp:<connector>`` outbox rows through ``router``."""

    def __init__(self, router: Router, connector: str, *,
                 advice_card: AdviceCard | None = None,
                 on_accepted: AcceptedHook | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if connector not in router.connectors:
            raise ValueError(f"the router has no connector {connector!r}")
        self.router = router
        self.connector = connector
        self._advice_card = advice_card
        self._on_accepted = on_accepted
        self._now = now

    def _search_settled(self, envelope: Envelope) -> bool:
        """Whether a search that finds no payment for this row's transaction is believed:
        the row is old enough for the PSP's search to show a charge made when it was queued."""
        try:
            queued = datetime.fromisoformat(envelope.created_at)
        except ValueError:
            return True  # the wire model checked it; an unreadable one waits for no one
        return (self._now() - queued).total_seconds() >= SEARCH_SETTLE_S

    @property
    def name(self) -> str:
        return f"psp:{self.connector}"

    async def _advice(self, payload: Mapping[str, Any]) -> PspResponse:
        if self._advice_card is None:
            raise ValueError(f"{self.name} was given no way to re-seal cards for advices")
        try:
            # Rows queued before advices had their own id keep the payment's.
            transaction_id = uuid.UUID(str(payload.get("advice_id") or payload["payment_id"]))
            amount = Amount(**payload["amount"])
            network = str(payload.get("network", ""))
            mode = EntryMode(payload.get("entry_mode", "chip"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"advice payload lacks payment_id/amount ({exc})") from exc
        card = await self._advice_card(payload)
        card = replace(card, entry_mode=EntryMode.OFFLINE_ADVICE if mode is EntryMode.CHIP
                       else card.entry_mode)
        return await self.router.advice(self.connector, AuthorisationRequest(
            transaction_id, amount, card, capture=True, network=network))

    async def _send(self, envelope: Envelope) -> PspResponse:
        if envelope.kind == "advice":
            return await self._advice(envelope.payload)
        original, amount = _reference_and_amount(envelope.payload)
        if original.connector != self.connector:
            raise ValueError(f"row for {original.connector!r} queued to {self.name}")
        if envelope.kind == "reversal":
            return await self.router.reverse(original, amount)
        if envelope.kind == "completion":
            return await self.router.complete(original, amount)
        raise ValueError(f"{self.name} does not carry {envelope.kind!r} rows (only {KINDS})")

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        acks: dict[str, Ack] = {}
        deadline = time.monotonic() + timeout
        for envelope in envelopes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                response = await asyncio.wait_for(self._send(envelope), remaining)
            except (PspUnreachableError, CircuitOpenError) as exc:
                if not acks:
                    raise TransportError(f"{self.name}: {exc}", destination=self.name) from exc
                break
            except (OutcomeUnknownError, TimeoutError):
                break  # no definite answer: this row and the rest come back later
            except (PspRejectedError, ValueError) as exc:
                acks[envelope.message_id] = Ack(message_id=envelope.message_id,
                                                status="rejected", reason=str(exc))
                continue
            if response.outcome is Outcome.RETRY:
                break
            if response.not_found_by_search and not self._search_settled(envelope):
                break  # the PSP's search may not show the charge yet: asked again later
            nothing_to_undo = (envelope.kind == "reversal"
                               and response.code == ORIGINAL_NOT_FOUND)
            if response.outcome is Outcome.APPROVE and self._on_accepted is not None:
                try:
                    await self._on_accepted(envelope, response)
                except EtikaError:
                    break  # not recorded: the row comes back as a repeat (see the docstring)
            if response.outcome is Outcome.APPROVE or nothing_to_undo:
                acks[envelope.message_id] = Ack(
                    message_id=envelope.message_id,
                    status="duplicate" if response.replayed else "accepted")
            else:
                acks[envelope.message_id] = Ack(
                    message_id=envelope.message_id, status="rejected",
                    reason=f"{self.name} answered {response.code} "
                    f"({response.message or response.outcome.value})")
        return acks
