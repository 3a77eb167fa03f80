"""Errors of the links to the outside (outbox, MQTT, HTTPS, PSP connectors, platform).

One leaf per distinct recovery action::

    EtikaError
    └── SyncError                  root of the sync and connector errors
        ├── MessageFormatError     a message does not match the wire contract: refuse it, say why
        ├── SignatureError         a signature does not verify: refuse the message, report up
        ├── TransportError         the link is down or failed mid-send: retry later / fall back
        │   └── AckTimeoutError    sent, no acknowledgement in time: resend (receiver dedups)
        ├── DownlinkRejectedError  a downlink was refused (bad profile, unknown command): report up
        └── PopError               the PoP back end (etika-pop-consensus) link
            ├── PopUnavailableError    down, timed out, 5xx or garbled answer: retry later
            ├── PopRejectedError       refused the record (``reason``): do not resend as is
            ├── PopRecordError         a PoP record or answer is malformed (also ValueError)
            └── PopUnknownRecordError  has no such record (status/cancel): submit it again

Leaves carry structured fields (``message_id``, ``topic``, ``url``, ``reason``) for logs and
tests. Library exceptions (aiomqtt, httpx, pydantic, cryptography) are mapped at the edge
that calls them with ``raise … from exc``.
"""

from __future__ import annotations

from typing import Any

from etika_errors import EtikaError

__all__ = [
    "AckTimeoutError",
    "DownlinkRejectedError",
    "MessageFormatError",
    "PopError",
    "PopRecordError",
    "PopRejectedError",
    "PopUnavailableError",
    "PopUnknownRecordError",
    "SignatureError",
    "SyncError",
    "TransportError",
]


class SyncError(EtikaError):
    """Root of the sync and connector errors."""


class MessageFormatError(SyncError):
    """A message (envelope, ack, downlink) does not match the wire contract."""


class SignatureError(SyncError):
    """A signature is malformed or does not verify against the expected public key."""


class TransportError(SyncError):
    """The link (MQTT broker, HTTPS endpoint) is unavailable or failed while sending."""


class AckTimeoutError(TransportError):
    """A message was sent but its acknowledgement did not arrive in time."""


class DownlinkRejectedError(SyncError):
    """A downlink message was refused; ``reason`` says why (it is reported to the platform)."""


class PopError(SyncError):
    """Root of the PoP back-end client's errors (:mod:`edge_sync.pop`)."""


class PopUnavailableError(PopError):
    """The PoP back end cannot be reached or gave no usable answer: the record's fate is
    unknown, so it is sent again later under the same record id (the back end dedups)."""


class PopRejectedError(PopError):
    """The PoP back end refused the record or request; ``reason`` says why."""

    def __init__(self, message: str, *, reason: str, **fields: Any) -> None:
        super().__init__(message, reason=reason, **fields)
        self.reason = reason


class PopUnknownRecordError(PopError):
    """The PoP back end holds no record with this id (it never arrived)."""


class PopRecordError(PopError, ValueError):
    """A PoP record, request or answer does not match the PoP wire contract."""
