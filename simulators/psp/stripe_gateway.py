"""A gateway modelled on Stripe's Payment Intents API (card present), over the acquirer.

Form-encoded requests, ``Authorization: Bearer sk_test_…``, ``Idempotency-Key`` on POSTs
(the first answer is replayed with ``Idempotent-Replayed: true``; the same key with other
parameters is a 400 ``idempotency_error``). Endpoints: ``POST /v1/payment_intents``
(confirm=true), ``GET /v1/payment_intents/{id}``, ``GET /v1/payment_intents/search``
(``metadata['transaction_id']:'…'``), ``POST …/{id}/capture``, ``POST …/{id}/cancel``,
``POST /v1/refunds``, ``GET /v1/balance``. Declines are HTTP 402 ``card_error`` with a
``decline_code``; the ARPC is ``latest_charge.payment_method_details.card_present.
emv_auth_data`` (tag 91 as TLV, hex).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulators.psp.acquirer import Acquirer, Decision, EntryKind
from simulators.psp.faults import Faults
from simulators.psp.ledger_view import LEDGER_PATH, ledger_summary
from simulators.psp.rest_common import (
    STRIPE_DECLINE_CODES,
    CardPresent,
    FaultMiddleware,
    IdempotencyStore,
    StoredAnswer,
)
from terminal.emv import tlv

__all__ = ["stripe_app"]

_SEARCH = re.compile(r"^metadata\['transaction_id'\]:'([0-9A-Za-z:-]+)'$")


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}},
                        status_code=status)


def _id(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]


class _Stripe:
    def __init__(self, acquirer: Acquirer, faults: Faults) -> None:
        self.acquirer = acquirer
        self.faults = faults
        self.store = IdempotencyStore()
        self.intents: dict[str, dict[str, Any]] = {}
        self.by_transaction: dict[str, str] = {}

    def intent(self, transaction: str, amount: int, currency: str, status: str,
               decision: Decision | None, capture_method: str) -> dict[str, Any]:
        intent_id = self.by_transaction.get(transaction) or _id("pi_", transaction)
        intent = self.intents.get(intent_id, {
            "id": intent_id, "object": "payment_intent", "amount": amount,
            "currency": currency, "capture_method": capture_method,
            "metadata": {"transaction_id": transaction}, "amount_received": 0,
        })
        intent["status"] = status
        if decision is not None:
            intent["latest_charge"] = {
                "id": _id("ch_", transaction), "object": "charge",
                "outcome": {"network_status": "approved_by_network" if decision.approved
                            else "declined_by_network", "reason": decision.reason},
                "payment_method_details": {"card_present": {
                    "authorization_code": decision.approval_code,
                    "emv_auth_data": tlv.encode(0x91, decision.issuer_auth_data).hex().upper()
                    if decision.issuer_auth_data else None,
                    "network_response_code": decision.code,
                }},
            }
            if not decision.approved:
                code = STRIPE_DECLINE_CODES.get(decision.code, "generic_decline")
                intent["last_payment_error"] = {"type": "card_error", "code": "card_declined",
                                                "decline_code": code,
                                                "message": decision.reason}
        if status == "succeeded":
            intent["amount_received"] = intent["amount"]
        self.intents[intent_id] = intent
        self.by_transaction[transaction] = intent_id
        return intent


def stripe_app(acquirer: Acquirer, faults: Faults | None = None) -> Any:
    """The ASGI app (FastAPI wrapped in the fault middleware)."""
    faults = faults or Faults()
    state = _Stripe(acquirer, faults)
    app = FastAPI(title="Étika simulated Stripe-like gateway", docs_url=None, redoc_url=None)

    def authorised(request: Request) -> bool:
        # A terminal on the same machine sends no key (its loopback connectors have no
        # credentials file); a key that is sent must be a test key.
        header = request.headers.get("authorization")
        return header is None or header.startswith("Bearer sk_test_")

    async def form(request: Request) -> dict[str, str]:
        return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))

    async def idempotent(request: Request, handler: Any) -> JSONResponse:
        if not authorised(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        data = await form(request)
        key = request.headers.get("idempotency-key")
        if not key:
            return await handler(data, None)
        fingerprint = state.store.fingerprint(request.method, request.url.path, data)
        async with state.store.lock:
            stored = state.store.get(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    return _error(400, "idempotency_error",
                                  "Keys for idempotent requests can only be used with the "
                                  "same parameters they were first used with.")
                return JSONResponse(stored.body, status_code=stored.status,
                                    headers={"Idempotent-Replayed": "true"})
            response: JSONResponse = await handler(data, key)
            body = response.body if isinstance(response.body, bytes) else bytes(response.body)

            state.store.put(key, StoredAnswer(fingerprint, response.status_code,
                                              json.loads(body)))
            return response

    @app.get(LEDGER_PATH)
    async def ledger() -> JSONResponse:
        # Read-only, loopback: what the acquirer booked, for etika platform reconcile.
        return JSONResponse(ledger_summary(acquirer))

    @app.post("/v1/payment_intents")
    async def create(request: Request) -> JSONResponse:
        async def handle(data: dict[str, str], key: str | None) -> JSONResponse:
            prefix = "payment_method_data[card_present]"
            card_fields = {k[len(prefix) + 1 : -1]: v for k, v in data.items()
                           if k.startswith(prefix + "[")}
            transaction = data.get("metadata[transaction_id]")
            if not transaction or data.get("payment_method_data[type]") != "card_present":
                return _error(400, "invalid_request_error",
                              "metadata[transaction_id] and a card_present payment method "
                              "are required")
            try:
                amount = int(data["amount"])
                currency = data["currency"].lower()
                card = CardPresent.parse(card_fields)
            except (KeyError, ValueError) as exc:
                return _error(400, "invalid_request_error", f"bad parameter: {exc}")
            manual = data.get("capture_method") == "manual"
            kind = (EntryKind.ADVICE if card.offline else
                    EntryKind.AUTH if manual else EntryKind.SALE)
            forced = faults.take_decline() if kind is not EntryKind.ADVICE else None
            decision = acquirer.authorise(
                transaction, card.envelope, amount, currency.upper(), kind=kind, icc=card.icc,
                psn=card.psn, pin_block=card.pin_block, ksn=card.ksn, forced_code=forced)
            if decision.approved:
                status = "requires_capture" if kind is EntryKind.AUTH else "succeeded"
                return JSONResponse(state.intent(transaction, amount, currency, status,
                                                 decision, data.get("capture_method",
                                                                    "automatic")))
            intent = state.intent(transaction, amount, currency, "requires_payment_method",
                                  decision, data.get("capture_method", "automatic"))
            return _error(402, "card_error", decision.reason, code="card_declined",
                          decline_code=STRIPE_DECLINE_CODES.get(decision.code,
                                                                "generic_decline"),
                          payment_intent=intent)
        return await idempotent(request, handle)

    @app.get("/v1/payment_intents/search")
    async def search(request: Request, query: str = "") -> JSONResponse:
        if not authorised(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        match = _SEARCH.match(query)
        if match is None:
            return _error(400, "invalid_request_error", "unsupported search query")
        intent_id = state.by_transaction.get(match.group(1))
        data = [state.intents[intent_id]] if intent_id else []
        return JSONResponse({"object": "search_result", "data": data, "has_more": False})

    @app.get("/v1/payment_intents/{intent_id}")
    async def retrieve(request: Request, intent_id: str) -> JSONResponse:
        if not authorised(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        intent = state.intents.get(intent_id)
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent",
                          code="resource_missing")
        return JSONResponse(intent)

    @app.post("/v1/payment_intents/{intent_id}/capture")
    async def capture(request: Request, intent_id: str) -> JSONResponse:
        async def handle(data: dict[str, str], key: str | None) -> JSONResponse:
            intent = state.intents.get(intent_id)
            if intent is None:
                return _error(404, "invalid_request_error", "No such payment_intent",
                              code="resource_missing")
            if intent["status"] != "requires_capture":
                return _error(400, "invalid_request_error", "This PaymentIntent could not "
                              "be captured because it has a status of " + intent["status"],
                              code="payment_intent_unexpected_state")
            amount = int(data.get("amount_to_capture", intent["amount"]))
            decision = acquirer.complete(intent["metadata"]["transaction_id"], amount)
            if not decision.approved:
                return _error(400, "invalid_request_error", decision.reason,
                              code="amount_too_large")
            intent["status"] = "succeeded"
            intent["amount_received"] = amount
            return JSONResponse(intent)
        return await idempotent(request, handle)

    @app.post("/v1/payment_intents/{intent_id}/cancel")
    async def cancel(request: Request, intent_id: str) -> JSONResponse:
        async def handle(data: dict[str, str], key: str | None) -> JSONResponse:
            intent = state.intents.get(intent_id)
            if intent is None:
                return _error(404, "invalid_request_error", "No such payment_intent",
                              code="resource_missing")
            if intent["status"] == "succeeded":
                return _error(400, "invalid_request_error", "You cannot cancel this "
                              "PaymentIntent because it has a status of succeeded.",
                              code="payment_intent_unexpected_state")
            acquirer.reverse(intent["metadata"]["transaction_id"])
            intent["status"] = "canceled"
            intent["cancellation_reason"] = data.get("cancellation_reason", "abandoned")
            return JSONResponse(intent)
        return await idempotent(request, handle)

    @app.post("/v1/refunds")
    async def refund(request: Request) -> JSONResponse:
        async def handle(data: dict[str, str], key: str | None) -> JSONResponse:
            intent = state.intents.get(data.get("payment_intent", ""))
            if intent is None:
                return _error(404, "invalid_request_error", "No such payment_intent",
                              code="resource_missing")
            refund_key = key or data.get("metadata[transaction_id]") or ""
            if not refund_key:
                return _error(400, "invalid_request_error", "an idempotency key is required")
            amount = int(data.get("amount", intent["amount"]))
            original = intent["metadata"]["transaction_id"]
            decision = acquirer.refund(original, refund_key, amount)
            status = "succeeded" if decision.approved else "failed"
            return JSONResponse({"id": _id("re_", refund_key), "object": "refund",
                                 "amount": amount, "payment_intent": intent["id"],
                                 "status": status, "failure_reason": None if
                                 decision.approved else decision.reason.lower()})
        return await idempotent(request, handle)

    @app.get("/v1/balance")
    async def balance(request: Request) -> JSONResponse:
        if not authorised(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        return JSONResponse({"object": "balance", "available": [], "livemode": False})

    return FaultMiddleware(app, faults)
