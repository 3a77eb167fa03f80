"""A gateway modelled on PayPal's Orders v2 / Payments v2 APIs (card present).

JSON, ``Authorization: Bearer …``, ``PayPal-Request-Id`` as the idempotency key on POSTs
(201 the first time, 200 with the same body when replayed; another body under the same id
is a 422 ``DUPLICATE_REQUEST_ID``). Endpoints: ``POST /v2/checkout/orders`` (intent CAPTURE
or AUTHORIZE, card in ``payment_source.card``), ``GET /v2/checkout/orders/{id}``,
``GET /v2/checkout/orders?custom_id=`` (our stand-in for transaction search),
``POST /v2/payments/authorizations/{id}/capture`` and ``/void``,
``POST /v2/payments/captures/{id}/refund``, ``GET /v2/payments/{captures|authorizations}/{id}``,
``GET /v1/health``. The decision is the payment's ``status`` and
``processor_response.response_code`` (PayPal's processor codes, e.g. 5120 insufficient funds).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulators.psp.acquirer import Acquirer, Decision, EntryKind
from simulators.psp.faults import Faults
from simulators.psp.ledger_view import LEDGER_PATH, ledger_summary
from simulators.psp.rest_common import (
    PAYPAL_CODES,
    CardPresent,
    FaultMiddleware,
    IdempotencyStore,
    StoredAnswer,
)
from terminal.emv import tlv
from terminal.money import CURRENCIES

__all__ = ["paypal_app"]


def _error(status: int, name: str, message: str) -> JSONResponse:
    return JSONResponse({"name": name, "message": message, "details": []}, status_code=status)


def _id(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:17].upper()


def _minor(amount: dict[str, Any]) -> tuple[int, str]:
    currency = CURRENCIES[str(amount["currency_code"])]
    value = Decimal(str(amount["value"])) * (10 ** currency.exponent)
    if value != value.to_integral_value() or value < 0:
        raise ValueError("amount value has too many decimals")
    return int(value), currency.code


def _money(minor: int, currency: str) -> dict[str, str]:
    exponent = CURRENCIES[currency].exponent
    return {"currency_code": currency, "value": f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"}


def _processor(decision: Decision) -> dict[str, Any]:
    return {
        "response_code": PAYPAL_CODES.get(decision.code, "5100"),
        "authorization_code": decision.approval_code,
        "emv_auth_data": tlv.encode(0x91, decision.issuer_auth_data).hex().upper()
        if decision.issuer_auth_data else None,
    }


class _PayPal:
    def __init__(self) -> None:
        self.store = IdempotencyStore()
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_custom_id: dict[str, str] = {}
        self.payments: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (kind, object)


def paypal_app(acquirer: Acquirer, faults: Faults | None = None) -> Any:
    """The ASGI app (FastAPI wrapped in the fault middleware)."""
    faults = faults or Faults()
    state = _PayPal()
    app = FastAPI(title="Étika simulated PayPal-like gateway", docs_url=None, redoc_url=None)

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization", "").startswith("Bearer ")

    async def idempotent(request: Request, handler: Any) -> JSONResponse:
        if not authorised(request):
            return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return _error(400, "INVALID_REQUEST", "Request is not well-formed JSON")
        key = request.headers.get("paypal-request-id")
        if not key:
            return await handler(body, None)
        fingerprint = state.store.fingerprint(request.method, request.url.path, body)
        async with state.store.lock:
            stored = state.store.get(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    return _error(422, "UNPROCESSABLE_ENTITY",
                                  "DUPLICATE_REQUEST_ID: another request used this id")
                return JSONResponse(stored.body, status_code=200)
            response: JSONResponse = await handler(body, key)
            state.store.put(key, StoredAnswer(fingerprint, response.status_code,
                                              json.loads(bytes(response.body))))
            return response

    def payment(kind: str, key: str, decision: Decision, minor: int, currency: str,
                status: str) -> dict[str, Any]:
        payment_id = _id("CAP" if kind == "capture" else "AUT" if kind == "authorization"
                         else "REF", key)
        obj = {"id": payment_id, "status": status, "amount": _money(minor, currency),
               "custom_id": key, "processor_response": _processor(decision)}
        state.payments[payment_id] = (kind, obj)
        return obj

    @app.get(LEDGER_PATH)
    async def ledger() -> JSONResponse:
        # Read-only, loopback: what the acquirer booked, for etika platform reconcile.
        return JSONResponse(ledger_summary(acquirer))

    @app.post("/v2/checkout/orders")
    async def create(request: Request) -> JSONResponse:
        async def handle(body: dict[str, Any], key: str | None) -> JSONResponse:
            try:
                unit = body["purchase_units"][0]
                transaction = str(unit["custom_id"])
                minor, currency = _minor(unit["amount"])
                card = CardPresent.parse(body["payment_source"]["card"])
                intent = body["intent"]
                if intent not in ("CAPTURE", "AUTHORIZE"):
                    raise ValueError("intent is CAPTURE or AUTHORIZE")
            except (KeyError, IndexError, TypeError, ValueError, InvalidOperation) as exc:
                return _error(400, "INVALID_REQUEST", f"Request is not well-formed: {exc}")
            kind = (EntryKind.ADVICE if card.offline else
                    EntryKind.SALE if intent == "CAPTURE" else EntryKind.AUTH)
            forced = faults.take_decline() if kind is not EntryKind.ADVICE else None
            decision = acquirer.authorise(
                transaction, card.envelope, minor, currency, kind=kind, icc=card.icc,
                psn=card.psn, pin_block=card.pin_block, ksn=card.ksn, forced_code=forced)
            if decision.code in ("91", "96"):
                return _error(503, "SERVICE_UNAVAILABLE", decision.reason)
            if intent == "CAPTURE":
                status = "COMPLETED" if decision.approved else "DECLINED"
                payments = {"captures": [payment("capture", transaction, decision, minor,
                                                 currency, status)]}
            else:
                status = "CREATED" if decision.approved else "DENIED"
                payments = {"authorizations": [payment("authorization", transaction, decision,
                                                       minor, currency, status)]}
            order_id = _id("ORD", transaction)
            order = {"id": order_id, "intent": intent, "status": "COMPLETED",
                     "purchase_units": [{"reference_id": unit.get("reference_id", transaction),
                                         "custom_id": transaction,
                                         "amount": _money(minor, currency),
                                         "payments": payments}]}
            state.orders[order_id] = order
            state.by_custom_id[transaction] = order_id
            return JSONResponse(order, status_code=201)
        return await idempotent(request, handle)

    @app.get("/v2/checkout/orders")
    async def find(request: Request, custom_id: str = "") -> JSONResponse:
        if not authorised(request):
            return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        order_id = state.by_custom_id.get(custom_id)
        return JSONResponse({"orders": [state.orders[order_id]] if order_id else []})

    @app.get("/v2/checkout/orders/{order_id}")
    async def get_order(request: Request, order_id: str) -> JSONResponse:
        if not authorised(request):
            return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        order = state.orders.get(order_id)
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
        return JSONResponse(order)

    @app.get("/v2/payments/{kind}/{payment_id}")
    async def get_payment(request: Request, kind: str, payment_id: str) -> JSONResponse:
        if not authorised(request):
            return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        found = state.payments.get(payment_id)
        if found is None or f"{found[0]}s" != kind:
            return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
        return JSONResponse(found[1])

    def lookup(payment_id: str, kind: str) -> dict[str, Any] | None:
        found = state.payments.get(payment_id)
        return found[1] if found is not None and found[0] == kind else None

    @app.post("/v2/payments/authorizations/{payment_id}/capture")
    async def capture(request: Request, payment_id: str) -> JSONResponse:
        async def handle(body: dict[str, Any], key: str | None) -> JSONResponse:
            auth = lookup(payment_id, "authorization")
            if auth is None:
                return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
            try:
                minor, currency = _minor(body.get("amount") or auth["amount"])
            except (KeyError, ValueError, InvalidOperation) as exc:
                return _error(400, "INVALID_REQUEST", f"bad amount: {exc}")
            decision = acquirer.complete(auth["custom_id"], minor)
            if decision.approved:
                auth["status"] = "CAPTURED"
            status = "COMPLETED" if decision.approved else "DECLINED"
            return JSONResponse(payment("capture", auth["custom_id"], decision, minor,
                                        currency, status), status_code=201)
        return await idempotent(request, handle)

    @app.post("/v2/payments/authorizations/{payment_id}/void")
    async def void(request: Request, payment_id: str) -> JSONResponse:
        async def handle(body: dict[str, Any], key: str | None) -> JSONResponse:
            auth = lookup(payment_id, "authorization")
            if auth is None:
                return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
            if auth["status"] == "CAPTURED":
                return _error(422, "UNPROCESSABLE_ENTITY", "AUTHORIZATION_ALREADY_CAPTURED")
            decision = acquirer.reverse(auth["custom_id"])
            auth["status"] = "VOIDED"
            auth["processor_response"] = _processor(decision)
            return JSONResponse(auth)
        return await idempotent(request, handle)

    @app.post("/v2/payments/captures/{payment_id}/refund")
    async def refund(request: Request, payment_id: str) -> JSONResponse:
        async def handle(body: dict[str, Any], key: str | None) -> JSONResponse:
            cap = lookup(payment_id, "capture")
            if cap is None:
                return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
            refund_key = key or str(body.get("custom_id") or "")
            if not refund_key:
                return _error(400, "INVALID_REQUEST", "PayPal-Request-Id is required")
            try:
                minor, currency = _minor(body.get("amount") or cap["amount"])
            except (KeyError, ValueError, InvalidOperation) as exc:
                return _error(400, "INVALID_REQUEST", f"bad amount: {exc}")
            decision = acquirer.refund(cap["custom_id"], refund_key, minor)
            status = "COMPLETED" if decision.approved else "FAILED"
            return JSONResponse(payment("refund", refund_key, decision, minor, currency,
                                        status), status_code=201)
        return await idempotent(request, handle)

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "UP"})

    return FaultMiddleware(app, faults)
