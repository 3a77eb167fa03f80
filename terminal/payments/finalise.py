"""The finalisation of a sale: from what the card and both legs did to the payment's end.

:func:`finalise` runs after the card's last GENERATE AC, :func:`abandon` when the card
session ended early; each ending is one :func:`_close` — the payment's state, attempts, PoP
record, receipt, the platform's copy and the outbox rows in one transaction. The endings
are the table of :mod:`terminal.payments.manager`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_sync.connectors.base import Outcome, PspReference
from edge_sync.connectors.errors import PspError
from edge_sync.pop import PopRecord
from hsm import TokenisedCard
from terminal.emv.errors import CardDataError, EmvError
from terminal.emv.kernel import TransactionResult
from terminal.emv.pan import expiry_from_card, pan_from_card
from terminal.logs import mask_pan_text
from terminal.payments import ledger
from terminal.payments.advice import advice_id
from terminal.payments.fraud import FraudAssessment
from terminal.payments.legs import DualLegs, FinancialLeg, PopLeg, Prepared, submit_pop
from terminal.payments.messages import (
    alert_message,
    json_text,
    pop_cancel_message,
    pop_record_message,
    transaction_uplink,
)
from terminal.payments.model import (
    APPROVED_STATES,
    EventSink,
    PaymentEvent,
    PaymentOutcome,
    SaleRequest,
)
from terminal.payments.outcome import token_activation
from terminal.payments.receipt import Receipt
from terminal.services.psp import (
    REVERSAL_PRIORITY,
    amount_payload,
    network_for_aid,
    psp_amount,
    reversal_payload,
)
from terminal.store import OutboxMessage, StateChange
from terminal.store.changes import record_change

if TYPE_CHECKING:
    from terminal.payments.manager import PaymentManager

__all__ = ["SETTLE_TTL_S", "SaleInProgress", "abandon", "finalise"]

#: A reversal or advice the PSP has not acknowledged after this long needs a person.
SETTLE_TTL_S = 7 * 86400.0
_KERNEL_CVMS = {"online_pin": "online_pin", "offline_pin": "offline_pin",
                "offline_enciphered_pin": "offline_pin", "signature": "signature",
                "cdcvm": "cdcvm"}
_APPROVED_DECISIONS = frozenset({"approved_online", "approved_offline",
                                 "approved_unable_online"})


@dataclass
class SaleInProgress:
    """What one sale gathered on its way, for the finalisation."""

    payment_id: uuid.UUID
    request: SaleRequest
    card: TokenisedCard | None = None
    network: str = ""
    prepared: Prepared | None = None
    fraud: FraudAssessment | None = None
    pop_record: PopRecord | None = None
    #: Why the terminal may not approve this sale on its own, when it may not.
    offline_refusal: str = ""
    #: Offline approvals still to sync in the sale's currency, read once per sale (fraud
    #: score and offline limits both use it; nothing the sale does changes it).
    exposure: ledger.OfflineExposure | None = None


async def finalise(manager: PaymentManager, sale: SaleInProgress, legs: DualLegs,
                    result: TransactionResult) -> PaymentOutcome:
    card_approved = result.decision in _APPROVED_DECISIONS
    if not legs.called:
        return await _finalise_without_host(manager, sale, result, card_approved)
    fin, pop = legs.financial, legs.pop_leg
    prepared = sale.prepared
    if prepared is not None and not prepared.go:
        return _close(manager, sale, result, "financial_declined",
                           prepared.reason or _reason(result, "declined"))
    if fin.status == "approved" and card_approved:
        return await _approved(manager, sale, result, fin, pop, offline=False)
    if fin.status == "approved":
        return await _reverse_after_card_decline(manager, sale, result, legs)
    if fin.status == "declined":
        return await _declined(manager, sale, result, legs,
                                    _psp_reason(fin.response) or _reason(result, "declined"))
    if fin.status == "unreachable":
        if card_approved:
            return await _approved(manager, sale, result, fin, pop, offline=True)
        why = sale.offline_refusal or _reason(result, "declined offline by the card")
        return await _declined(manager, sale, result, legs,
                                    f"host unreachable; {why}")
    # timeout, unknown or reversed outcome: coordinated cancel (fallback 3)
    return await _cancel(manager, sale, result, legs)


async def _finalise_without_host(manager: PaymentManager,
                                 sale: SaleInProgress, result: TransactionResult,
                                 card_approved: bool) -> PaymentOutcome:
    """The card decided at GENERATE AC 1 (TC or AAC): no host was asked."""
    pan, expiry = pan_from_card(result.emv_data), expiry_from_card(result.emv_data)
    if pan is not None and expiry is not None:
        aid = bytes.fromhex(result.aid) if result.aid else b""
        try:
            network = network_for_aid(manager.profile, aid)
        except EmvError:
            network = result.network or ""
        candidates = manager.candidates_for(pan, aid, network, sale.request.amount)
        try:
            await manager.prepare(sale, pan, expiry, network, candidates, submit_pop=False)
        except CardDataError as exc:
            return _close(manager, sale, result, "financial_declined", _mask(str(exc)))
    if not card_approved:
        return _close(manager, sale, result, "financial_declined",
                           _reason(result, "declined by the card"))
    ok, why = manager.offline_allowed(sale.request.amount, manager.offline_exposure(sale))
    if not ok or sale.card is None:
        return _close(manager, sale, result, "financial_declined",
                           why or "the card gave no PAN to record the sale")
    if sale.fraud is not None and sale.fraud.decision == "decline":
        return _close(manager, sale, result, "financial_declined",
                           f"declined by the fraud rules (score {sale.fraud.score:.2f})")
    with manager.store.transaction() as conn:
        sale.pop_record = manager.new_pop_record(conn, sale, sale.card)
        record_change(conn, StateChange(
            "pop_transaction", str(sale.pop_record.record_id), "pending",
            fields={"payment_id": str(sale.payment_id),
                    "sequence": sale.pop_record.sequence}))
    # The card approved offline: the PoP leg still runs now (under the deadline); the
    # financial leg becomes an advice in the outbox.
    deadline = asyncio.get_running_loop().time() + manager.deadline_s
    pop = await submit_pop(manager.pop, sale.pop_record, deadline)
    fin = FinancialLeg(status="unreachable", candidates=manager.route_of(sale))
    return await _approved(manager, sale, result, fin, pop, offline=True)


async def _approved(manager: PaymentManager,
                    sale: SaleInProgress, result: TransactionResult, fin: FinancialLeg,
                    pop: PopLeg, *, offline: bool) -> PaymentOutcome:
    outbox: list[OutboxMessage] = []
    pid = str(sale.payment_id)
    if pop.status == "confirmed":
        state = "completed"
    elif pop.status == "rejected":
        state = "needs_reconciliation"
    else:
        state = "pop_deferred"
    if offline:
        connector = (fin.candidates or manager.route_of(sale) or ["-"])[0]
        outbox.append(OutboxMessage(
            f"psp:{connector}", "advice",
            {"payment_id": pid, "advice_id": str(advice_id(pid)),
             "connector": connector, "network": sale.network,
             "amount": amount_payload(sale.request.amount),
             "entry_mode": "contactless" if sale.request.contactless else "chip"},
            f"advice:{pid}", ref_id=pid, ttl_s=SETTLE_TTL_S))
    pop_fields, pop_state = _pop_after(pop, approved=True)
    if pop.status == "unavailable" and sale.pop_record is not None:
        outbox.append(pop_record_message(sale.pop_record, pid))
    if state == "completed":
        reference = pop.receipt.pop_reference if pop.receipt is not None else None
        outbox.append(_token_activation(manager, sale, reference))
    if state == "needs_reconciliation":
        outbox.append(alert_message(pid, "pop_rejected_for_approved_sale",
                             pop.reason or "the PoP back end refused the record"))
    if not offline:
        reason = "approved by the issuer"
    elif fin.attempts:
        reason = "approved offline: the host could not be reached"
    else:
        reason = "approved offline by the card (within its and the terminal's limits)"
    if state == "pop_deferred":
        reason += "; PoP pending"
    elif state == "needs_reconciliation":
        reason += "; PoP refused the record: needs reconciliation"
    captured = sale.request.amount.minor
    return _close(manager, sale, result, state, reason, outbox=outbox, offline=offline,
                       attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields,
                       captured=captured, psp_response=fin.response)


async def _reverse_after_card_decline(manager: PaymentManager,
                                      sale: SaleInProgress, result: TransactionResult,
                                      legs: DualLegs) -> PaymentOutcome:
    """The issuer approved but the card declined at GENERATE AC 2: undo the charge."""
    fin = legs.financial
    assert fin.response is not None
    reference = fin.response.reference
    reversed_now = False
    try:
        async with asyncio.timeout(manager.deadline_s):
            answer = await manager.router.reverse(reference, psp_amount(sale.request.amount))
        reversed_now = answer.outcome is Outcome.APPROVE
    except (PspError, TimeoutError):
        reversed_now = False
    pid = str(sale.payment_id)
    outbox = [] if reversed_now else [_reversal_message(manager, sale, reference)]
    outbox += _pop_cancel(manager, legs, "the card declined after the issuer approved")
    pop_fields, pop_state = _pop_after(legs.pop_leg, approved=False)
    state = "reversed" if reversed_now else "reversal_pending"
    reason = ("declined by the card after the issuer approved (AAC at GENERATE AC 2); "
              + ("the authorisation was reversed" if reversed_now
                 else "the reversal is queued"))
    if reversed_now:
        # reversal_pending → reversed: two journal entries, one for each step.
        _close(manager, sale, result, "reversal_pending", reason, outbox=outbox,
                    attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields,
                    psp_response=fin.response)
        manager.store.record(StateChange("payment", pid, "reversed",
                                      reason="reversal acknowledged by the PSP"))
        return manager.outcome(pid)
    return _close(manager, sale, result, state, reason, outbox=outbox, attempts=fin.attempts,
                       pop_state=pop_state, pop_fields=pop_fields,
                       psp_response=fin.response)


async def _declined(manager: PaymentManager,
                    sale: SaleInProgress, result: TransactionResult, legs: DualLegs,
                    reason: str) -> PaymentOutcome:
    outbox = _pop_cancel(manager, legs, "the payment was declined")
    pop_fields, pop_state = _pop_after(legs.pop_leg, approved=False)
    return _close(manager, sale, result, "financial_declined", reason, outbox=outbox,
                       attempts=legs.financial.attempts, pop_state=pop_state,
                       pop_fields=pop_fields, psp_response=legs.financial.response)


async def _cancel(manager: PaymentManager, sale: SaleInProgress, result: TransactionResult | None,
                  legs: DualLegs) -> PaymentOutcome:
    """Fallback 3: the financial leg's fate is unknown at the deadline: reverse it
    wherever it may have gone, and cancel the PoP record."""
    fin = legs.financial
    pid = str(sale.payment_id)
    outbox: list[OutboxMessage] = []
    if fin.status == "reversed":
        pass  # the PSP confirmed the reversal itself: nothing left to undo
    elif fin.reversal is not None:
        outbox.append(OutboxMessage(
            f"psp:{fin.reversal.get('connector')}", "reversal", fin.reversal,
            f"reversal:{pid}", ref_id=pid, priority=REVERSAL_PRIORITY,
            ttl_s=SETTLE_TTL_S))
    else:
        for connector in fin.candidates:
            reference = PspReference(connector=connector, transaction_id=pid)
            outbox.append(_reversal_message(manager, sale, reference,
                                                 key=f"reversal:{pid}:{connector}"))
    outbox += _pop_cancel(manager, legs, "the payment timed out and was cancelled")
    pop_fields, pop_state = _pop_after(legs.pop_leg, approved=False)
    if fin.status == "timeout":
        why = (f"no answer from the acquirer within the {manager.deadline_s:g} s deadline; "
               "a reversal is queued")
    elif fin.status == "reversed":
        why = "the acquirer did not answer in time and confirmed the reversal"
    else:
        why = "the acquirer's answer was lost; a reversal is queued"
    return _close(manager, sale, result, "cancelled", f"cancelled: {why}", outbox=outbox,
                       attempts=fin.attempts, pop_state=pop_state, pop_fields=pop_fields)


async def abandon(manager: PaymentManager, sale: SaleInProgress, legs: DualLegs, exc: BaseException,
                   emit: EventSink) -> PaymentOutcome:
    """The card session ended early (card removed, no card, card error)."""
    fin = legs.financial
    pid = str(sale.payment_id)
    reason = _mask(str(exc)) or type(exc).__name__
    if fin.status == "approved" and fin.response is not None:
        # The issuer approved but the card never finished: no TC, so undo the charge.
        reference = fin.response.reference
        outbox = [_reversal_message(manager, sale, reference)]
        outbox += _pop_cancel(manager, legs, "the card session ended before completion")
        pop_fields, pop_state = _pop_after(legs.pop_leg, approved=False)
        outcome = _close(manager, sale, None, "reversal_pending",
                              f"the card session ended after approval ({reason}); "
                              "the reversal is queued", outbox=outbox,
                              attempts=fin.attempts, pop_state=pop_state,
                              pop_fields=pop_fields, psp_response=fin.response)
    elif fin.status in ("timeout", "unknown", "reversed"):
        outcome = await _cancel(manager, sale, None, legs)
    else:
        outbox = _pop_cancel(manager, legs, "the card session ended early")
        pop_fields, pop_state = _pop_after(legs.pop_leg, approved=False)
        stored = ledger.payment_row(manager.store, pid)
        current = stored["status"] if stored else None
        state = "cancelled"
        if current == "created" and not outbox:
            outcome = _close(manager, sale, None, state, f"cancelled: {reason}")
        else:
            outcome = _close(manager, sale, None, state, f"cancelled: {reason}", outbox=outbox,
                                  attempts=fin.attempts, pop_state=pop_state,
                                  pop_fields=pop_fields)
    emit(PaymentEvent("done", outcome.state, sale.payment_id))
    return outcome

# --- pieces of the finalisation ----------------------------------------------------------


def _reversal_message(manager: PaymentManager, sale: SaleInProgress, reference: PspReference, *,
                      key: str | None = None) -> OutboxMessage:
    pid = str(sale.payment_id)
    payload = reversal_payload(reference, sale.request.amount)
    return OutboxMessage(f"psp:{reference.connector}", "reversal", payload,
                         key or f"reversal:{pid}", ref_id=pid,
                         priority=REVERSAL_PRIORITY, ttl_s=SETTLE_TTL_S)


def _pop_cancel(manager: PaymentManager, legs: DualLegs, why: str) -> list[OutboxMessage]:
    """A PoP record that may have reached the back end is withdrawn, via the outbox."""
    record = legs.pop_leg.record
    if record is None or legs.pop_leg.status == "not_sent":
        return []
    if legs.pop_leg.status == "rejected":
        return []
    return [pop_cancel_message(str(record.record_id), str(record.payment_id), why)]


def _pop_after(pop: Any, *, approved: bool) -> tuple[dict[str, Any], str | None]:
    """The PoP record's next state and fields, from what its leg did."""
    if pop.record is None:
        return {}, None
    reference = pop.receipt.pop_reference if pop.receipt is not None else None
    fields = {"pop_reference": reference, "reason": pop.reason}
    if not approved:
        return fields, "cancelled"
    return fields, {"confirmed": "confirmed", "pending": "submitted",
                    "rejected": "rejected", "unavailable": "deferred"}.get(pop.status)


