"""Refunds and voids of an approved payment (seed 000 ``refunds``), each with its PoP record.

* A **refund** gives back part or all of what was captured; refunds together never exceed
  it. It is sent to the PSP that took the payment (a transaction of its own, idempotent on
  the refund's UUID). A payment whose PoP record is still deferred, or an offline approval
  whose advice has not reached the acquirer, has nothing at the PSP to refund yet: the
  refund waits (``pending_sync``) and :func:`terminal.payments.recovery.settle` sends it
  once the payment is confirmed.
* A **void** cancels the whole payment before the end of day that settles it: the
  authorisation is reversed and the payment becomes ``voided``.

Every refund and void carries its PoP counterpart record (kind ``refund`` / ``cancel``),
queued in the outbox, and is journalled; so is every failed retry of a waiting refund
(entity ``refund_attempt``, action ``refund_retry_failed``: payment, PSP, error class).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from edge_sync.connectors.base import Outcome, PspReference, RefundRequest
from edge_sync.connectors.errors import PspError
from edge_sync.pop import PopRecord
from terminal.money import Amount
from terminal.money import currency as currency_of
from terminal.payments import ledger
from terminal.payments.messages import json_text, pop_record_message, transaction_uplink
from terminal.payments.model import (
    InvalidAmountError,
    RefundOutcome,
    RefundRefusedError,
    UnknownPaymentError,
)
from terminal.payments.rows import PaymentRow
from terminal.services.psp import psp_amount
from terminal.store import StateChange
from terminal.store.changes import record_change

if TYPE_CHECKING:
    from terminal.payments.manager import PaymentManager

__all__ = ["refund_payment", "send_refund", "void_payment"]

REFUNDABLE = frozenset({"completed", "pop_deferred"})


def _payment(manager: PaymentManager, payment_id: str) -> PaymentRow:
    try:
        uuid.UUID(payment_id)
    except ValueError:
        raise UnknownPaymentError(f"{payment_id!r} is not a payment id (a UUID; "
                                  "etika tx list shows them)") from None
    row = ledger.payment_row(manager.store, payment_id)
    if row is None:
        raise UnknownPaymentError(f"no payment {payment_id} in this terminal's store "
                                  "(etika tx list shows them)")
    return row


def _pop_record(manager: PaymentManager, conn: sqlite3.Connection, row: PaymentRow, kind: str,
                amount_minor: int) -> PopRecord:
    """The refund's or void's PoP counterpart; it refers to the sale's own PoP record."""
    term = manager.profile.terminal
    sale_record = conn.execute("SELECT id FROM pop_transactions WHERE payment_id = ?",
                               (row["id"],)).fetchone()
    refers_to = uuid.UUID(sale_record[0]) if sale_record else uuid.UUID(row["id"])
    return PopRecord(
        record_id=uuid.uuid4(), payment_id=uuid.UUID(row["id"]), kind=kind,  # type: ignore[arg-type]
        terminal_id=term.terminal_id, merchant_id=term.merchant_id,
        amount_minor=amount_minor, currency=row["currency"],
        card_token=row["card_token"] or "untokenised",
        created_at=manager.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        sequence=ledger.next_pop_sequence(conn), refers_to=refers_to,
    )


