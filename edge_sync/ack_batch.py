"""Signed ack batches: one platform signature for every ack of a commit to one terminal.

The platform commits uplinks in batches (up to 500 per commit). Signing and verifying one
ECDSA signature per ack made the ack path the costliest part of a drain on both sides
(profiled: the terminal spent a third of its time verifying acks). A batch carries the acks
of one commit for one terminal and destination under a single signature::

    {"v": 1, "terminal_id": str, "destination": "platform", "issued_at": "<UTC time>",
     "acks": [{"message_id": str, "seq": int, "status": "accepted"|"duplicate"|"rejected",
               "reason": str|null}, ...],
     "signature": "<platform key, over the canonical JSON of the other fields>"}

It travels on the same topic as a single ack (``etika/v1/t/{terminal_id}/ack``); the
terminal tells them apart by the ``acks`` field and still takes single signed acks. Each
ack of a verified batch is bound, through the batch, to the terminal and destination it
names, exactly as a single signed ack is, and carries the batch's ``issued_at`` and its own
``seq`` (the envelope's, as the terminal sent it): the terminal holds them to what it sent
(:mod:`edge_sync.ack_binding`), so a batch captured from an earlier drain and replayed, or
one whose acks name other seqs, settles nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_sync.bounded_json import storable_text, validate_json
from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.messages import (
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    AckVerifier,
    canonical_json,
    utc_now_iso,
)
from edge_sync.signing import Signer
from edge_sync.wire import WireModel, check_signature, check_utc_timestamp, check_uuid

__all__ = ["MAX_ACKS_PER_BATCH", "AckItem", "SignedAckBatch", "build_ack_batch",
           "check_ack_batch", "is_ack_batch"]

#: The most acks one batch carries (a platform commit is at most 500 uplinks).
MAX_ACKS_PER_BATCH = 1000


class AckItem(BaseModel):
    """One ack inside a batch: what it answers and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str
    seq: int = Field(ge=0)
    status: AckStatus
    reason: str | None = None

    _uuid = field_validator("message_id")(check_uuid)


class SignedAckBatch(WireModel):
    """The acks of one platform commit for one terminal and destination, signed once."""

    v: Literal[1] = PROTOCOL_VERSION
    terminal_id: str
    destination: str
    issued_at: str
    acks: list[AckItem] = Field(min_length=1, max_length=MAX_ACKS_PER_BATCH)
    signature: str

    _sig = field_validator("signature")(check_signature)
    _ts = field_validator("issued_at")(check_utc_timestamp)


def is_ack_batch(raw: bytes) -> bool:
    """Whether ``raw`` claims to be a batch (a single ack has no ``acks`` field)."""
    return b'"acks"' in raw


def build_ack_batch(signer: Signer, *, terminal_id: str, destination: str,
                    acks: Sequence[Ack], issued_at: str | None = None) -> SignedAckBatch:
    """One signature over ``acks`` (their message id, seq, status and reason) for that
    terminal, issued now (or at ``issued_at``). Each ack must carry the envelope's seq."""
    if any(a.seq is None for a in acks):
        raise ValueError("cannot build an ack batch: every ack must carry its message's seq")
    unsigned = {
        "v": PROTOCOL_VERSION,
        "terminal_id": terminal_id,
        "destination": destination,
        "issued_at": issued_at or utc_now_iso(),
        # A reason may quote what the terminal sent: storable and signable whatever it is.
        "acks": [{"message_id": a.message_id, "seq": a.seq, "status": a.status,
                  "reason": None if a.reason is None else storable_text(a.reason)}
                 for a in acks],
    }
    signature = base64.b64encode(signer.sign(canonical_json(unsigned))).decode("ascii")
    try:
        return SignedAckBatch.model_validate({**unsigned, "signature": signature})
    except ValidationError as exc:
        raise ValueError(f"cannot build an ack batch: {exc.errors()[0]['msg']}") from exc


def check_ack_batch(verifier: AckVerifier, raw: bytes) -> list[Ack]:
    """The acks of a batch that verifies with the platform key and is bound to the
    verifier's terminal and destination; :class:`SignatureError` or
    :class:`MessageFormatError` otherwise (the caller drops the whole batch)."""
    batch = validate_json(SignedAckBatch, raw, "ack batch")
    if batch.terminal_id != verifier.terminal_id or batch.destination != verifier.destination:
        raise SignatureError(
            f"ack batch is bound to {batch.terminal_id}/{batch.destination}, not "
            f"{verifier.terminal_id}/{verifier.destination}", reason="misdirected ack")
    wire = batch.wire()
    try:
        signed = canonical_json(wire)
    except MessageFormatError as exc:  # a lone surrogate: nothing valid was signed
        raise SignatureError(f"ack batch cannot be verified: {exc.message}",
                             reason="malformed signature") from exc
    verifier.verify_signed(signed, batch.signature, what=f"ack batch of {len(batch.acks)}")
    # One ack per message: a commit that met an uplink twice (an MQTT redelivery) acks it
    # twice, and settling both would run the late-ack path twice. The first one stands.
    first: dict[str, AckItem] = {}
    for item in batch.acks:
        first.setdefault(item.message_id, item)
    items = list(first.values())
    return [
        Ack(message_id=item.message_id, status=item.status,
            # The reason is kept (dead letter, logs): storable whatever it holds.
            reason=None if item.reason is None else storable_text(item.reason),
            terminal_id=batch.terminal_id, destination=batch.destination, seq=item.seq,
            issued_at=batch.issued_at)
        for item in items
    ]
