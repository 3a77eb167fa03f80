"""Signing and verifying the sync wire objects (protocol version 1).

Every signature covers the *canonical JSON* of all the other fields of its object
(:func:`canonical_json`). The terminal signs its uplink envelopes with its key
(:func:`build_envelope`); the platform signs downlinks and acks with its own
(:func:`build_downlink`, :func:`build_ack`). The receiving side verifies
(:func:`verify_envelope`, :func:`verify_downlink`, :class:`AckVerifier`). The shapes are in
:mod:`edge_sync.wire`; :mod:`edge_sync.messages` describes the contract and re-exports both.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from edge_sync.bounded_json import canonical_json, storable_text
from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.json_types import JsonObject, JsonValue
from edge_sync.signing import Signer, verify_signature
from edge_sync.wire import (
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    Downlink,
    Envelope,
    WireModel,
    utc_now_iso,
    validation_summary,
)

__all__ = [
    "AckVerifier",
    "build_ack",
    "build_downlink",
    "build_envelope",
    "canonical_json",
    "verify_downlink",
    "verify_envelope",
]

_M = TypeVar("_M", bound=WireModel)


def _b64(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def _signed(model: type[_M], unsigned: Mapping[str, JsonValue], signer: Signer, what: str) -> _M:
    """``unsigned`` with its signature over the canonical JSON, as a checked ``model``;
    ``ValueError`` naming ``what`` when a field is out of the wire contract (or holds what
    canonical JSON cannot carry: a lone surrogate, ``NaN``)."""
    try:
        signature = _b64(signer.sign(canonical_json(unsigned)))
    except MessageFormatError as exc:
        raise ValueError(f"cannot build {what}: {exc.message}") from exc
    try:
        return model.model_validate({**unsigned, "signature": signature})
    except ValidationError as exc:
        raise ValueError(f"cannot build {what}: {validation_summary(exc)}") from exc


def build_envelope(
    signer: Signer,
    *,
    terminal_id: str,
    kind: str,
    seq: int,
    idempotency_key: str,
    payload: JsonObject,
    message_id: str | None = None,
    created_at: str | None = None,
) -> Envelope:
    """A signed uplink envelope (``message_id`` defaults to a fresh uuid4)."""
    unsigned: dict[str, JsonValue] = {
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
    payload: JsonObject,
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
    unsigned: dict[str, JsonValue] = {
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
    unsigned: dict[str, JsonValue] = {
        "v": PROTOCOL_VERSION,
        "message_id": message_id,
        "status": status,
        # The reason may quote what the terminal sent: storable and signable whatever it is.
        "reason": None if reason is None else storable_text(reason),
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
        except ValueError as exc:  # the signature is not base64 DER
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
        except MessageFormatError as exc:  # a lone surrogate: nothing valid was signed
            raise SignatureError(
                f"ack for {storable_text(ack.message_id, 64)} cannot be verified: "
                f"{exc.message}", reason="malformed signature",
            ) from exc
        self.verify_signed(signed, ack.signature, what=f"ack for {ack.message_id}")
        # The reason is kept (dead letter, logs): make it storable whatever it holds.
        if ack.reason is not None:
            clean = storable_text(ack.reason)
            if clean != ack.reason:
                return Ack.model_validate({**ack.wire(), "reason": clean})
        return ack


def _verify(obj: Envelope | Downlink, public_key_pem: bytes | str) -> None:
    signature = base64.b64decode(obj.signature)
    try:
        signed = canonical_json(obj.wire())
    except MessageFormatError as exc:  # a lone surrogate, NaN, too deep: nothing was signed
        raise SignatureError(exc.message, reason=exc.fields.get("reason", "not json")) from exc
    except UnicodeEncodeError as exc:
        # A lone surrogate in an object *key*: pydantic's serializer refuses it before the
        # canonicaliser sees it (#17 item 8). Nothing valid was signed over it either.
        raise SignatureError(
            "the message holds text that is not valid Unicode (a lone surrogate): nothing "
            "valid was signed", reason="invalid unicode"
        ) from exc
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