def _token_activation(manager: PaymentManager,
                      sale: SaleInProgress, pop_reference: str | None) -> OutboxMessage:
    return token_activation(
        payment_id=str(sale.payment_id), terminal_id=manager.profile.terminal.terminal_id,
        card_token=sale.card.token if sale.card else "", amount=sale.request.amount,
        network=sale.network, pop_reference=pop_reference,
        pop_record_id=str(sale.pop_record.record_id) if sale.pop_record else None)


def _close(manager: PaymentManager,
           sale: SaleInProgress, result: TransactionResult | None, state: str, reason: str,
           *, outbox: list[OutboxMessage] | None = None, offline: bool = False,
           attempts: list[ledger.Attempt] | None = None, pop_state: str | None = None,
           pop_fields: Mapping[str, Any] | None = None, captured: int | None = None,
           psp_response: Any = None) -> PaymentOutcome:
    """The final transition: payment state, attempts, PoP record, receipts, the
    platform's copy and the outbox rows, in one transaction."""
    pid = str(sale.payment_id)
    emv = _emv_summary(result) if result is not None else {}
    fields: dict[str, Any] = {"reason": reason[:500], "emv": json_text(emv),
                              "offline": int(offline)}
    if captured is not None:
        fields["captured_minor"] = captured
    if psp_response is not None:
        reference = psp_response.reference
        fields["psp_reference"] = json_text(reference.as_dict())
        fields["gateway_provider"] = reference.connector
        fields["gateway_transaction_id"] = reference.rrn or reference.transaction_id
        fields["auth_code"] = reference.approval_code
    receipt = _receipt_data(manager, sale, result, state, fields.get("auth_code"), pop_fields)
    if receipt is not None:
        fields["receipt"] = json_text(receipt)
    messages = list(outbox or [])
    messages.append(transaction_uplink(_uplink(manager, sale, state, offline, attempts or []),
                                       ref_id=pid))
    with manager.store.transaction() as conn:
        current = conn.execute("SELECT status FROM payments WHERE id = ?",
                               (pid,)).fetchone()[0]
        if current == "created" and state in ("completed", "pop_deferred",
                                              "reversal_pending", "needs_reconciliation"):
            record_change(conn, StateChange("payment", pid, "authorising",
                                            action="authorise"))
        if attempts:
            ledger.insert_attempts(conn, sale.payment_id, attempts)
        if pop_state is not None and sale.pop_record is not None:
            _move_pop(conn, str(sale.pop_record.record_id), pop_state,
                           dict(pop_fields or {}))
        record_change(conn, StateChange("payment", pid, state, fields=fields,
                                        outbox=messages, reason=reason[:200]))
    return manager.outcome(pid)


