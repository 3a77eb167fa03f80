"""What the two REST gateways share: fault injection as ASGI middleware, idempotency store,
card-present request parsing, and the ISO 8583 → gateway code tables."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from simulators.psp.faults import Faults
from terminal.emv import tlv

__all__ = [
    "PAYPAL_CODES",
    "STRIPE_DECLINE_CODES",
    "CardPresent",
    "FaultMiddleware",
    "IdempotencyStore",
    "StoredAnswer",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ISO 8583 DE 39 → Stripe ``decline_code`` (Stripe's documented decline codes).
STRIPE_DECLINE_CODES = {
    "05": "do_not_honor", "14": "invalid_number", "41": "lost_card", "43": "stolen_card",
    "51": "insufficient_funds", "54": "expired_card", "55": "incorrect_pin",
    "61": "card_velocity_exceeded", "75": "pin_try_exceeded", "81": "incorrect_pin",
    "91": "issuer_not_available", "96": "processing_error", "01": "call_issuer",
    "25": "resource_missing",
}  # fmt: skip

#: ISO 8583 DE 39 → PayPal ``processor_response.response_code``.
PAYPAL_CODES = {
    "00": "0000", "05": "0500", "14": "1330", "41": "9520", "43": "9520", "51": "5120",
    "54": "5400", "55": "5130", "61": "5650", "75": "5130", "81": "5130", "91": "9100",
    "96": "9100",
}  # fmt: skip


class FaultMiddleware:
    """Applies the simulator's faults to HTTP exchanges (see :mod:`simulators.psp.faults`).

    ``drop``/``drop-after``/``truncated`` start a response and then break it off, which
    makes uvicorn close the connection: the client sees the exchange fail mid-answer.
    ``timeout`` holds the answer until the client gives up and disconnects.
    """

    def __init__(self, app: Asgi, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        faults = self.faults
        if faults.take("drop"):
            await self._break_off(send, b"")
            return
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.take("timeout"):
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        if faults.take("drop_after"):
            await self._break_off(send, b"")
            return
        if faults.take("truncated"):
            await self._break_off(send, body[: len(body) // 2])
            return
        if faults.take("malformed"):
            garbage = b"<html><body>502 Bad Gateway</body"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(garbage)).encode())]})
            await send({"type": "http.response.body", "body": garbage})
            return
        for message in messages:
            await send(message)

    @staticmethod
    async def _break_off(send: Send, partial: bytes) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        if partial:
            await send({"type": "http.response.body", "body": partial, "more_body": True})
        raise ConnectionAbortedError("simulated fault: the answer was broken off")


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: dict[str, Any]


class IdempotencyStore:
    """Idempotency keys → the first answer, as Stripe and PayPal keep them (24 h there)."""

    def __init__(self) -> None:
        self._answers: dict[str, StoredAnswer] = {}
        # The gateways' endpoints run on uvicorn's event loop: an asyncio lock serialises
        # "look up key, act, store answer" without blocking the loop.
        self.lock = asyncio.Lock()

    @staticmethod
    def fingerprint(method: str, path: str, body: Any) -> str:
        raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()

    def get(self, key: str) -> StoredAnswer | None:
        return self._answers.get(key)

    def put(self, key: str, answer: StoredAnswer) -> None:
        self._answers.setdefault(key, answer)


@dataclass(frozen=True)
class CardPresent:
    """The card-present part of a request, decoded (envelope, ICC tags, PIN block, KSN)."""

    envelope: bytes
    icc: dict[int, bytes]
    psn: int | None
    pin_block: bytes | None
    ksn: bytes | None
    offline: bool

    @classmethod
    def parse(cls, fields: dict[str, Any]) -> CardPresent:
        """From ``p2pe_envelope`` (base64), ``emv_data``, ``encrypted_pin_block``, ``ksn``
        (hex), ``card_sequence_number``, ``offline``; ``ValueError`` names the bad one."""
        try:
            envelope = base64.b64decode(str(fields["p2pe_envelope"]), validate=True)
        except (KeyError, ValueError) as exc:
            raise ValueError("p2pe_envelope is missing or not base64") from exc
        icc: dict[int, bytes] = {}
        if fields.get("emv_data"):
            try:
                icc = tlv.flatten(tlv.decode(bytes.fromhex(str(fields["emv_data"]))))
            except ValueError as exc:
                raise ValueError("emv_data is not hex BER-TLV") from exc
        pin_block = bytes.fromhex(str(fields["encrypted_pin_block"])) if fields.get(
            "encrypted_pin_block") else None
        ksn = bytes.fromhex(str(fields["ksn"])) if fields.get("ksn") else None
        if (pin_block is None) != (ksn is None):
            raise ValueError("encrypted_pin_block and ksn go together")
        psn_text = str(fields.get("card_sequence_number") or "")
        return cls(envelope=envelope, icc=icc, psn=int(psn_text) if psn_text.isdigit() else None,
                   pin_block=pin_block, ksn=ksn,
                   offline=str(fields.get("offline", "")).lower() == "true")
