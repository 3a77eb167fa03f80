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
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.signing import Signer, verify_signature

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

PROTOCOL_VERSION: Literal[1] = 1
#: The largest message any parser here reads (a config downlink of 32 profile files at
#: 256 kB each fits); the broker's ``message_size_limit`` is the same.
MAX_MESSAGE_BYTES = 9 * 1024 * 1024
#: How deep JSON may nest in any message (payloads are a few levels deep by design).
MAX_DEPTH = 32
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


def _check_utc_timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.utcoffset() is None or parsed.utcoffset() != UTC.utcoffset(None):
        raise ValueError("timestamp must be in UTC (suffix Z or +00:00)")
    return value


def _check_uuid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"not a UUID: {value!r}") from exc
    return value


def _check_signature(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("signature is not base64") from exc
    if not raw:
        raise ValueError("signature is empty")
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    _json: bytes | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Fields only: the cached serialisation (a private attribute) is not part of the value.
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.to_json())

    def wire(self) -> dict[str, Any]:
        """The JSON object as it goes on the wire."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (pydantic's serializer); the receiver re-canonicalises to verify.

        Cached: the worker serialises in its thread and the transport reuses the bytes.
        """
        if self._json is None:
            self._json = self.model_dump_json().encode()
        return self._json


class Envelope(_Wire):
    """One uplink message; ``seq`` is the terminal's outbox row id (ordering is per destination)."""

    v: Literal[1] = PROTOCOL_VERSION
    message_id: str
    terminal_id: str = Field(pattern=_TERMINAL_ID.pattern)
    kind: str = Field(pattern=_KIND.pattern)
    seq: int = Field(ge=0)
    created_at: str
    idempotency_key: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any]
    key_version: int = Field(ge=0)
    signature: str

    _uuid = field_validator("message_id")(_check_uuid)
    _ts = field_validator("created_at")(_check_utc_timestamp)
    _sig = field_validator("signature")(_check_signature)


class Ack(_Wire):
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
        return None if value is None else _check_utc_timestamp(value)

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str | None) -> str | None:
        return None if value is None else _check_signature(value)

    @property
    def delivered(self) -> bool:
        return self.status in ("accepted", "duplicate")


class Downlink(_Wire):
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
    payload: dict[str, Any]
    signature: str

    _uuid = field_validator("message_id")(_check_uuid)
    _ts = field_validator("issued_at", "expires_at")(_check_utc_timestamp)
    _sig = field_validator("signature")(_check_signature)


class MessageBatch(BaseModel):
    """HTTPS request body: ``{"messages": [envelope, ...]}`` (kept raw; parse each one alone
    so that one malformed message is refused without refusing its neighbours)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[dict[str, Any]] = Field(max_length=1000)


class AckBatch(_Wire):
    """HTTPS response body: ``{"acks": [ack, ...]}``."""

    acks: list[Ack]


_M = TypeVar("_M", bound=_Wire)


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """The signed bytes: every field but ``signature``, sorted keys, no spaces, UTF-8."""
    unsigned = {key: value for key, value in obj.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def _signed(model: type[_M], unsigned: dict[str, Any], signer: Signer, what: str) -> _M:
    """``unsigned`` with its signature over the canonical JSON, as a checked ``model``;
    ``ValueError`` naming ``what`` when a field is out of the wire contract."""
    signature = _b64(signer.sign(canonical_json(unsigned)))
    try:
        return model.model_validate({**unsigned, "signature": signature})
    except ValidationError as exc:
        raise ValueError(f"cannot build {what}: {_summary(exc)}") from exc


def build_envelope(
    signer: Signer,
    *,
    terminal_id: str,
    kind: str,
    seq: int,
    idempotency_key: str,
    payload: Mapping[str, Any],
    message_id: str | None = None,
    created_at: str | None = None,
) -> Envelope:
    """A signed uplink envelope (``message_id`` defaults to a fresh uuid4)."""
    unsigned: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "message_id": message_id or str(uuid.uuid4()),
        "terminal_id": terminal_id,
        "kind": kind,
        "seq": seq,
        "created_at": created_at or utc_now_iso(),
        "idempotency_key": idempotency_key,
        "payload": dict(payload),
        "key_version": signer.key_version,
    }
    return _signed(Envelope, unsigned, signer, "an uplink envelope")


def build_downlink(
    signer: Signer,
    *,
    terminal_id: str,
    kind: str,
    seq: int,
    payload: Mapping[str, Any],
    ttl_s: float = 3600.0,
    message_id: str | None = None,
    issued_at: str | None = None,
    expires_at: str | None = None,
) -> Downlink:
    """A downlink for ``terminal_id`` signed by the platform's key, valid ``ttl_s`` seconds."""
    issued = issued_at or utc_now_iso()
    if expires_at is None:
        try:
            expiry = datetime.fromisoformat(issued) + timedelta(seconds=ttl_s)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"cannot build a downlink: issued_at/ttl: {exc}") from exc
        expires_at = expiry.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    unsigned: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "message_id": message_id or str(uuid.uuid4()),
        "terminal_id": terminal_id,
        "kind": kind,
        "seq": seq,
        "issued_at": issued,
        "expires_at": expires_at,
        "payload": dict(payload),
    }
    return _signed(Downlink, unsigned, signer, "a downlink")