async def refund_payment(manager: PaymentManager, payment_id: str,
                         amount: Amount | None = None, *, reason: str | None = None
                         ) -> RefundOutcome:
    """Refund ``amount`` (default: all that is left) of an approved payment."""
    row = _payment(manager, payment_id)
    currency = currency_of(row["currency"])
    if row["status"] not in REFUNDABLE:
        raise RefundRefusedError(
            f"payment {payment_id} is {row['status']}: only approved payments are refunded")
    captured = int(row.get("captured_minor") or row["amount_minor"])
    left = captured - ledger.refunded_minor(manager.store, uuid.UUID(payment_id))
    if amount is None:
        amount = Amount(left, currency)
    if amount.currency.code != currency.code:
        raise RefundRefusedError(f"payment {payment_id} was in {currency.code}; refund in "
                                 "the same currency")
    if amount.minor <= 0:
        raise InvalidAmountError(f"a refund of {amount} is refused: the amount must be "
                                 "above zero" + ("" if left > 0 else
                                                 " (nothing is left to refund)"))
    if amount.minor > left:
        raise RefundRefusedError(
            f"a refund of {amount} is more than is left to refund ({Amount(left, currency)} "
            f"of {Amount(captured, currency)} captured)")
    refund_id = uuid.uuid4()
    waits = row["status"] == "pop_deferred" or not row.get("psp_reference")
    with manager.store.transaction() as conn:
        record = _pop_record(manager, conn, row, "refund", amount.minor)
        record_change(conn, StateChange(
            "refund", str(refund_id), "requested",
            fields={"payment_id": payment_id, "amount_minor": amount.minor,
                    "currency": currency.code, "reason": reason, "kind": "refund",
                    "pop_record_id": str(record.record_id)},
            outbox=[pop_record_message(record, payment_id)],
        ))
    manager.on_step("refund_requested")
    if waits:
        manager.store.record(StateChange(
            "refund", str(refund_id), "pending_sync",
            reason="the payment is not confirmed at the PSP and PoP yet; the refund waits"))
        return _refund_outcome(manager, refund_id)
    return await send_refund(manager, str(refund_id))


async def send_refund(manager: PaymentManager, refund_id: str) -> RefundOutcome:
    """Send a requested or waiting refund to the PSP (same UUID: the PSP dedups)."""
    refund = manager.store.connection.execute(
        "SELECT payment_id, amount_minor, currency, status FROM refunds WHERE id = ?",
        (refund_id,)).fetchone()
    row = ledger.payment_row(manager.store, refund[0])
    reference = row["psp_reference"] if row else None
    if not isinstance(reference, dict):
        return _refund_outcome(manager, uuid.UUID(refund_id))
    amount = Amount(int(refund[1]), currency_of(refund[2]))
    request = RefundRequest(uuid.UUID(refund_id), psp_amount(amount),
                            PspReference.from_dict(reference))
    try:
        async with asyncio.timeout(manager.deadline_s * 2):
            answer = await manager.router.refund(request)
    except (PspError, TimeoutError) as exc:
        if refund[3] == "requested":
            manager.store.record(StateChange("refund", refund_id, "pending_sync",
                                             reason=f"PSP unreachable ({exc}); retried later"))
        else:
            # The refund stays pending_sync, so no transition journals this attempt; an
            # auditor must still see every attempt. The error's class only: its text is
            # the connector's and the journal takes nothing it did not choose.
            manager.store.record(StateChange(
                "refund_attempt", refund_id, None, action="refund_retry_failed",
                fields={"payment_id": refund[0], "psp": request.original.connector,
                        "error": type(exc).__name__}))
        return _refund_outcome(manager, uuid.UUID(refund_id))
    manager.on_step("refund_answered")
    state = "approved" if answer.outcome is Outcome.APPROVE else "declined"
    platform = transaction_uplink(
        {"payment_id": refund_id, "type": "refund", "state": state,
         "amount_minor": amount.minor, "currency": amount.currency.code,
         "business_date": manager.clock().date().isoformat(), "refers_to": refund[0]},
        ref_id=refund[0])
    manager.store.record(StateChange(
        "refund", refund_id, state,
        fields={"gateway_refund_id": answer.reference.rrn or answer.reference.transaction_id,
                "psp_reference": json_text(answer.reference.as_dict())},
        outbox=[platform], reason=f"PSP answered {answer.code}"))
    return _refund_outcome(manager, uuid.UUID(refund_id))