def _move_pop(conn: Any, record_id: str, target: str, fields: dict[str, Any]) -> None:
    row = conn.execute("SELECT status FROM pop_transactions WHERE id = ?",
                       (record_id,)).fetchone()
    if row is None or row[0] == target:
        return
    path = {("pending", "cancelled"): ["cancelled"],
            ("pending", "submitted"): ["submitted"],
            ("pending", "confirmed"): ["confirmed"],
            ("pending", "rejected"): ["rejected"],
            ("pending", "deferred"): ["deferred"]}.get((row[0], target), [target])
    for step in path:
        record_change(conn, StateChange("pop_transaction", record_id, step,
                                        fields={k: v for k, v in fields.items()
                                                if v is not None}))


def _uplink(manager: PaymentManager, sale: SaleInProgress, state: str, offline: bool,
            attempts: list[ledger.Attempt]) -> dict[str, Any]:
    """The platform's copy of the payment: its state, fraud check and PSP attempts (no
    card data: the masked PAN only)."""
    amount = sale.request.amount
    return {"payment_id": str(sale.payment_id), "type": "sale", "state": state,
            "amount_minor": amount.minor, "currency": amount.currency.code,
            "business_date": manager.clock().date().isoformat(), "offline": offline,
            "network": sale.network,
            "pan_masked": sale.card.masked_pan if sale.card else None,
            "fraud": sale.fraud.as_row() if sale.fraud else None,
            "attempts": [{"connector": a.connector, "status": a.status,
                          "code": a.error_code} for a in attempts],
            "pop_record_id": str(sale.pop_record.record_id) if sale.pop_record else None}