def build_ack(
    signer: Signer,
    *,
    terminal_id: str,
    destination: str,
    message_id: str,
    seq: int,
    status: AckStatus,
    reason: str | None = None,
    issued_at: str | None = None,
) -> Ack:
    """An ack signed by the platform, for one message (``message_id`` sent as ``seq``) of
    one terminal's ``destination``, issued now (or at ``issued_at``)."""
    unsigned: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "message_id": message_id,
        "status": status,
        "reason": reason,
        "terminal_id": terminal_id,
        "destination": destination,
        "seq": seq,
        "issued_at": issued_at or utc_now_iso(),
    }
    return _signed(Ack, unsigned, signer, "an ack")


class AckVerifier:
    """Checks acks for one terminal and destination against the platform's public key.

    The key is loaded once (an ack arrives per uplink message). :meth:`check` raises
    :class:`SignatureError` for an ack that is unsigned, signed by another key, or bound to
    another terminal or destination; the caller drops it (and counts it).
    """

    def __init__(
        self, platform_public_key_pem: bytes | str, terminal_id: str, destination: str
    ) -> None:
        pem = (
            platform_public_key_pem.encode()
            if isinstance(platform_public_key_pem, str)
            else platform_public_key_pem
        )
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SignatureError(
                "the platform public key is not a readable PEM; check sync.toml "
                "platform_public_key", reason="bad key"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureError("the platform public key is not an EC key", reason="bad key")
        self._key = key
        self._ecdsa = ec.ECDSA(hashes.SHA256())  # built once: this runs once per ack
        self.terminal_id = terminal_id
        self.destination = destination

    @classmethod
    def for_link(cls, platform_public_key_pem: bytes | str | None, terminal_id: str,
                 destination: str) -> AckVerifier | None:
        """A link's verifier, or ``None`` when no platform key is configured (the link then
        refuses every ack, saying that the key is missing)."""
        if platform_public_key_pem is None:
            return None
        return cls(platform_public_key_pem, terminal_id, destination)

    def verify_signed(self, signed: bytes, signature_b64: str, *, what: str) -> None:
        """Check the platform's signature over ``signed``; :class:`SignatureError` if not."""
        try:
            self._key.verify(base64.b64decode(signature_b64), signed, self._ecdsa)
        except InvalidSignature as exc:
            raise SignatureError(f"{what} does not verify with the platform key",
                                 reason="bad signature") from exc
        except (ValueError, RecursionError) as exc:  # not DER; invalid Unicode; too deep
            raise SignatureError(f"{what} cannot be verified: {type(exc).__name__}",
                                 reason="malformed signature") from exc

    def check(self, ack: Ack) -> Ack:
        """The ack if it is the platform's, for us and this destination; else SignatureError."""
        if ack.signature is None:
            raise SignatureError(
                f"ack for {ack.message_id} is not signed", reason="unsigned ack"
            )
        if ack.terminal_id != self.terminal_id or ack.destination != self.destination:
            raise SignatureError(
                f"ack for {ack.message_id} is bound to {ack.terminal_id}/{ack.destination}, "
                f"not {self.terminal_id}/{self.destination}",
                reason="misdirected ack",
            )
        wire = ack.wire()
        try:
            signed = canonical_json(wire)
        except (ValueError, RecursionError) as exc:  # invalid Unicode; too deep
            raise SignatureError(
                f"ack for {ack.message_id} cannot be verified: {type(exc).__name__}",
                reason="malformed signature",
            ) from exc
        self.verify_signed(signed, wire["signature"], what=f"ack for {ack.message_id}")
        # The reason is kept (dead letter, logs): make it storable whatever it holds.
        if ack.reason is not None:
            clean = ack.reason[:500].encode("utf-8", "replace").decode("utf-8")
            if clean != ack.reason:
                return Ack.model_validate({**ack.wire(), "reason": clean})
        return ack


def _verify(obj: _Wire, public_key_pem: bytes | str) -> None:
    wire = obj.wire()
    signature = base64.b64decode(wire["signature"])
    try:
        signed = canonical_json(wire)
    except UnicodeEncodeError as exc:  # a lone surrogate, escaped in the JSON text
        raise SignatureError(
            "the message holds text that is not valid Unicode (a lone surrogate): nothing "
            "valid was signed", reason="invalid unicode"
        ) from exc
    except RecursionError as exc:
        raise SignatureError("the message is nested too deep", reason="nested too deep") from exc
    verify_signature(public_key_pem, signed, signature)


def verify_envelope(envelope: Envelope, public_key_pem: bytes | str) -> None:
    """Raise :class:`SignatureError` unless the terminal's key signed this envelope."""
    try:
        _verify(envelope, public_key_pem)
    except SignatureError as exc:
        raise SignatureError(
            f"uplink {envelope.message_id} from {envelope.terminal_id}: {exc.message}",
            message_id=envelope.message_id,
            terminal_id=envelope.terminal_id,
            reason=exc.fields.get("reason", "bad signature"),
        ) from exc


def verify_downlink(downlink: Downlink, public_key_pem: bytes | str) -> None:
    """Raise :class:`SignatureError` unless the platform's key signed this downlink."""
    try:
        _verify(downlink, public_key_pem)
    except SignatureError as exc:
        raise SignatureError(
            f"downlink {downlink.message_id} ({downlink.kind}): {exc.message}",
            message_id=downlink.message_id,
            reason=exc.fields.get("reason", "bad signature"),
        ) from exc


def _summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


def check_depth(value: Any, what: str, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`MessageFormatError` when JSON ``value`` nests deeper than ``limit``.

    Iterative, so a hostile depth is refused here instead of overflowing the recursion of
    the validator, the canonicaliser or a later ``repr``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise MessageFormatError(
                f"{what} is nested deeper than {limit} levels", reason="nested too deep"
            )
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _load(raw: bytes | str | Mapping[str, Any], what: str) -> Any:
    if isinstance(raw, Mapping):
        data = dict(raw)
        check_depth(data, what)
        return data
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageFormatError(
            f"{what} is larger than {MAX_MESSAGE_BYTES} bytes", reason="too large"
        )
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MessageFormatError(f"{what} is not JSON: {exc}", reason="not json") from exc
    except RecursionError as exc:
        raise MessageFormatError(f"{what} is nested too deep", reason="nested too deep") from exc
    check_depth(data, what)
    return data


def _parse(model: type[_M], raw: bytes | str | Mapping[str, Any], what: str) -> _M:
    data = _load(raw, what)
    if not isinstance(data, dict):
        raise MessageFormatError(f"{what} is not a JSON object", reason="not an object")
    try:
        model_obj = model.model_validate(data)
    except RecursionError as exc:
        raise MessageFormatError(f"{what} is nested too deep", reason="nested too deep") from exc
    except ValidationError as exc:
        reason = _summary(exc)
        raise MessageFormatError(
            f"{what} does not match the wire contract: {reason}",
            reason=reason,
            message_id=data.get("message_id") if isinstance(data.get("message_id"), str) else None,
        ) from exc
    return model_obj


def parse_envelope(raw: bytes | str | Mapping[str, Any]) -> Envelope:
    """Validate an uplink envelope; :class:`MessageFormatError` (with ``reason``) when wrong."""
    return _parse(Envelope, raw, "uplink envelope")


def parse_ack(raw: bytes | str | Mapping[str, Any]) -> Ack:
    return _parse(Ack, raw, "ack")


def parse_downlink(raw: bytes | str | Mapping[str, Any]) -> Downlink:
    return _parse(Downlink, raw, "downlink")


def _check_terminal_id(terminal_id: str) -> None:
    if not _TERMINAL_ID.match(terminal_id):
        raise ValueError(f"terminal id {terminal_id!r} is not usable in a topic or URL")


def uplink_topic(terminal_id: str, kind: str) -> str:
    _check_terminal_id(terminal_id)
    if not _KIND.match(kind):
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