async def void_payment(manager: PaymentManager, payment_id: str, *,
                       now: datetime | None = None) -> RefundOutcome:
    """Cancel a whole approved payment before its end of day: reverse it at the PSP."""
    row = _payment(manager, payment_id)
    if row["status"] not in REFUNDABLE:
        raise RefundRefusedError(
            f"payment {payment_id} is {row['status']}: only approved payments are voided")
    day = str(row["created_at"])[:10]
    settled = manager.store.connection.execute(
        "SELECT 1 FROM outbox WHERE kind = 'eod_totals' AND idempotency_key = ?",
        (f"eod:{manager.profile.terminal.terminal_id}:{day}",)).fetchone()
    if settled:
        raise RefundRefusedError(f"payment {payment_id} was settled with the end of day of "
                                 f"{day}: refund it instead")
    if ledger.refunded_minor(manager.store, uuid.UUID(payment_id)):
        raise RefundRefusedError(f"payment {payment_id} has refunds: refund the rest instead")
    reference = row.get("psp_reference")
    if not isinstance(reference, dict):
        raise RefundRefusedError(f"payment {payment_id} was approved offline and has not "
                                 "reached the acquirer yet: run etika sync run, then void")
    amount = Amount(int(row["amount_minor"]), currency_of(row["currency"]))
    try:
        async with asyncio.timeout(manager.deadline_s * 2):
            answer = await manager.router.reverse(PspReference.from_dict(reference),
                                                  psp_amount(amount))
    except (PspError, TimeoutError) as exc:
        raise RefundRefusedError(f"the PSP could not be reached to void {payment_id} ({exc});"
                                 " nothing was changed: try again") from exc
    void_id = uuid.uuid4()
    if answer.outcome is not Outcome.APPROVE:
        manager.store.record(StateChange(
            "refund", str(void_id), "requested",
            fields={"payment_id": payment_id, "amount_minor": amount.minor,
                    "currency": amount.currency.code, "kind": "void",
                    "reason": f"void refused by the PSP ({answer.code})"}))
        manager.store.record(StateChange("refund", str(void_id), "declined"))
        return _refund_outcome(manager, void_id)
    pop = manager.store.connection.execute(
        "SELECT id, status FROM pop_transactions WHERE payment_id = ?", (payment_id,)
    ).fetchone()
    with manager.store.transaction() as conn:
        record = _pop_record(manager, conn, row, "cancel", amount.minor)
        record_change(conn, StateChange(
            "refund", str(void_id), "requested",
            fields={"payment_id": payment_id, "amount_minor": amount.minor,
                    "currency": amount.currency.code, "kind": "void",
                    "reason": "voided before the end of day",
                    "pop_record_id": str(record.record_id)},
            outbox=[pop_record_message(record, payment_id)]))
        record_change(conn, StateChange("refund", str(void_id), "approved"))
        if pop is not None and pop[1] not in ("cancelled", "rejected"):
            record_change(conn, StateChange("pop_transaction", pop[0], "cancelled",
                                            reason="payment voided"))
        record_change(conn, StateChange(
            "payment", payment_id, "voided", reason="voided before the end of day",
            outbox=[transaction_uplink(
                {"payment_id": payment_id, "type": "sale", "state": "voided",
                 "amount_minor": amount.minor, "currency": amount.currency.code,
                 "business_date": day}, ref_id=payment_id)]))
    return _refund_outcome(manager, void_id)


def _refund_outcome(manager: PaymentManager, refund_id: uuid.UUID) -> RefundOutcome:
    row = manager.store.connection.execute(
        "SELECT payment_id, kind, status, amount_minor, currency, reason FROM refunds "
        "WHERE id = ?", (str(refund_id),)).fetchone()
    reasons = {"approved": "approved by the PSP", "declined": "declined by the PSP",
               "pending_sync": "waiting: sent to the PSP once the payment is confirmed",
               "requested": "requested"}
    return RefundOutcome(refund_id=refund_id, payment_id=uuid.UUID(row[0]), kind=row[1],
                         state=row[2], amount=Amount(int(row[3]), currency_of(row[4])),
                         reason=reasons.get(row[2], row[2]) + (f" ({row[5]})" if row[5] else ""))

