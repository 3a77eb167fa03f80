"""Errors of the PSP connectors and of routing, one leaf per recovery action.

::

    EtikaError
    └── SyncError                        edge_sync.errors
        └── PspError                     root of the connector and routing errors
            ├── PspUnreachableError      no connection, nothing was sent: try the next connector
            ├── CircuitOpenError         the connector's breaker is open: try the next connector
            ├── PspRejectedError         the PSP refused the request as invalid: fix, do not retry
            ├── OutcomeUnknownError      sent, no usable answer: the PSP may have acted on it
            │   ├── PspTimeoutError      no answer within the timeout
            │   └── MalformedResponseError an answer that cannot be read (length, format, MTI, STAN)
            ├── AuthorisationReversedError an authorisation's outcome was unknown and its reversal
            │                            is confirmed: the payment did not happen, route elsewhere
            ├── ReversalPendingError     the outcome is unknown and the reversal is not
            │                            confirmed: queue ``reversal`` (outbox, priority 10)
            ├── NoRouteError             no route of the profile accepts the payment: decline
            └── ConnectorsExhaustedError every connector of the route failed: go offline or decline

Every leaf carries ``connector`` and, when a transaction is concerned, ``idempotency_key``
(the transaction UUID) so that no transaction is lost: an error always says which payment
it is about. Messages never hold card data (the connectors never see a clear PAN outside
the P2PE envelope they build).
"""

from __future__ import annotations

from typing import Any

from edge_sync.errors import SyncError
from edge_sync.json_types import JsonValue

__all__ = [
    "AuthorisationReversedError",
    "CircuitOpenError",
    "ConnectorsExhaustedError",
    "MalformedResponseError",
    "NoRouteError",
    "OutcomeUnknownError",
    "PspError",
    "PspRejectedError",
    "PspTimeoutError",
    "PspUnreachableError",
    "ReversalPendingError",
]


class PspError(SyncError):
    """Root of the PSP connector and routing errors."""


class PspUnreachableError(PspError):
    """The connection could not be made (refused, TLS, DNS): the PSP saw nothing."""


class CircuitOpenError(PspError):
    """The connector failed too often recently; it is skipped until its probe succeeds."""


class PspRejectedError(PspError):
    """The PSP refused the request as malformed (ISO 8583 "30", HTTP 400/409/422)."""


class OutcomeUnknownError(PspError):
    """The request left the terminal but no usable answer came back."""


class PspTimeoutError(OutcomeUnknownError):
    """No answer arrived within the connector's timeout."""


class MalformedResponseError(OutcomeUnknownError):
    """An answer arrived but cannot be read: truncated, undecodable or not ours."""


class AuthorisationReversedError(PspError):
    """An authorisation went unanswered and the PSP confirmed its reversal."""


class ReversalPendingError(PspError):
    """An authorisation went unanswered and its reversal is not confirmed yet.

    ``reversal`` holds the reversal to queue in the outbox (a JSON-able dict, no card data).
    """

    def __init__(self, message: str, *, reversal: dict[str, JsonValue], **fields: Any) -> None:
        super().__init__(message, **fields)
        self.reversal = reversal


class NoRouteError(PspError):
    """No route of the profile matches the payment (network, BIN, currency, amount)."""


class ConnectorsExhaustedError(PspError):
    """Every connector the route names failed or was skipped; ``attempts`` says why."""
