"""The idempotency keys a payment goes under at its PSP, derived from the payment's UUID.

The terminal sends a sale under the payment's own UUID. An offline approval's advice is a
transaction of its own at the acquirer (ISO 8583 0220, a REST capture), sent under
:func:`advice_key` — a name-based UUID in the payment's namespace (RFC 9562 v5), the same
at every retry and never the payment's id, which an online attempt may hold. The terminal
(:mod:`terminal.payments.advice`) and the platform's reconciliation
(:mod:`edge_sync.platform.reconcile`) both derive it here, so they cannot disagree.
"""

from __future__ import annotations

import uuid

__all__ = ["advice_key", "psp_keys"]


def advice_key(payment_id: uuid.UUID | str) -> uuid.UUID:
    """The idempotency key (and P2PE context) of ``payment_id``'s advice."""
    return uuid.uuid5(uuid.UUID(str(payment_id)), "advice")


def psp_keys(payment_id: str) -> tuple[str, ...]:
    """Every key a payment may be booked under at a PSP: its own, and its advice's (a
    payment id that is not a UUID has only its own)."""
    try:
        return (payment_id, str(advice_key(payment_id)))
    except ValueError:
        return (payment_id,)
