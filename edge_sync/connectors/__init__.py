"""PSP connectors (ISO 8583 acquirer hosts, Stripe- and PayPal-like REST gateways), routing,
circuit breakers. See :mod:`.base` for the Protocol and :mod:`.routing` for the policy."""

from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    CardEncryptor,
    CardInput,
    Connector,
    EntryMode,
    Operation,
    Outcome,
    PspReference,
    PspResponse,
    RefundRequest,
)
from edge_sync.connectors.breaker import BreakerSettings, BreakerState, CircuitBreaker
from edge_sync.connectors.iso8583 import Iso8583Connector, Iso8583Settings
from edge_sync.connectors.iso8583_messages import HostContext, StanCounter, StanSource
from edge_sync.connectors.outbox_transport import PspOutboxTransport
from edge_sync.connectors.p2pe import CardDataEncryptor
from edge_sync.connectors.paypal import PayPalConnector
from edge_sync.connectors.rest import RestSettings
from edge_sync.connectors.routing import ConnectorScope, Router, RouteRule, RoutingKey
from edge_sync.connectors.stripe import StripeConnector

__all__ = [
    "Amount",
    "AuthorisationRequest",
    "BreakerSettings",
    "BreakerState",
    "CardDataEncryptor",
    "CardEncryptor",
    "CardInput",
    "CircuitBreaker",
    "Connector",
    "ConnectorScope",
    "EntryMode",
    "HostContext",
    "Iso8583Connector",
    "Iso8583Settings",
    "Operation",
    "Outcome",
    "PayPalConnector",
    "PspOutboxTransport",
    "PspReference",
    "PspResponse",
    "RefundRequest",
    "RestSettings",
    "RouteRule",
    "Router",
    "RoutingKey",
    "StanCounter",
    "StanSource",
    "StripeConnector",
]
