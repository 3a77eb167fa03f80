"""From a PSP's own answer code to an :class:`~edge_sync.connectors.base.Outcome`.

The code is always kept verbatim beside the outcome; these tables only say how the
terminal acts on it. ISO 8583:1987 DE 39 values (Annex A, "action codes" of the 1987
two-character set) as acquirers in Morocco and Europe use them; Stripe decline codes and
PayPal processor response codes as their public documentation lists them.
"""

from __future__ import annotations

from edge_sync.connectors.base import Outcome
from edge_sync.response_codes import ISO_APPROVED

__all__ = ["ISO_APPROVED", "classify_iso", "classify_paypal", "classify_stripe"]

#: "Refer to card issuer" (voice authorisation).
_ISO_REFER = frozenset({"01", "02"})
#: The host or the issuer could not decide now; the same request may succeed later.
_ISO_RETRY = frozenset({"19", "68", "90", "91", "92", "96"})


def classify_iso(code: str) -> Outcome:
    """ISO 8583 DE 39 → outcome; anything unknown is a decline (never a silent approve)."""
    if code in ISO_APPROVED:
        return Outcome.APPROVE
    if code in _ISO_REFER:
        return Outcome.REFER
    if code in _ISO_RETRY:
        return Outcome.RETRY
    return Outcome.DECLINE


_STRIPE_RETRY = frozenset({"processing_error", "try_again_later", "issuer_not_available",
                           "rate_limit", "api_error", "lock_timeout"})
_STRIPE_REFER = frozenset({"call_issuer"})


def classify_stripe(status: str | None, code: str | None) -> Outcome:
    """A payment intent's status, or an error/decline code, → outcome."""
    if status in {"succeeded", "requires_capture", "canceled_reversal"}:
        return Outcome.APPROVE
    if code in _STRIPE_RETRY:
        return Outcome.RETRY
    if code in _STRIPE_REFER:
        return Outcome.REFER
    return Outcome.DECLINE


_PAYPAL_APPROVED = frozenset({"0000", "00N7", "0100"})
#: Processor "9100" (issuer unavailable) and the HTTP error names of a 429/5xx answer.
_PAYPAL_RETRY = frozenset({"9100", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR",
                           "RATE_LIMIT_REACHED"})


def classify_paypal(status: str | None, code: str | None) -> Outcome:
    """A capture/authorization status and its ``processor_response.response_code``."""
    if status in {"COMPLETED", "CREATED", "PENDING", "VOIDED", "APPROVED"} and (
        code is None or code in _PAYPAL_APPROVED
    ):
        return Outcome.APPROVE
    if code in _PAYPAL_RETRY:
        return Outcome.RETRY
    return Outcome.DECLINE  # PayPal has no voice referral: "refer" never comes from it
