"""Bringing every payment to a final state: recovery on start and settlement after a sync.

:func:`recover` runs on start (``etika tx recover``, the UI, the demo). A payment left
mid-way by a crash is resumed or reversed by rule, and running it twice changes nothing:

==================  ===================================================================
left in             becomes
==================  ===================================================================
``created``         ``cancelled``: nothing was sent (the card never reached GENERATE AC)
``authorising``     ``cancelled``: the card session is gone, so the card never completed
                    the sale (no TC). Whatever the PSP did is reversed (a reversal queued
                    for every PSP the payment could have reached; a PSP that never saw it
                    answers the reversal as a no-op) and the PoP record is withdrawn.
refund ``requested``  ``pending_sync``: sent again under its own UUID (the PSP dedups)
==================  ===================================================================

:func:`settle` follows the outbox: once a queued message is acknowledged (or given up),
the payment it belongs to moves on:

* ``pop_deferred`` → ``completed`` when the PoP back end confirms the record (its
  ``status`` is asked once the record was delivered); a refused or dead record →
  ``needs_reconciliation`` with an alert;
* ``reversal_pending`` → ``reversed`` when the reversal is acknowledged; a reversal still
  unacknowledged at its TTL (dead) → ``needs_reconciliation`` with an alert (fallback 4);
* an offline approval whose advice the issuer declined (dead) → ``offline_declined`` with an
  alert for the merchant;
* refunds waiting (``pending_sync``) are sent when their payment is ``completed``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_sync.connectors.base import PspReference
from edge_sync.errors import PopError
from terminal.money import Amount, currency
from terminal.payments.messages import alert_message, pop_cancel_message, sale_uplink
from terminal.payments.outcome import token_activation
from terminal.payments.refunds import send_refund
from terminal.services.psp import REVERSAL_PRIORITY, reversal_payload
from terminal.store import OutboxMessage, StateChange
from terminal.store.changes import record_change

if TYPE_CHECKING:
    from terminal.payments.manager import PaymentManager

__all__ = ["RecoveryReport", "recover", "settle"]


@dataclass
class RecoveryReport:
    """What recovery and settlement changed, by payment id."""

    cancelled: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)
    needs_reconciliation: list[str] = field(default_factory=list)
    offline_declined: list[str] = field(default_factory=list)
    refunds_sent: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @property
    def changed(self) -> int:
        return sum(len(v) for v in self.__dict__.values())


async def recover(manager: PaymentManager) -> RecoveryReport:
    """Resume or reverse everything a crash left mid-way, then settle (idempotent)."""
    report = RecoveryReport()
    store = manager.store
    conn = store.connection
    for payment in conn.execute("SELECT * FROM payments WHERE status IN "
                                "('created', 'authorising') ORDER BY created_at").fetchall():
        pid = payment["id"]
        outbox: list[OutboxMessage] = []
        if payment["status"] == "authorising":
            amount = Amount(int(payment["amount_minor"]), currency(payment["currency"]))
            for connector in _route(payment["route_connectors"]):
                original = PspReference(connector=connector, transaction_id=pid)
                outbox.append(OutboxMessage(
                    f"psp:{connector}", "reversal", reversal_payload(original, amount),
                    f"reversal:{pid}:{connector}", ref_id=pid, priority=REVERSAL_PRIORITY))
        pop = conn.execute("SELECT id, status FROM pop_transactions WHERE payment_id = ?",
                           (pid,)).fetchone()
        with store.transaction() as tx:
            if pop is not None and pop["status"] not in ("cancelled", "rejected"):
                outbox.append(pop_cancel_message(pop["id"], pid,
                                                 "the terminal restarted mid-payment"))
                record_change(tx, StateChange("pop_transaction", pop["id"], "cancelled",
                                              reason="recovered after a restart"))
            outbox.append(sale_uplink(payment, "cancelled"))
            why = ("cancelled on recovery: the terminal stopped before the card completed the "
                   "sale" + ("; reversals queued" if payment["status"] == "authorising" else ""))
            record_change(tx, StateChange("payment", pid, "cancelled", outbox=outbox,
                                          fields={"reason": why}, reason=why,
                                          actor="recovery"))
        report.cancelled.append(pid)
    for refund in conn.execute("SELECT id FROM refunds WHERE status = 'requested'").fetchall():
        store.record(StateChange("refund", refund["id"], "pending_sync", actor="recovery",
                                 reason="recovered after a restart; sent again"))
    settled = await settle(manager)
    for name, ids in settled.as_json().items():
        getattr(report, name).extend(ids)
    return report


def _route(text: Any) -> list[str]:
    import json

    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _outbox_state(manager: PaymentManager, payment_id: str, kind: str) -> set[str]:
    rows = manager.store.connection.execute(
        "SELECT state FROM outbox WHERE ref_id = ? AND kind = ?", (payment_id, kind))
    return {r[0] for r in rows}


async def settle(manager: PaymentManager) -> RecoveryReport:
    """Move payments on from what the outbox delivered or gave up (see module docstring)."""
    report = RecoveryReport()
    store = manager.store
    conn = store.connection
    for payment in conn.execute("SELECT * FROM payments WHERE status = 'reversal_pending'"
                                ).fetchall():
        states = _outbox_state(manager, payment["id"], "reversal")
        if states and states <= {"delivered"}:
            store.record(StateChange("payment", payment["id"], "reversed",
                                     outbox=[sale_uplink(payment, "reversed")],
                                     reason="reversal acknowledged by the PSP", actor="settle"))
            report.reversed.append(payment["id"])
        elif "dead" in states:
            _reconcile(manager, payment, "reversal_unacknowledged",
                       "the reversal was not acknowledged before its time to live")
            report.needs_reconciliation.append(payment["id"])
    for payment in conn.execute("SELECT * FROM payments WHERE offline = 1 AND status IN "
                                "('completed', 'pop_deferred')").fetchall():
        if "dead" in _outbox_state(manager, payment["id"], "advice"):
            pid = payment["id"]
            outbox = [sale_uplink(payment, "offline_declined"),
                      alert_message(pid, "offline_declined",
                                    "the issuer declined an offline approval")]
            pop = conn.execute("SELECT id, status FROM pop_transactions WHERE payment_id = ?",
                               (pid,)).fetchone()
            with store.transaction() as tx:
                if pop is not None and pop["status"] not in ("cancelled", "rejected"):
                    # No money moved after all: the PoP record is withdrawn too.
                    outbox.append(pop_cancel_message(
                        pop["id"], pid, "the issuer declined the offline approval"))
                    record_change(tx, StateChange("pop_transaction", pop["id"], "cancelled",
                                                  actor="settle",
                                                  reason="offline approval declined"))
                record_change(tx, StateChange(
                    "payment", pid, "offline_declined", actor="settle",
                    reason="the issuer declined the offline approval's advice",
                    fields={"reason": "approved offline, then declined by the issuer: "
                                      "collect the payment another way"},
                    outbox=outbox))
            report.offline_declined.append(pid)
    for payment in conn.execute("SELECT * FROM payments WHERE status = 'pop_deferred'"
                                ).fetchall():
        await _settle_pop(manager, payment, report)
    for refund in conn.execute(
            "SELECT r.id FROM refunds r JOIN payments p ON p.id = r.payment_id "
            "WHERE r.status = 'pending_sync' AND p.status = 'completed' "
            "AND p.psp_reference IS NOT NULL").fetchall():
        outcome = await send_refund(manager, refund["id"])
        if outcome.state != "pending_sync":
            report.refunds_sent.append(refund["id"])
    return report


async def _settle_pop(manager: PaymentManager, payment: Any, report: RecoveryReport) -> None:
    pid = payment["id"]
    pop = manager.store.connection.execute(
        "SELECT id, status FROM pop_transactions WHERE payment_id = ?", (pid,)).fetchone()
    if pop is None:
        return
    queued = _outbox_state(manager, pid, "pop_record")
    if "dead" in queued:
        _reconcile(manager, payment, "pop_record_dead",
                   "the PoP back end refused the record or it was never delivered")
        report.needs_reconciliation.append(pid)
        return
    if queued and not queued <= {"delivered"}:
        return  # still on its way
    try:
        receipt = await manager.pop.status(uuid.UUID(pop["id"]))
    except PopError:
        return  # ask again at the next settlement
    if receipt.status == "confirmed":
        with manager.store.transaction() as tx:
            for step in _pop_path(pop["status"], "confirmed"):
                record_change(tx, StateChange("pop_transaction", pop["id"], step,
                                              fields={"pop_reference": receipt.pop_reference},
                                              actor="settle"))
            activation = token_activation(
                payment_id=pid, terminal_id=manager.profile.terminal.terminal_id,
                card_token=payment["card_token"] or "",
                amount=Amount(int(payment["amount_minor"]), currency(payment["currency"])),
                network=payment["network"] or "", pop_reference=receipt.pop_reference,
                pop_record_id=pop["id"])
            record_change(tx, StateChange("payment", pid, "completed", actor="settle",
                                          fields={"reason": "approved; PoP confirmed later"},
                                          outbox=[sale_uplink(payment, "completed", pop["id"]),
                                                  activation],
                                          reason="PoP record confirmed"))
        report.completed.append(pid)
    elif receipt.status in ("rejected", "cancelled"):
        _reconcile(manager, payment, "pop_rejected_for_approved_sale",
                   receipt.reason or "the PoP back end refused the record")
        report.needs_reconciliation.append(pid)


def _pop_path(current: str, target: str) -> list[str]:
    if current == target:
        return []
    if current == "deferred":
        return ["submitted", target] if target != "confirmed" else [target]
    return [target]


def _reconcile(manager: PaymentManager, payment: Any, kind: str, detail: str) -> None:
    """Fallback 4: a person must look; the platform is told."""
    manager.store.record(StateChange(
        "payment", payment["id"], "needs_reconciliation", actor="settle", reason=detail,
        fields={"reason": f"needs reconciliation: {detail}"},
        outbox=[sale_uplink(payment, "needs_reconciliation"),
                alert_message(payment["id"], kind, detail)]))
