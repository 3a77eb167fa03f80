"""Store-and-forward to the PoP back end: the outbox worker's
:class:`~edge_sync.transport.Transport` for destination ``pop``.

What the terminal queues for the PoP back end (outbox ``kind`` → payload → call):

==============  ==============================================  ==========================
kind            payload (JSON, no card data)                    call
==============  ==============================================  ==========================
``pop_record``  :meth:`PopRecord.as_payload`                    :meth:`PopClient.submit`
``pop_cancel``  ``{"record_id": str, "reason": str}``           :meth:`PopClient.cancel`
==============  ==============================================  ==========================

Rows go in order and stop at the first one without a definite answer (it and the rest come
back later under the same record id; the back end dedups). ``pending`` and ``confirmed`` are
``accepted`` (the record is in the ledger; its confirmation is polled by ``status``), as is
``cancelled`` (a record withdrawn before it arrived needs nothing more). A refusal
(:class:`PopRejectedError`) or a malformed row is ``rejected`` with the reason, so the worker
dead-letters it and raises an alert. A back end that cannot be reached before anything was
acknowledged is a :class:`~edge_sync.errors.TransportError`, as the worker expects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from edge_sync.errors import (
    PopRecordError,
    PopRejectedError,
    PopUnavailableError,
    PopUnknownRecordError,
    TransportError,
)
from edge_sync.messages import Ack, Envelope
from edge_sync.pop import PopClient, PopReceipt, PopRecord

__all__ = ["KINDS", "PopOutboxTransport"]

KINDS = ("pop_record", "pop_cancel")


class PopOutboxTransport:
    """Delivers ``pop`` outbox rows through a :class:`PopClient`."""

    def __init__(self, client: PopClient, *, name: str = "pop") -> None:
        self.client = client
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def _send(self, envelope: Envelope) -> PopReceipt:
        if envelope.kind == "pop_record":
            return await self.client.submit(PopRecord.from_payload(envelope.payload))
        if envelope.kind == "pop_cancel":
            payload = envelope.payload
            try:
                record_id = uuid.UUID(str(payload["record_id"]))
                reason = str(payload["reason"])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise PopRecordError(f"pop_cancel payload lacks record_id/reason ({exc})"
                                     ) from None
            return await self.client.cancel(record_id, reason)
        raise PopRecordError(f"{self.name} does not carry {envelope.kind!r} rows "
                             f"(only {', '.join(KINDS)})")

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        acks: dict[str, Ack] = {}
        deadline = time.monotonic() + timeout
        for envelope in envelopes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                receipt = await asyncio.wait_for(self._send(envelope), remaining)
            except PopUnavailableError as exc:
                if not acks:
                    raise TransportError(f"{self.name}: {exc}", destination=self.name) from exc
                break
            except TimeoutError:
                break  # no definite answer: this row and the rest come back later
            except (PopRejectedError, PopRecordError, PopUnknownRecordError, ValueError) as exc:
                acks[envelope.message_id] = Ack(message_id=envelope.message_id,
                                                status="rejected", reason=str(exc)[:500])
                continue
            acks[envelope.message_id] = Ack(
                message_id=envelope.message_id, status="accepted",
                reason=None if receipt.status in ("pending", "confirmed")
                else f"PoP record {receipt.status}")
        return acks
