"""A payment as its callers read it back, and the token activation of a confirmed one.

:func:`outcome_from_row` builds the :class:`~terminal.payments.model.PaymentOutcome` the CLI,
the UI and the manager show from the stored row (with its receipts rendered);
:func:`token_activation` is the event a sale confirmed on both legs queues (seed 001 §3.3).
"""

from __future__ import annotations

import contextlib
import uuid

from edge_sync.json_types import JsonValue
from terminal.money import Amount
from terminal.money import currency as currency_of
from terminal.payments.model import APPROVED_STATES, PaymentOutcome
from terminal.payments.receipt import Receipt, render_text
from terminal.payments.rows import PaymentRow
from terminal.store import OutboxMessage, Store

__all__ = ["outcome_from_row", "token_activation"]


def outcome_from_row(store: Store, row: PaymentRow, locale: str = "fr") -> PaymentOutcome:
    """A payment's outcome as the CLI and the UI show it, from its stored row."""
    pid = row["id"]
    pop = store.connection.execute(
        "SELECT status, pop_reference FROM pop_transactions WHERE payment_id = ?",
        (pid,)).fetchone()
    fraud = store.connection.execute(
        "SELECT risk_score, risk_level, decision FROM fraud_checks WHERE payment_id = ? "
        "ORDER BY created_at DESC LIMIT 1", (pid,)).fetchone()
    attempts = store.connection.execute(
        "SELECT count(*) FROM payment_attempts WHERE payment_id = ?", (pid,)).fetchone()[0]
    receipts: dict[str, str] = {}
    data = row["receipt"]
    if isinstance(data, dict):
        with contextlib.suppress(Exception):
            merchant = Receipt.from_dict(data)
            if pop is not None and pop[1] and not merchant.pop_reference:
                merchant = Receipt.from_dict({**data, "pop_reference": pop[1]})
            receipts["merchant"] = render_text(merchant, locale=locale)
            receipts["customer"] = render_text(
                Receipt.from_dict({**merchant.as_dict(), "copy": "customer"}), locale=locale)
    state = row["status"]
    return PaymentOutcome(
        payment_id=uuid.UUID(pid), state=state,
        approved=state in APPROVED_STATES, reason=row["reason"] or "",
        amount=Amount(row["amount_minor"], currency_of(row["currency"])),
        offline=bool(row["offline"]), masked_pan=row["pan_masked"] or "",
        network=row["network"] or "", auth_code=row["auth_code"],
        pop_status=pop[0] if pop else None, pop_reference=pop[1] if pop else None,
        emv=emv if isinstance(emv := row["emv"], dict) else {},
        fraud=({"score": fraud[0], "level": fraud[1], "decision": fraud[2]}
               if fraud else None),
        attempts=int(attempts), receipts=receipts,
    )


def token_activation(*, payment_id: str, terminal_id: str, card_token: str, amount: Amount,
                     network: str, pop_reference: str | None,
                     pop_record_id: str | None) -> OutboxMessage:
    """Seed 001 §3.3: a confirmed dual transaction activates the card's token. The event
    goes to the platform, which forwards it to the token system; ``event_id`` is derived
    from the payment, so a resent event is the same event."""
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"etika:activation:{payment_id}"))
    payload: dict[str, JsonValue] = {
        "event_id": event_id, "terminal_id": terminal_id, "payment_id": payment_id,
        "card_token": card_token, "amount_minor": amount.minor, "currency": amount.currency.code,
        "network": network, "pop_reference": pop_reference, "pop_record_id": pop_record_id}
    return OutboxMessage("platform", "token_activation", payload, f"activation:{payment_id}",
                         ref_id=payment_id)
