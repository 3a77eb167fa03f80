"""What a payment's changes queue for the platform and the PoP back end, and the JSON text
its rows store.

Every uplink of a payment, refund or void is a ``transaction`` message keyed by its id and
state (``tx:<id>:<state>``: a state reported twice is one message), and every alert a
``alert`` message keyed by its kind and payment, ahead of the rest (priority 20). The
manager, recovery and refunds build them here, so the platform sees one shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edge_sync.json_types import JsonValue
from edge_sync.pop import PopRecord
from terminal.logs import mask_pan_text
from terminal.store import OutboxMessage

__all__ = ["ALERT_PRIORITY", "POP_PRIORITY", "alert_message", "json_text", "pop_cancel_message",
           "pop_record_message", "sale_uplink", "transaction_uplink"]

#: Alerts go ahead of the day's transactions: a person must look.
ALERT_PRIORITY = 20
#: PoP records and their withdrawals, after reversals (10) and alerts, before the rest.
POP_PRIORITY = 60


def json_text(value: Any) -> str:
    """The compact, key-sorted JSON the payment tables store (emv, receipt, references)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def alert_message(payment_id: str, kind: str, detail: str) -> OutboxMessage:
    """An alert for the platform about ``payment_id``; the detail is PAN-masked."""
    return OutboxMessage("platform", "alert", {"alert": kind, "payment_id": payment_id,
                                               "detail": mask_pan_text(detail)},
                         f"alert:{kind}:{payment_id}", ref_id=payment_id,
                         priority=ALERT_PRIORITY)


def transaction_uplink(payload: Mapping[str, JsonValue], *, ref_id: str) -> OutboxMessage:
    """The platform's copy of one state of a payment, refund or void (``payload`` names
    its ``payment_id`` and ``state``); ``ref_id`` is the payment it belongs to."""
    return OutboxMessage("platform", "transaction", payload,
                         f"tx:{payload['payment_id']}:{payload['state']}", ref_id=ref_id)


def sale_uplink(payment: Mapping[str, Any], state: str,
                pop_record_id: str | None = None) -> OutboxMessage:
    """A stored payment row's new ``state``, for the platform (recovery and settlement)."""
    return transaction_uplink(
        {"payment_id": payment["id"], "type": "sale", "state": state,
         "amount_minor": payment["amount_minor"], "currency": payment["currency"],
         "business_date": str(payment["created_at"])[:10], "pop_record_id": pop_record_id},
        ref_id=str(payment["id"]))


def pop_record_message(record: PopRecord, payment_id: str) -> OutboxMessage:
    """A PoP record (sale, refund or cancel) for the PoP back end, sent under its own id."""
    return OutboxMessage("pop", "pop_record", record.as_payload(), f"pop:{record.record_id}",
                         ref_id=payment_id, priority=POP_PRIORITY)


def pop_cancel_message(record_id: str, payment_id: str, reason: str) -> OutboxMessage:
    """The withdrawal of a PoP record that may have reached the back end."""
    return OutboxMessage("pop", "pop_cancel", {"record_id": record_id, "reason": reason},
                         f"pop-cancel:{record_id}", ref_id=payment_id, priority=POP_PRIORITY)
