"""The sync wire contract's shapes (protocol version 1): limits, the pydantic models of
every wire object, their parsing from untrusted bytes, and the MQTT topics and HTTPS paths.

The contract itself (fields, topics, what each signature covers) is described in
:mod:`edge_sync.messages`, which re-exports the public names of this module and of
:mod:`edge_sync.wire_signing` (building signed objects and verifying them).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from edge_sync.bounded_json import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    check_depth,
    decode_json,
    validation_summary,
)
from edge_sync.errors import MessageFormatError
from edge_sync.json_types import JsonObject, JsonValue

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
    "Downlink",
    "DownlinkKind",
    "Envelope",
    "MessageBatch",
    "WireModel",
    "WireObject",
    "ack_topic",
    "check_depth",
    "check_signature",
    "check_utc_timestamp",
    "check_uuid",
    "downlink_topic",
    "downlink_wildcard",
    "messages_path",
    "parse_ack",
    "parse_downlink",
    "parse_envelope",
    "parse_topic",
    "uplink_topic",
    "utc_now_iso",
    "validation_summary",
]

PROTOCOL_VERSION: Literal[1] = 1
AckStatus = Literal["accepted", "duplicate", "rejected"]
ACK_STATUSES: tuple[str, ...] = ("accepted", "duplicate", "rejected")
DownlinkKind = Literal["config", "blacklist", "crl", "fx", "cmd"]
DOWNLINK_KINDS: tuple[str, ...] = ("config", "blacklist", "crl", "fx", "cmd")
#: The envelope fields that make a message what it is. A resend of the same outbox row
#: repeats them exactly; its signature differs (ECDSA is randomised) and so may its
#: ``key_version`` (the terminal rotated its key in between).
CONTENT_FIELDS = ("terminal_id", "kind", "seq", "idempotency_key", "created_at", "payload")
#: The ``rejected`` reason for a verified message that reuses another one's ``message_id``
#: with other content: never ``duplicate``, the terminal would drop it as delivered.
REUSED_ID_REASON = "message_id already used by a different message; nothing stored"

#: The broker's terminal listener puts this in front of every terminal topic
#: (edge_sync/broker/mosquitto.conf ``mount_point``; the platform's names for the topics are
#: in :mod:`edge_sync.platform.topics`). Mosquitto 2.0.11 also leaves it on what it delivers
#: to terminals (eclipse-mosquitto/mosquitto#2244, fixed in 2.0.12), so a terminal takes it
#: off an incoming topic before parsing it.
TERMINALS_MOUNT_POINT = "terminals/"

# Identifiers end up inside MQTT topics and URLs: no '/', '+', '#', spaces or control chars.
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds and a ``Z`` (``2026-11-22T00:13:12.123Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_utc_timestamp(value: str) -> str:
    """``value`` if it is an ISO 8601 timestamp in UTC; ``ValueError`` (a pydantic field
    validator) if not."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.utcoffset() is None or parsed.utcoffset() != UTC.utcoffset(None):
        raise ValueError("timestamp must be in UTC (suffix Z or +00:00)")
    return value


def check_uuid(value: str) -> str:
    """``value`` if it is a UUID; ``ValueError`` (a pydantic field validator) if not."""
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"not a UUID: {value!r}") from exc
    return value


def check_signature(value: str) -> str:
    """``value`` if it is non-empty base64; ``ValueError`` (a pydantic field validator) if not."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("signature is not base64") from exc
    if not raw:
        raise ValueError("signature is empty")
    return value


# A JSON object on the wire (a payload; a raw message of an HTTPS batch): mypy sees
# JsonObject; pydantic validates it as ``dict[str, Any]``, as before the alias (an object with
# string keys, kept as it is). It is JSON by construction (parsed from JSON text after
# check_depth, or built from a JsonObject), so checking every value against the recursive
# JsonValue union would cost a pass over megabytes of config downlink and could refuse
# nothing json.loads produced; pydantic also cannot resolve that string-defined recursive
# alias without a rebuild.
if TYPE_CHECKING:
    WireObject: TypeAlias = JsonObject
else:
    WireObject = dict[str, Any]


class WireModel(BaseModel):
    """A signed wire object: frozen, no extra fields, compared by its fields, serialised once."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _json: bytes | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Fields only: the cached serialisation (a private attribute) is not part of the value.
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.to_json())

    def wire(self) -> dict[str, JsonValue]:
        """The JSON object as it goes on the wire."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (pydantic's serializer); the receiver re-canonicalises to verify.

        Cached: the worker serialises in its thread and the transport reuses the bytes.
        """
        if self._json is None:
            self._json = self.model_dump_json().encode()
        return self._json


class Envelope(WireModel):
    """One uplink message; ``seq`` is the terminal's outbox row id (ordering is per destination)."""

    v: Literal[1] = PROTOCOL_VERSION
    message_id: str
    terminal_id: str = Field(pattern=_TERMINAL_ID.pattern)
    kind: str = Field(pattern=_KIND.pattern)
    seq: int = Field(ge=0)
    created_at: str
    idempotency_key: str = Field(min_length=1, max_length=200)
    payload: WireObject
    key_version: int = Field(ge=0)
    signature: str

    _uuid = field_validator("message_id")(check_uuid)
    _ts = field_validator("created_at")(check_utc_timestamp)
    _sig = field_validator("signature")(check_signature)