def _receipt_data(manager: PaymentManager,
                  sale: SaleInProgress, result: TransactionResult | None, state: str,
                  auth_code: Any, pop_fields: Mapping[str, Any] | None
                  ) -> dict[str, Any] | None:
    if result is None or sale.card is None:
        return None
    cryptogram = result.application_cryptogram or ""
    if len(cryptogram) != 16 or result.cryptogram not in ("TC", "ARQC", "AAC"):
        return None
    term = manager.profile.terminal
    try:
        receipt = Receipt(
            merchant_name=term.merchant_name, merchant_id=term.merchant_id,
            terminal_id=term.terminal_id, timestamp=manager.clock(),
            amount=sale.request.amount, masked_pan=sale.card.masked_pan,
            aid=result.aid, app_label=result.label or result.aid,
            entry_mode="contactless" if sale.request.contactless else "contact",
            cvm=_KERNEL_CVMS.get(result.cvm, "no_cvm"),  # type: ignore[arg-type]
            tvr=result.tvr, tsi=result.tsi, cryptogram=cryptogram,
            cryptogram_type=result.cryptogram,  # type: ignore[arg-type]
            auth_code=auth_code if isinstance(auth_code, str) else None,
            pop_reference=(pop_fields or {}).get("pop_reference"),
            copy="merchant", payment_id=str(sale.payment_id),
            approved=state in APPROVED_STATES or state == "needs_reconciliation",
        )
    except ValueError:
        return None
    return receipt.as_dict()


def _reason(result: TransactionResult | None, fallback: str) -> str:
    text = getattr(result, "reason", "") if result is not None else ""
    return str(text) if text else fallback


def _psp_reason(response: Any) -> str:
    if response is None:
        return ""
    message = f": {response.message}" if response.message else ""
    return f"declined by the issuer (code {response.code}{message})"


def _emv_summary(result: TransactionResult) -> dict[str, Any]:
    data = result.as_json()
    data.pop("expiry", None)  # the expiry is card data: never stored in clear
    return data


def _mask(text: str) -> str:
    return mask_pan_text(text)

