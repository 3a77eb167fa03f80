"""A connector modelled on Stripe's Payment Intents API (card present).

Requests are form-encoded like Stripe's (``metadata[transaction_id]=…``), authenticated with
``Authorization: Bearer <secret key>``, and every POST carries an ``Idempotency-Key``: the
transaction UUID for the payment itself, ``<uuid>:capture`` / ``<uuid>:reverse`` for the
follow-ups (Stripe refuses one key on two different requests). Because Stripe replays the
stored answer for a key it has seen (``Idempotent-Replayed: true``), every operation is safe
to resend.

=====================  ==================================================================
operation              Stripe call
=====================  ==================================================================
authorise / advice     ``POST /v1/payment_intents`` confirm=true, capture_method automatic
                       (sale) or manual (authorisation only); card data only as the P2PE
                       envelope in ``payment_method_data[card_present][p2pe_envelope]``
complete               ``POST /v1/payment_intents/{id}/capture``
reverse                ``POST …/{id}/cancel`` before capture, ``POST /v1/refunds`` after
refund                 ``POST /v1/refunds`` (payment_intent, amount)
status                 ``GET /v1/payment_intents/{id}``, or the search API by
                       ``metadata['transaction_id']`` when the id is unknown
echo                   ``GET /v1/balance``
=====================  ==================================================================

Declines come back as HTTP 402 ``card_error`` with a ``decline_code``, which is kept as the
response code; the issuer's ARPC comes back as ``emv_auth_data`` of the charge. Answers
are read with :mod:`edge_sync.connectors.answers`: a shape the connector cannot read is
:class:`~edge_sync.connectors.errors.MalformedResponseError` (unknown outcome, reversed).
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
from edge_sync.connectors.classify import classify_stripe
from edge_sync.connectors.iso8583_messages import refuse_card_data_tags
from edge_sync.connectors.rest import HttpAnswer, RestClient, RestSettings, SentRequests

__all__ = ["StripeConnector"]

_READ_METHOD = {EntryMode.CHIP: "contact_emv", EntryMode.CONTACTLESS: "contactless_emv",
                EntryMode.OFFLINE_ADVICE: "contact_emv"}  # fmt: skip
_IDEMPOTENCY = "Idempotency-Key"


class StripeConnector:
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
        return True  # every request carries an Idempotency-Key Stripe honours

    def _where(self, operation: Operation, key: str, **extra: Any) -> dict[str, Any]:
        return {"connector": self.name, "operation": operation.value, "idempotency_key": key,
                "reference": PspReference(connector=self.name, transaction_id=key,
                                          operation=operation.value), **extra}

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
        prefix = "payment_method_data[card_present]"
        advice = operation is Operation.ADVICE
        data = {
            "amount": str(request.amount.minor),
            "currency": request.amount.currency.lower(),
            "confirm": "true",
            "capture_method": "automatic" if request.capture or advice else "manual",
            "metadata[transaction_id]": key,
            "payment_method_data[type]": "card_present",
            f"{prefix}[p2pe_envelope]": base64.b64encode(envelope).decode(),
            f"{prefix}[read_method]": _READ_METHOD[card.entry_mode],
        }
        if advice:
            data[f"{prefix}[offline]"] = "true"
        if card.emv_data:
            refuse_card_data_tags(card.emv_data, "the stripe request")
            data[f"{prefix}[emv_data]"] = card.emv_data.hex().upper()
        if card.pan_sequence is not None:
            data[f"{prefix}[card_sequence_number]"] = card.pan_sequence
        if card.pin_block is not None and card.ksn is not None:
            data[f"{prefix}[encrypted_pin_block]"] = card.pin_block.hex().upper()
            data[f"{prefix}[ksn]"] = card.ksn.hex().upper()
        self._sent.put(key, operation.value, data)
        return await self._send_create(data, operation, key, request.amount)

    async def _send_create(self, data: dict[str, Any], operation: Operation, key: str,
                           amount: Amount) -> PspResponse:
        where = self._where(operation, key)
        answer = await self._http.request("POST", "/v1/payment_intents", where=where, data=data,
                                          idempotency_header=_IDEMPOTENCY, idempotency_key=key)
        return self._intent_response(answer, operation, key, amount, where)

    def _intent_response(self, answer: HttpAnswer, operation: Operation, key: str,
                         amount: Amount | None, where: dict[str, Any]) -> PspResponse:
        with reading(where, "the payment intent"):
            return self._read_intent(answer, operation, key, amount, where)

    def _read_intent(self, answer: HttpAnswer, operation: Operation, key: str,
                     amount: Amount | None, where: dict[str, Any]) -> PspResponse:
        body = answer.body
        reference = PspReference(connector=self.name, transaction_id=key,
                                 operation=operation.value,
                                 amount_minor=amount.minor if amount else None,
                                 currency=amount.currency if amount else None)
        if answer.status == 402 or answer.status == 409 or answer.status >= 429:
            error = mapping(require(body, "error", where), "'error'")
            reason = code(error.get("decline_code") or error.get("code")
                          or f"http_{answer.status}")
            outcome = Outcome.RETRY if answer.status != 402 else classify_stripe(None, reason)
            intent = error.get("payment_intent")
            if isinstance(intent, dict) and "id" in intent:
                reference = replace(reference, psp_id=identifier(intent["id"], "the intent id"))
            return PspResponse(outcome=outcome, code=reason,
                               message=message(error.get("message")),
                               operation=operation, reference=reference,
                               replayed=answer.replayed)
        intent_id = identifier(require(body, "id", where), "the intent id")
        status = code(require(body, "status", where), "the intent status")
        reason = status
        outcome = classify_stripe(status, None)
        last_error = body.get("last_payment_error")
        if outcome is not Outcome.APPROVE and isinstance(last_error, dict):
            reason = code(last_error.get("decline_code") or last_error.get("code") or status)
            outcome = classify_stripe(None, reason)
        details = _charge_details(body)
        emv, malformed = issuer_data(details.get("emv_auth_data"))
        return PspResponse(
            outcome=outcome, code=reason, message=status, operation=operation,
            reference=replace(reference, psp_id=intent_id,
                              approval_code=approval_code(details.get("authorization_code"))),
            emv_data=emv, issuer_data_malformed=malformed, replayed=answer.replayed,
        )

    async def _intent_id(self, original: PspReference, operation: Operation) -> str | None:
        """The payment intent's id: the reference's, else found by the search API (after
        an unknown outcome). A stored id that is not path-safe is not used in a URL."""
        if original.psp_id and _is_identifier(original.psp_id):
            return original.psp_id
        where = self._where(operation, original.transaction_id)
        query = f"metadata['transaction_id']:'{original.transaction_id}'"
        answer = await self._http.request("GET", "/v1/payment_intents/search", where=where,
                                          params={"query": query})
        with reading(where, "the search answer"):
            found = listing(require(answer.body, "data", where), "search 'data'")
            if not found:
                return None
            return identifier(mapping(found[0], "a search entry")["id"], "the intent id")

    def _not_found(self, operation: Operation, original: PspReference, outcome: Outcome
                   ) -> PspResponse:
        return PspResponse(outcome=outcome, code="not_found",
                           message="no payment intent for this transaction",
                           operation=operation, reference=replace(original, connector=self.name),
                           not_found_by_search=True)

    async def complete(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        intent = await self._intent_id(original, Operation.COMPLETE)
        if intent is None:
            return self._not_found(Operation.COMPLETE, original, Outcome.DECLINE)
        where = self._where(Operation.COMPLETE, key)
        answer = await self._http.request(
            "POST", f"/v1/payment_intents/{intent}/capture", where=where,
            data={"amount_to_capture": str(amount.minor)},
            idempotency_header=_IDEMPOTENCY, idempotency_key=f"{key}:capture")
        return self._intent_response(answer, Operation.COMPLETE, key, amount, where)

    async def reverse(self, original: PspReference, amount: Amount) -> PspResponse:
        key = original.transaction_id
        intent = await self._intent_id(original, Operation.REVERSE)
        if intent is None:
            # Stripe never created it: nothing to undo.
            return self._not_found(Operation.REVERSE, original, Outcome.APPROVE)
        where = self._where(Operation.REVERSE, key)
        current = await self._http.request("GET", f"/v1/payment_intents/{intent}", where=where)
        with reading(where, "the payment intent"):
            status = code(require(current.body, "status", where), "the intent status")
        if status == "canceled":
            return self._intent_response(current, Operation.REVERSE, key, amount, where)
        if status == "succeeded":
            answer = await self._http.request(
                "POST", "/v1/refunds", where=where,
                data={"payment_intent": intent, "amount": str(amount.minor),
                      "reason": "requested_by_customer",
                      "metadata[transaction_id]": key},
                idempotency_header=_IDEMPOTENCY, idempotency_key=f"{key}:reverse")
            return self._refund_response(answer, Operation.REVERSE, key, where)
        answer = await self._http.request(
            "POST", f"/v1/payment_intents/{intent}/cancel", where=where,
            data={"cancellation_reason": "abandoned"},
            idempotency_header=_IDEMPOTENCY, idempotency_key=f"{key}:reverse")
        response = self._intent_response(answer, Operation.REVERSE, key, amount, where)
        if response.code == "canceled":
            response = replace(response, outcome=Outcome.APPROVE)
        return response

    async def refund(self, request: RefundRequest) -> PspResponse:
        key = request.idempotency_key
        intent = await self._intent_id(request.original, Operation.REFUND)
        if intent is None:
            return self._not_found(Operation.REFUND, request.original, Outcome.DECLINE)
        where = self._where(Operation.REFUND, key)
        answer = await self._http.request(
            "POST", "/v1/refunds", where=where,
            data={"payment_intent": intent, "amount": str(request.amount.minor),
                  "metadata[transaction_id]": key},
            idempotency_header=_IDEMPOTENCY, idempotency_key=key)
        return self._refund_response(answer, Operation.REFUND, key, where)

    def _refund_response(self, answer: HttpAnswer, operation: Operation, key: str,
                         where: dict[str, Any]) -> PspResponse:
        with reading(where, "the refund"):
            return self._read_refund(answer, operation, key, where)

    def _read_refund(self, answer: HttpAnswer, operation: Operation, key: str,
                     where: dict[str, Any]) -> PspResponse:
        reference = PspReference(connector=self.name, transaction_id=key,
                                 operation=operation.value)
        if answer.status >= 400:
            error = mapping(answer.body.get("error") or {}, "the error")
            reason = code(error.get("code") or f"http_{answer.status}")
            outcome = Outcome.RETRY if answer.status >= 409 else Outcome.DECLINE
            return PspResponse(outcome=outcome, code=reason,
                               message=message(error.get("message")),
                               operation=operation, reference=reference,
                               replayed=answer.replayed)
        status = code(require(answer.body, "status", where), "the refund status")
        outcome = Outcome.APPROVE if status in {"succeeded", "pending"} else Outcome.DECLINE
        refund_id = answer.body.get("id")
        return PspResponse(outcome=outcome, code=status, message=status, operation=operation,
                           reference=replace(reference, psp_id=None if refund_id is None
                                             else identifier(refund_id, "the refund id")),
                           replayed=answer.replayed)

    async def status(self, original: PspReference) -> PspResponse:
        key = original.transaction_id
        intent = await self._intent_id(original, Operation.STATUS)
        if intent is None:
            return self._not_found(Operation.STATUS, original, Outcome.DECLINE)
        where = self._where(Operation.STATUS, key)
        answer = await self._http.request("GET", f"/v1/payment_intents/{intent}", where=where)
        return self._intent_response(answer, Operation.STATUS, key, None, where)

    async def echo(self) -> PspResponse:
        where = self._where(Operation.ECHO, "")
        answer = await self._http.request("GET", "/v1/balance", where=where)
        outcome = Outcome.APPROVE if answer.status < 300 else Outcome.RETRY
        return PspResponse(outcome=outcome, code=str(answer.status), message="balance",
                           operation=Operation.ECHO,
                           reference=PspReference(connector=self.name, transaction_id="",
                                                     operation=Operation.ECHO.value))

    async def aclose(self) -> None:
        await self._http.aclose()


def _is_identifier(value: str) -> bool:
    try:
        identifier(value, "the intent id")
    except ValueError:
        return False
    return True


def _charge_details(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``latest_charge.payment_method_details.card_present``, or ``{}`` when it is absent
    or not an object — Stripe sends ``latest_charge`` as the charge's id unless it is
    expanded. Only the approval code and the issuer data come from here, and the decision
    does not rest on them."""
    details: Any = body
    for key in ("latest_charge", "payment_method_details", "card_present"):
        details = details.get(key) if isinstance(details, dict) else None
    return details if isinstance(details, dict) else {}
