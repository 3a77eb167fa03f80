"""The sync wire contract shared by the terminal and the platform (protocol version 1).

Uplink envelope (terminal → platform), on MQTT topic ``etika/v1/t/{terminal_id}/up/{kind}`` or
in an HTTPS batch ``POST /v1/terminals/{terminal_id}/messages`` ``{"messages": [...]}``::

    {"v": 1, "message_id": "<uuid4>", "terminal_id": str, "kind": str, "seq": int,
     "created_at": "<ISO 8601 UTC>", "idempotency_key": str, "payload": {...},
     "key_version": int, "signature": "<base64 DER ECDSA P-256/SHA-256>"}

Ack (platform → terminal, topic ``etika/v1/t/{terminal_id}/ack`` and HTTPS ``{"acks": [...]}``)::

    {"v": 1, "message_id": str, "status": "accepted"|"duplicate"|"rejected", "reason": str|null,
     "terminal_id": str, "destination": "platform", "signature": "<platform key>"}

Over MQTT the platform answers a commit with one signed batch per terminal instead
(:mod:`edge_sync.ack_batch`). The platform signs every ack; the terminal settles a row only
with an ack that verifies,
names it and the row's destination, and answers a message it has in flight there. (Acks
that never leave the process — a PSP connector's — carry no signature.)

Downlink (platform → terminal, ``etika/v1/t/{terminal_id}/down/{config|blacklist|crl|fx|cmd}``)::

    {"v": 1, "message_id", "terminal_id", "kind", "seq", "issued_at", "expires_at",
     "payload", "signature"}

``terminal_id``, ``seq`` (per terminal and kind, strictly increasing) and ``expires_at`` are
inside the signed object, so a downlink cannot be replayed to another terminal, replayed
later, or reordered behind a newer one of its kind.

Every signature covers the *canonical JSON* of all the other fields of its object
(:func:`canonical_json`): ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8. Field types are kept to what JSON carries as is (str,
int, dict) so that ``model_dump(mode="json")`` gives back exactly the object that was signed.

The code is in two modules, one job each, whose public names this module re-exports (import
from here): :mod:`edge_sync.wire` (limits, the models, parsing untrusted bytes, topics and
paths) and :mod:`edge_sync.wire_signing` (building signed objects, verifying them).
"""

from __future__ import annotations

from edge_sync.wire import (
    ACK_STATUSES,
    CONTENT_FIELDS,
    DOWNLINK_KINDS,
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    REUSED_ID_REASON,
    TERMINALS_MOUNT_POINT,
    Ack,
    AckBatch,
    AckStatus,
    Downlink,
    DownlinkKind,
    Envelope,
    MessageBatch,
    ack_topic,
    check_depth,
    downlink_topic,
    downlink_wildcard,
    messages_path,
    parse_ack,
    parse_downlink,
    parse_envelope,
    parse_topic,
    uplink_topic,
    utc_now_iso,
)
from edge_sync.wire_signing import (
    AckVerifier,
    build_ack,
    build_downlink,
    build_envelope,
    canonical_json,
    verify_downlink,
    verify_envelope,
)

__all__ = [
    "ACK_STATUSES",
    "CONTENT_FIELDS",
    "DOWNLINK_KINDS",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "REUSED_ID_REASON",
    "TERMINALS_MOUNT_POINT",
    "Ack",
    "AckBatch",
    "AckStatus",
    "AckVerifier",
    "Downlink",
    "DownlinkKind",
    "Envelope",
    "MessageBatch",
    "ack_topic",
    "build_ack",
    "build_downlink",
    "build_envelope",
    "canonical_json",
    "check_depth",
    "downlink_topic",
    "downlink_wildcard",
    "messages_path",
    "parse_ack",
    "parse_downlink",
    "parse_envelope",
    "parse_topic",
    "uplink_topic",
    "utc_now_iso",
    "verify_downlink",
    "verify_envelope",
]