class Ack(WireModel):
    """The receiver's answer to one uplink message (``duplicate`` counts as delivered).

    Over the wire it is signed by the platform and bound to ``terminal_id`` and
    ``destination`` (:func:`build_ack`, :class:`AckVerifier`).
    """

    v: Literal[1] = PROTOCOL_VERSION
    message_id: str
    status: AckStatus
    reason: str | None = None
    terminal_id: str | None = None
    destination: str | None = None
    #: The acked envelope's ``seq`` as the terminal sent it under ``message_id``.
    seq: int | None = Field(default=None, ge=0)
    #: When the platform issued the ack (its clock; see :mod:`edge_sync.ack_binding`).
    issued_at: str | None = None
    signature: str | None = None

    @field_validator("issued_at")
    @classmethod
    def _issued(cls, value: str | None) -> str | None:
        return None if value is None else check_utc_timestamp(value)

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str | None) -> str | None:
        return None if value is None else check_signature(value)

    @property
    def delivered(self) -> bool:
        return self.status in ("accepted", "duplicate")


class Downlink(WireModel):
    """One platform → terminal message, signed by the platform's key, for one terminal."""

    v: Literal[1] = PROTOCOL_VERSION
    message_id: str
    terminal_id: str = Field(pattern=_TERMINAL_ID.pattern)
    kind: DownlinkKind
    #: Per terminal and kind, strictly increasing: the terminal applies only a newer one.
    seq: int = Field(ge=1, lt=2**63)
    issued_at: str
    #: After this instant the terminal refuses it (a retained config waits for its terminal).
    expires_at: str
    payload: WireObject
    signature: str

    _uuid = field_validator("message_id")(check_uuid)
    _ts = field_validator("issued_at", "expires_at")(check_utc_timestamp)
    _sig = field_validator("signature")(check_signature)


class MessageBatch(BaseModel):
    """HTTPS request body: ``{"messages": [envelope, ...]}`` (kept raw; parse each one alone
    so that one malformed message is refused without refusing its neighbours)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[WireObject] = Field(max_length=1000)


class AckBatch(WireModel):
    """HTTPS response body: ``{"acks": [ack, ...]}``."""

    acks: list[Ack]


_M = TypeVar("_M", bound=WireModel)


def _load(raw: bytes | str | JsonObject, what: str) -> JsonValue:
    if isinstance(raw, Mapping):
        data = dict(raw)
        check_depth(data, what)
        return data
    return decode_json(raw, what)  # size, syntax and depth bounded (edge_sync.bounded_json)


def _parse(model: type[_M], raw: bytes | str | JsonObject, what: str) -> _M:
    data = _load(raw, what)
    if not isinstance(data, dict):
        raise MessageFormatError(f"{what} is not a JSON object", reason="not an object")
    try:
        model_obj = model.model_validate(data)  # depth already bounded by _load
    except ValidationError as exc:
        reason = validation_summary(exc)
        raise MessageFormatError(
            f"{what} does not match the wire contract: {reason}",
            reason=reason,
            message_id=data.get("message_id") if isinstance(data.get("message_id"), str) else None,
        ) from exc
    return model_obj


def parse_envelope(raw: bytes | str | JsonObject) -> Envelope:
    """Validate an uplink envelope; :class:`MessageFormatError` (with ``reason``) when wrong."""
    return _parse(Envelope, raw, "uplink envelope")


def parse_ack(raw: bytes | str | JsonObject) -> Ack:
    return _parse(Ack, raw, "ack")


def parse_downlink(raw: bytes | str | JsonObject) -> Downlink:
    return _parse(Downlink, raw, "downlink")


def _check_terminal_id(terminal_id: str) -> None:
    if not _TERMINAL_ID.fullmatch(terminal_id):
        raise ValueError(f"terminal id {terminal_id!r} is not usable in a topic or URL")


def uplink_topic(terminal_id: str, kind: str) -> str:
    _check_terminal_id(terminal_id)
    if not _KIND.fullmatch(kind):
        raise ValueError(f"message kind {kind!r} is not usable in a topic")
    return f"etika/v1/t/{terminal_id}/up/{kind}"


def ack_topic(terminal_id: str) -> str:
    _check_terminal_id(terminal_id)
    return f"etika/v1/t/{terminal_id}/ack"


def downlink_topic(terminal_id: str, kind: str) -> str:
    _check_terminal_id(terminal_id)
    if kind not in DOWNLINK_KINDS:
        raise ValueError(f"downlink kind {kind!r} is not one of {', '.join(DOWNLINK_KINDS)}")
    return f"etika/v1/t/{terminal_id}/down/{kind}"


def downlink_wildcard(terminal_id: str) -> str:
    _check_terminal_id(terminal_id)
    return f"etika/v1/t/{terminal_id}/down/+"


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """``(terminal_id, direction, kind)`` of an ``etika/v1/t/...`` topic.

    ``direction`` is ``up``, ``down`` or ``ack`` (``kind`` is ``None`` for ``ack``).
    """
    parts = topic.split("/")
    if len(parts) >= 5 and parts[:3] == ["etika", "v1", "t"]:
        terminal_id, direction = parts[3], parts[4]
        if direction == "ack" and len(parts) == 5:
            return terminal_id, "ack", None
        if direction in ("up", "down") and len(parts) == 6:
            return terminal_id, direction, parts[5]
    raise MessageFormatError(f"not an Étika v1 topic: {topic!r}", topic=topic)


def messages_path(terminal_id: str) -> str:
    """Path of the HTTPS fallback endpoint for one terminal."""
    _check_terminal_id(terminal_id)
    return f"/v1/terminals/{terminal_id}/messages"
