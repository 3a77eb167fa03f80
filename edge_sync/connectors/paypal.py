"""A connector modelled on PayPal's Orders v2 and Payments v2 APIs (card present).

JSON requests, ``Authorization: Bearer <token>``, and the ``PayPal-Request-Id`` header as
the idempotency key on every POST (the transaction UUID; ``<uuid>:capture`` /
``<uuid>:reverse`` for follow-ups), so every operation is safe to resend.

=====================  ==================================================================
operation              PayPal call
=====================  ==================================================================
authorise / advice     ``POST /v2/checkout/orders`` intent CAPTURE (sale) or AUTHORIZE,
                       the P2PE envelope in ``payment_source.card.p2pe_envelope``
complete               ``POST /v2/payments/authorizations/{id}/capture``
reverse                ``POST /v2/payments/authorizations/{id}/void`` before capture,
                       ``POST /v2/payments/captures/{id}/refund`` after
refund                 ``POST /v2/payments/captures/{id}/refund``
status                 ``GET /v2/payments/{authorizations|captures}/{id}``
echo                   ``GET /v1/health``
=====================  ==================================================================

The decision is the capture's or authorization's ``status`` with
``processor_response.response_code`` (kept as the response code). ``psp_id`` holds
``capture/<id>`` or ``authorization/<id>``. When an answer was lost the id is unknown; the
gateway is then asked ``GET /v2/checkout/orders?custom_id=<uuid>`` — an extension of our
simulated gateway, standing in for PayPal's transaction search.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from edge_sync.connectors.answers import (
    approval_code,
    code,
    identifier,
    issuer_data,
    listing,
    mapping,
    message,
    reading,
    require,
)
from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    EntryMode,
    Operation,
    Outcome,
    PspReference,
    PspResponse,
    RefundRequest,
)
from edge_sync.connectors.classify import classify_paypal
from edge_sync.connectors.iso8583_messages import refuse_card_data_tags
from edge_sync.connectors.rest import HttpAnswer, RestClient, RestSettings, SentRequests

__all__ = ["PayPalConnector"]

_IDEMPOTENCY = "PayPal-Request-Id"
_READ_METHOD = {EntryMode.CHIP: "contact_emv", EntryMode.CONTACTLESS: "contactless_emv",
                EntryMode.OFFLINE_ADVICE: "contact_emv"}  # fmt: skip


#: What a ``psp_id`` names: ``<kind>/<id>``, the kind saying which API path holds it.
_KINDS = frozenset({"capture", "authorization", "refund"})


def _first_payment(units: Any) -> tuple[str, Mapping[str, Any]]:
    """``("capture" | "authorization", payment)`` of an order's first purchase unit;
    ``LookupError``/``TypeError``/``ValueError`` when it holds neither (read under
    :func:`reading`)."""
    unit = mapping(listing(units, "purchase_units")[0], "a purchase unit")
    payments = mapping(unit["payments"], "payments")
    kind = "captures" if "captures" in payments else "authorizations"
    return kind.rstrip("s"), mapping(listing(payments[kind], kind)[0], "a payment")


def _split_psp_id(psp_id: str | None) -> tuple[str, str] | None:
    """``(kind, id)`` of a stored ``psp_id``, or ``None`` when it is absent or not one this
    connector wrote (then the payment is looked up again, never put in a URL as it is)."""
    kind, _, payment_id = (psp_id or "").partition("/")
    if kind not in _KINDS:
        return None
    try:
        return kind, identifier(payment_id, "the payment id")
    except ValueError:
        return None


def _money(amount: Amount) -> dict[str, str]:
    return {"currency_code": amount.currency, "value": amount.decimal_text()}


class PayPalConnector:
    def __init__(self, settings: RestSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        auth = f"Bearer {settings.api_key}" if settings.api_key else None
        self._http = RestClient(settings, auth_header=auth, transport=transport)
        # A resent request must be byte-for-byte the first one (the PSP refuses a known
        # idempotency key with other parameters), and a fresh P2PE envelope never is.
        self._sent = SentRequests()

    @property
    def name(self) -> str:
        return self.settings.name

    def retry_safe(self, operation: Operation) -> bool:
        return True  # PayPal-Request-Id on every POST

    def _where(self, operation: Operation, key: str) -> dict[str, Any]:
        return {"connector": self.name, "operation": operation.value, "idempotency_key": key,
                "reference": PspReference(connector=self.name, transaction_id=key,
                                          operation=operation.value)}

    async def _post(self, path: str, body: dict[str, Any], key: str, where: dict[str, Any]
                    ) -> HttpAnswer:
        return await self._http.request("POST", path, where=where, json_body=body,
                                        idempotency_header=_IDEMPOTENCY, idempotency_key=key)

    async def authorise(self, request: AuthorisationRequest) -> PspResponse:
        return await self._create(request, Operation.AUTHORISE)

    async def advice(self, request: AuthorisationRequest) -> PspResponse:
        return await self._create(request, Operation.ADVICE)

    async def _create(self, request: AuthorisationRequest, operation: Operation) -> PspResponse:
        key = request.idempotency_key
        card = request.card
        cached = self._sent.get(key, operation.value)
        if cached is not None:
            return await self._send_create(cached, operation, key, request.amount)
        envelope = card.encryptor.envelope_for(self.settings.p2pe_public_key, key.encode())
        source: dict[str, Any] = {
            "p2pe_envelope": base64.b64encode(envelope).decode(),
            "read_method": _READ_METHOD[card.entry_mode],
        }
        if operation is Operation.ADVICE:
            source["offline"] = True
        if card.emv_data:
            refuse_card_data_tags(card.emv_data, "the paypal request")
            source["emv_data"] = card.emv_data.hex().upper()
        if card.pan_sequence is not None:
            source["card_sequence_number"] = card.pan_sequence
        if card.pin_block is not None and card.ksn is not None:
            source["encrypted_pin_block"] = card.pin_block.hex().upper()
            source["ksn"] = card.ksn.hex().upper()
        capture = request.capture or operation is Operation.ADVICE
        body = {
            "intent": "CAPTURE" if capture else "AUTHORIZE",
            "purchase_units": [{"reference_id": key, "custom_id": key,
                                "amount": _money(request.amount)}],
            "payment_source": {"card": source},
        }
        self._sent.put(key, operation.value, body)
        return await self._send_create(body, operation, key, request.amount)

    async def _send_create(self, body: dict[str, Any], operation: Operation, key: str,
                           amount: Amount) -> PspResponse:
        where = self._where(operation, key)
        answer = await self._post("/v2/checkout/orders", body, key, where)
        return self._order_response(answer, operation, key, amount, where)

    def _retry(self, answer: HttpAnswer, operation: Operation, reference: PspReference
               ) -> PspResponse:
        name = answer.body.get("name")
        try:
            reason = code(name, "the error name")
        except ValueError:
            reason = f"http_{answer.status}"
        return PspResponse(outcome=Outcome.RETRY, code=reason,
                           message=message(answer.body.get("message")), operation=operation,
                           reference=reference)

    def _order_response(self, answer: HttpAnswer, operation: Operation, key: str,
                        amount: Amount | None, where: dict[str, Any]) -> PspResponse:
        reference = PspReference(connector=self.name, transaction_id=key,
                                 operation=operation.value,
                                 amount_minor=amount.minor if amount else None,
                                 currency=amount.currency if amount else None)
        if answer.status >= 409:
            return self._retry(answer, operation, reference)
        with reading(where, "the order"):
            kind, payment = _first_payment(require(answer.body, "purchase_units", where))
        return self._payment_response(payment, kind, operation, reference, answer, where)

    def _payment_response(self, payment: Any, kind: str, operation: Operation,
                          reference: PspReference, answer: HttpAnswer,
                          where: dict[str, Any]) -> PspResponse:
        with reading(where, f"the {kind}"):
            payment = mapping(payment, f"the {kind}")
            status = code(require(payment, "status", where), f"the {kind} status")
            processor = mapping(payment.get("processor_response") or {}, "processor_response")
            response_code = processor.get("response_code")
            if response_code is not None:
                response_code = code(response_code, "the processor response code")
            outcome = classify_paypal(status, response_code)
            payment_id = identifier(require(payment, "id", where), f"the {kind} id")
            approval = approval_code(processor.get("authorization_code"))
            # Unreadable issuer data does not drop the decision: the kernel then records
            # issuer authentication as failed (EMV Book 3 §10.9).
            emv_data, malformed = issuer_data(processor.get("emv_auth_data"))
        return PspResponse(
            outcome=outcome, code=response_code or status, message=status, operation=operation,
            reference=replace(reference, psp_id=f"{kind}/{payment_id}", approval_code=approval),
            emv_data=emv_data, issuer_data_malformed=malformed,
            replayed=answer.status == 200 and operation in (Operation.AUTHORISE,
                                                            Operation.ADVICE),
        )

    async def _payment_id(self, original: PspReference, operation: Operation
                          ) -> tuple[str, str] | None:
        """``(kind, id)`` of the payment: the reference's, else found by the order search
        (after an unknown outcome); ``None`` when the gateway has no order for it."""
        known = _split_psp_id(original.psp_id)
        if known is not None:
            return known
        where = self._where(operation, original.transaction_id)
        answer = await self._http.request("GET", "/v2/checkout/orders", where=where,
                                          params={"custom_id": original.transaction_id})
        with reading(where, "the order search answer"):
            orders = listing(require(answer.body, "orders", where), "orders")
            if not orders:
                return None
            kind, payment = _first_payment(mapping(orders[0], "an order")["purchase_units"])
            return kind, identifier(payment["id"], "the payment id")

    def _not_found(self, operation: Operation, original: PspReference, outcome: Outcome
                   ) -> PspResponse:
        return PspResponse(outcome=outcome, code="RESOURCE_NOT_FOUND",
                           message="no order for this transaction", operation=operation,
                           reference=replace(original, connector=self.name),
                           not_found_by_search=True)

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        payment = await self._payment_id(original, Operation.COMPLETE)
        if payment is None or payment[0] != "authorization":
            return self._not_found(Operation.COMPLETE, original, Outcome.DECLINE)
        where = self._where(Operation.COMPLETE, key)
        answer = await self._post(f"/v2/payments/authorizations/{payment[1]}/capture",
                                  {"amount": _money(amount), "final_capture": True},
                                  f"{key}:capture", where)
        return self._single(answer, "capture", Operation.COMPLETE, key, where)

    def _single(self, answer: HttpAnswer, kind: str, operation: Operation, key: str,
                where: dict[str, Any]) -> PspResponse:
        reference = PspReference(connector=self.name, transaction_id=key,
                                 operation=operation.value)
        if answer.status >= 409:
            return self._retry(answer, operation, reference)
        return self._payment_response(answer.body, kind, operation, reference, answer, where)

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        payment = await self._payment_id(original, Operation.REVERSE)
        if payment is None:
            return self._not_found(Operation.REVERSE, original, Outcome.APPROVE)
        kind, payment_id = payment
        where = self._where(Operation.REVERSE, key)
        if kind == "authorization":
            answer = await self._post(f"/v2/payments/authorizations/{payment_id}/void", {},
                                      f"{key}:reverse", where)
            return self._single(answer, "authorization", Operation.REVERSE, key, where)
        answer = await self._post(f"/v2/payments/captures/{payment_id}/refund",
                                  {"amount": _money(amount), "custom_id": key},
                                  f"{key}:reverse", where)
        return self._single(answer, "refund", Operation.REVERSE, key, where)

    async def refund(self, request: RefundRequest) -> PspResponse:
        key = request.idempotency_key
        payment = await self._payment_id(request.original, Operation.REFUND)
        if payment is None or payment[0] != "capture":
            return self._not_found(Operation.REFUND, request.original, Outcome.DECLINE)
        where = self._where(Operation.REFUND, key)
        answer = await self._post(f"/v2/payments/captures/{payment[1]}/refund",
                                  {"amount": _money(request.amount), "custom_id": key},
                                  key, where)
        return self._single(answer, "refund", Operation.REFUND, key, where)

    async def status(self, original: PspReference) -> PspResponse:
        key = original.transaction_id
        payment = await self._payment_id(original, Operation.STATUS)
        if payment is None:
            return self._not_found(Operation.STATUS, original, Outcome.DECLINE)
        kind, payment_id = payment
        where = self._where(Operation.STATUS, key)
        answer = await self._http.request("GET", f"/v2/payments/{kind}s/{payment_id}",
                                          where=where)
        return self._single(answer, kind, Operation.STATUS, key, where)

    async def echo(self) -> PspResponse:
        where = self._where(Operation.ECHO, "")
        answer = await self._http.request("GET", "/v1/health", where=where)
        outcome = Outcome.APPROVE if answer.status < 300 else Outcome.RETRY
        return PspResponse(outcome=outcome, code=str(answer.status),
                           message=message(answer.body.get("status")), operation=Operation.ECHO,
                           reference=PspReference(connector=self.name, transaction_id="",
                                                  operation=Operation.ECHO.value))

    async def aclose(self) -> None:
        await self._http.aclose()
