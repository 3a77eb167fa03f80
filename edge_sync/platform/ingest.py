"""Uplink ingestion: parse, check the channel, verify the signature, book, commit, then ack.

Both entry points (the MQTT consumer and the HTTPS endpoint) hand :meth:`Ingestor.ingest`
a batch of raw messages with the channel they came on (the terminal id of the topic or URL
path, and the topic's kind). Every message gets at most one :class:`~edge_sync.messages.Ack`:

* ``rejected`` (with a reason the terminal can log) when it verifies but carries a payload
  the platform cannot book (see :mod:`edge_sync.platform.records`) or reuses a message id;
* none at all (*refused*) when its signature could not be checked: not JSON, truncated,
  not the envelope schema, another terminal or kind than its channel, a terminal nobody
  registered, a bad signature — anyone could have sent it, so it must not make the
  terminal drop the message whose id it quotes; it is logged (rate-limited) and counted;
* none at all (*held*) when a registered terminal signs with a key version not registered
  yet — after a key rotation — so that it sends the message again later;
* ``accepted`` when this batch's commit stored it, ``duplicate`` when an earlier commit had.

What a verified envelope books (its payload's fields, checked) is
:mod:`edge_sync.platform.booking`'s; this module verifies, commits and acks around it.

Every ack is signed with the platform key and bound to the terminal and the ``platform``
destination (:func:`edge_sync.messages.build_ack`).

The acks are returned only after :meth:`PlatformStorage.ingest` committed: a crash before
that leaves the message unacknowledged, the broker or the terminal sends it again, and the
``message_id`` primary key makes the second delivery a ``duplicate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_sync.errors import MessageFormatError
from edge_sync.messages import (
    MAX_MESSAGE_BYTES,
    REUSED_ID_REASON,
    Ack,
    AckStatus,
    Envelope,
    build_ack,
    canonical_json,
    parse_envelope,
    utc_now_iso,
)
from edge_sync.platform.booking import KEY_VERSION_END, book_payload, payload_int
from edge_sync.platform.errors import (
    BadSignatureError,
    KeyNotRegisteredError,
    MalformedUplinkError,
    StorageError,
    UnknownTerminalError,
    UnstorableDataError,
    UplinkRejectedError,
)
from edge_sync.platform.records import (
    HELD_PREFIX,
    KeyRecord,
    Rejection,
    StoredCheckpoint,
    Uplink,
)
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import Signer

__all__ = ["ACK_DESTINATION", "OUTCOMES", "Ingestor", "RawUplink", "book_payload"]

#: What can become of an uplink (``held``: no ack, the terminal sends it again;
#: ``refused``: unverified, no ack; ``suppressed``: refused and not even logged, over the
#: rate limit).
OUTCOMES = ("accepted", "duplicate", "rejected", "held", "refused", "suppressed")
#: The outbox destination of the terminal that platform acks settle.
ACK_DESTINATION = "platform"
#: Unverified refusals written to the rejection log per window, per channel and in all.
_REFUSAL_WINDOW_S = 60.0
_REFUSALS_PER_CHANNEL = 20
_REFUSALS_PER_WINDOW = 200

log = logging.getLogger("etika.platform.ingest")

# A truncated body still often names its message id near the start: quote it back so the
# terminal knows which outbox row was refused.
_MESSAGE_ID = re.compile(rb'"message_id"\s*:\s*"([0-9A-Za-z-]{1,64})"')
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
#: The uplink kind of a signed journal checkpoint (``terminal.store.checkpoints``).
CHECKPOINT_KIND = "journal_checkpoint"
_KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class RawUplink:
    """One message as it arrived: the channel's terminal id (topic or URL) and its body."""

    terminal_id: str
    body: bytes | Mapping[str, Any]
    #: The ``{kind}`` of an MQTT topic; ``None`` over HTTPS (the envelope says it).
    topic_kind: str | None = None


def _message_id_of(body: bytes | Mapping[str, Any]) -> str:
    if isinstance(body, Mapping):
        value = body.get("message_id")
        return value if isinstance(value, str) else ""
    match = _MESSAGE_ID.search(body[:4096])
    return match.group(1).decode("ascii") if match else ""


def _printable(text: str) -> str:
    """A channel's terminal id as the rejection log can always store it."""
    return text[:64].encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")


def _instant(value: str) -> dt.datetime:
    """An ISO 8601 UTC timestamp of ours (``…Z``) as an aware datetime."""
    return dt.datetime.fromisoformat(value)




class Ingestor:
    """Turns raw uplinks into committed rows and acks (blocking: call it from a thread)."""

    def __init__(
        self,
        storage: PlatformStorage,
        clock: Callable[[], str] = utc_now_iso,
        *,
        signer: Signer | None = None,
        key_grace_s: float = 7 * 86400.0,
    ) -> None:
        self.storage = storage
        self._clock = clock
        #: How long a terminal's previous key still verifies after it announced the next.
        self._key_grace_s = key_grace_s
        #: The platform key every ack is signed with (``None``: unsigned, tests only).
        self._signer = signer
        self._window_start = time.monotonic()
        self._window_counts: dict[str, int] = {}
        self._keys: dict[
            tuple[str, int], tuple[float, tuple[KeyRecord, ec.EllipticCurvePublicKey]]
        ] = {}
        #: Messages by outcome (accepted, duplicate, rejected, held) and commit timings,
        #: across both entry points; read by the metrics endpoint.
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.commits = 0
        self.commit_seconds = 0.0
        self._counts_lock = threading.Lock()

    def _public_key(self, terminal_id: str, key_version: int, *, fresh: bool = False
                    ) -> ec.EllipticCurvePublicKey:
        # Keys are cached briefly; a signature that fails with a cached key is checked again
        # with the registered one (``fresh``), so a re-registered key takes effect at once.
        # A revocation takes effect within the cache time; retirement is checked on every
        # message against the cached record.
        cached = self._keys.get((terminal_id, key_version))
        now = time.monotonic()
        if fresh or cached is None or now - cached[0] >= _KEY_CACHE_SECONDS:
            cached = (now, self._load_key(terminal_id, key_version))
            self._keys[(terminal_id, key_version)] = cached
        record, key = cached[1]
        if record.revoked_at is not None:
            raise UnknownTerminalError(
                f"key version {key_version} of {terminal_id} was revoked at {record.revoked_at}",
                terminal_id=terminal_id, key_version=key_version,
            )
        if record.retire_after is not None and _instant(self._clock()) > _instant(
            record.retire_after
        ):
            raise UnknownTerminalError(
                f"key version {key_version} of {terminal_id} was retired at "
                f"{record.retire_after} (a newer version replaced it)",
                terminal_id=terminal_id, key_version=key_version,
            )
        return key

    def _load_key(
        self, terminal_id: str, key_version: int
    ) -> tuple[KeyRecord, ec.EllipticCurvePublicKey]:
        record = self.storage.key_record(terminal_id, key_version)
        if record is None and self.storage.key_versions(terminal_id):
            raise KeyNotRegisteredError(
                f"key version {key_version} of {terminal_id} is not registered yet (rotated "
                f"key?): held without ack; register it with etika platform register-terminal "
                f"--terminal-id {terminal_id} --key-version {key_version} --public-key FILE",
                terminal_id=terminal_id,
                key_version=key_version,
            )
        if record is None:
            raise UnknownTerminalError(
                f"unknown terminal {terminal_id} (key version {key_version}): "
                "no public key registered",
                terminal_id=terminal_id,
                key_version=key_version,
            )
        try:
            key = serialization.load_pem_public_key(record.public_key_pem.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UnknownTerminalError(
                f"the registered key of {terminal_id} is unreadable; register it again",
                terminal_id=terminal_id,
            ) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise UnknownTerminalError(f"the registered key of {terminal_id} is not an EC key")
        return record, key

    def _checkpoint(self, envelope: Envelope, uplink: Uplink) -> Uplink:
        """A signed journal checkpoint: its own signature verifies with the terminal's key.
        Whether it links to the checkpoints around it (:mod:`.checkpoint_chain`: in any
        arrival order) is the storage's to decide, inside the commit (two workers may hold
        conflicting ones at once); one that does not is refused there, and logged here."""
        if envelope.kind != CHECKPOINT_KIND:
            return uplink
        payload = envelope.payload
        entry_id = payload_int(payload, "entry_id", minimum=0)
        prev_id = payload_int(payload, "prev_entry_id", minimum=0)
        version = payload_int(payload, "key_version", minimum=0)
        entry_hash, prev_hash = payload.get("entry_hash"), payload.get("prev_entry_hash")
        signature, signed_at = payload.get("signature"), payload.get("signed_at")
        if not (isinstance(entry_hash, str) and _HEX64.match(entry_hash)):
            raise MalformedUplinkError("payload.entry_hash must be 64 hex digits")
        if prev_hash is not None and not isinstance(prev_hash, str):
            raise MalformedUplinkError("payload.prev_entry_hash must be a string or null")
        if not isinstance(signature, str) or not isinstance(signed_at, str):
            raise MalformedUplinkError("payload.signature and payload.signed_at must be strings")
        if payload.get("terminal_id") != envelope.terminal_id or version >= KEY_VERSION_END:
            raise MalformedUplinkError("the checkpoint names another terminal or key version")
        key = self._public_key(envelope.terminal_id, version)
        try:
            key.verify(base64.b64decode(signature), canonical_json(payload),
                       ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, MessageFormatError) as exc:
            raise MalformedUplinkError("journal checkpoint: signature does not verify") from exc
        return replace(uplink, checkpoint=StoredCheckpoint(
            entry_id, entry_hash, prev_id, prev_hash, signed_at, envelope.message_id))

    def _rotation(self, envelope: Envelope, uplink: Uplink) -> Uplink:
        """A key announcement is taken only from the terminal's current key and only for a
        version never registered; the versions before it retire after the grace period."""
        if uplink.new_key is None:
            return uplink
        version = uplink.new_key[0]
        if self.storage.key_record(envelope.terminal_id, version) is not None:
            raise MalformedUplinkError(
                f"key version {version} of {envelope.terminal_id} is already registered: "
                "an announcement never replaces a key (revoke it with etika platform "
                "revoke-key if it is not the terminal's)"
            )
        records = [self.storage.key_record(envelope.terminal_id, v)
                   for v in self.storage.key_versions(envelope.terminal_id)]
        live = [r.key_version for r in records
                if r is not None and r.revoked_at is None and r.retire_after is None]
        current = max(live, default=None)
        if envelope.key_version != current:
            raise MalformedUplinkError(
                f"key announcements must be signed with the current key (version {current}), "
                f"not version {envelope.key_version}"
            )
        retire = _instant(self._clock()) + dt.timedelta(seconds=self._key_grace_s)
        return replace(
            uplink,
            retire_older_after=retire.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )

    def check(self, raw: RawUplink) -> Uplink:
        """Parse, check the channel, verify and book one message; :class:`UplinkRejectedError`."""
        return book_payload(self.verified(raw))

    def verified(self, raw: RawUplink) -> Envelope:
        """The envelope once parsed, matched to its channel and verified: else
        :class:`UplinkRejectedError` (nothing of it can be trusted, not even its message id)."""
        # Parsed once here so that the signature is checked over the object *as sent*: the
        # model coerces ("1" → 1) and fills defaults (v), and a message the terminal did not
        # sign byte for byte must not verify just because it means the same.
        if isinstance(raw.body, Mapping):
            data: Any = dict(raw.body)
        else:
            if len(raw.body) > MAX_MESSAGE_BYTES:
                raise MalformedUplinkError(
                    f"malformed envelope: larger than {MAX_MESSAGE_BYTES} bytes")
            try:
                data = json.loads(raw.body)
            except ValueError as exc:  # not JSON, not UTF-8, an integer past the digit limit
                raise MalformedUplinkError("malformed envelope: not json") from exc
            except RecursionError as exc:
                raise MalformedUplinkError("malformed envelope: nested too deep") from exc
        if not isinstance(data, dict):
            raise MalformedUplinkError("malformed envelope: not an object")
        try:
            envelope = parse_envelope(data)
        except MessageFormatError as exc:
            raise MalformedUplinkError(
                f"malformed envelope: {exc.fields.get('reason') or exc.message}"
            ) from exc
        if envelope.terminal_id != raw.terminal_id:
            raise MalformedUplinkError(
                f"terminal_id {envelope.terminal_id} does not match the channel's "
                f"{raw.terminal_id}"
            )
        if raw.topic_kind is not None and envelope.kind != raw.topic_kind:
            raise MalformedUplinkError(
                f"kind {envelope.kind} does not match the topic's {raw.topic_kind}"
            )
        if envelope.key_version >= KEY_VERSION_END:
            raise MalformedUplinkError("key_version is out of range")
        key = self._public_key(envelope.terminal_id, envelope.key_version)
        try:
            signed = canonical_json(data)
        except MessageFormatError as exc:  # a lone surrogate escaped in the JSON, NaN
            raise MalformedUplinkError(f"malformed envelope: {exc.message}") from exc
        try:
            signature = base64.b64decode(envelope.signature)
            try:
                key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                # The cached key may be one an operator has just replaced (a terminal first
                # registered with the wrong key): check with the registered key before
                # refusing, so that fixing the key stops the rejections at once.
                registered = self._public_key(envelope.terminal_id, envelope.key_version,
                                              fresh=True)
                if registered.public_numbers() == key.public_numbers():
                    raise
                registered.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise BadSignatureError(
                "bad signature: does not verify with the registered key "
                f"(version {envelope.key_version})"
            ) from exc
        except ValueError as exc:  # cryptography: not DER
            raise BadSignatureError("bad signature: not DER-encoded ECDSA") from exc
        return envelope

    @property
    def signer(self) -> Signer | None:
        """The platform key acks are signed with (``None``: unsigned, tests only)."""
        return self._signer

    def _ack(self, sign: bool, terminal_id: str, message_id: str, seq: int,
             status: AckStatus, reason: str | None = None) -> Ack:
        """An ack bound to the terminal, signed with the platform key when ``sign`` (and it
        has one); unsigned ones are signed later as a batch (:mod:`edge_sync.ack_batch`)."""
        if self._signer is None:
            return Ack(message_id=message_id, status=status, reason=reason, seq=seq)
        if not sign:
            return Ack(message_id=message_id, status=status, reason=reason,
                       terminal_id=terminal_id, destination=ACK_DESTINATION, seq=seq)
        return build_ack(self._signer, terminal_id=terminal_id, destination=ACK_DESTINATION,
                         message_id=message_id, seq=seq, status=status, reason=reason)

    def _refusal_logged(self, channel: str) -> bool:
        """Whether one more refusal of an unverified body may be written (rate limit)."""
        now = time.monotonic()
        with self._counts_lock:
            if now - self._window_start >= _REFUSAL_WINDOW_S:
                self._window_start, self._window_counts = now, {}
            total = sum(self._window_counts.values())
            mine = self._window_counts.get(channel, 0)
            if total >= _REFUSALS_PER_WINDOW or mine >= _REFUSALS_PER_CHANNEL:
                self.counts["suppressed"] += 1
                return False
            self._window_counts[channel] = mine + 1
            return True

    def ingest(self, batch: Sequence[RawUplink], *, sign_acks: bool = True
               ) -> list[Ack | None]:
        """Per message, in order, its ack after the batch's commit (raises ``StorageError``).

        ``None`` means no ack at all, so the terminal sends it again later (the contract's
        "missing ack"). That is the answer for a known terminal signing with a key version
        not registered yet (*held*) — refusing would dead-letter everything it sends after a
        key rotation until an operator registers the new key — and for a body whose
        signature could not be checked (*refused*: not JSON, another channel's, an unknown
        terminal's, a bad signature). Anyone can send those, so they must not make a
        terminal drop a message under the id they quote; they are logged (rate-limited),
        counted, and stored nowhere else. Every ack is signed with the platform key, unless
        ``sign_acks`` is False: then the caller signs them, one batch per terminal.
        """
        acks: list[Ack | None] = [None] * len(batch)
        outcomes: list[str] = ["held"] * len(batch)
        good: list[tuple[int, Uplink]] = []
        rejections: list[Rejection] = []
        for index, raw in enumerate(batch):
            try:
                envelope = self.verified(raw)
            except KeyNotRegisteredError as exc:
                rejections.append(
                    Rejection(raw.terminal_id, _message_id_of(raw.body),
                              f"{HELD_PREFIX}{exc.message}")
                )
                continue
            except StorageError as exc:
                if not isinstance(exc, UnstorableDataError):
                    raise  # the registry lookup failed: the whole batch waits
                self._refuse_unverified(raw, index, outcomes, rejections,
                                        "the platform cannot look this message up")
                continue
            except Exception as exc:
                # Whatever a message does to our checks, it must not stall the ones after it
                # (an unexpected error here would be redelivered and fail again for ever).
                if isinstance(exc, UplinkRejectedError):
                    # Reasons may quote the sender's input: keep them short for the log.
                    reason = exc.reason if len(exc.reason) <= 300 else exc.reason[:297] + "..."
                else:
                    log.exception("checking an uplink failed unexpectedly")
                    reason = f"the platform could not check this message ({type(exc).__name__})"
                self._refuse_unverified(raw, index, outcomes, rejections, reason)
                continue
            try:
                booked = self._rotation(envelope, book_payload(envelope))
                good.append((index, self._checkpoint(envelope, booked)))
            except StorageError:
                raise  # the registry lookup failed: the whole batch waits
            except Exception as exc:
                # Verified: the terminal signed this, so it is told (and stops resending).
                if isinstance(exc, UplinkRejectedError):
                    reason = exc.reason if len(exc.reason) <= 300 else exc.reason[:297] + "..."
                else:
                    log.exception("booking an uplink failed unexpectedly")
                    reason = f"the platform could not book this message ({type(exc).__name__})"
                acks[index] = self._ack(sign_acks, envelope.terminal_id, envelope.message_id,
                                        envelope.seq, "rejected", reason)
                outcomes[index] = "rejected"
                rejections.append(Rejection(envelope.terminal_id, envelope.message_id, reason))
        received_at = self._clock()
        started = time.perf_counter()
        try:
            stored = list(zip(good, self.storage.ingest([u for _, u in good], received_at),
                              strict=True))
        except UnstorableDataError:
            # One value the database refuses must not block its neighbours for ever:
            # store one by one and refuse the culprit.
            stored = []
            for index, uplink in good:
                try:
                    outcome, = self.storage.ingest([uplink], received_at)
                except UnstorableDataError as exc:
                    reason = f"the platform cannot store this message: {exc.__cause__}"
                    acks[index] = self._ack(sign_acks, uplink.terminal_id, uplink.message_id,
                                            uplink.seq, "rejected", reason)
                    outcomes[index] = "rejected"
                    rejections.append(Rejection(uplink.terminal_id, uplink.message_id, reason))
                    continue
                stored.append(((index, uplink), outcome))
        for (_, uplink), outcome in stored:
            if uplink.new_key is not None and outcome.new:
                # Its older versions now retire: forget what the cache says about them.
                for cached in [k for k in list(self._keys) if k[0] == uplink.terminal_id]:
                    self._keys.pop(cached, None)
        for (index, uplink), outcome in stored:
            if outcome.refused is not None:
                # A checkpoint that does not link: the terminal's journal was cut or
                # rewritten (or a replay). The terminal is told and it is logged.
                log.warning("journal checkpoint of %s refused (message %s): %s",
                            uplink.terminal_id, uplink.message_id, outcome.refused)
                reason = (outcome.refused if len(outcome.refused) <= 300
                          else outcome.refused[:297] + "...")
                acks[index] = self._ack(sign_acks, uplink.terminal_id, uplink.message_id,
                                        uplink.seq, "rejected", reason)
                outcomes[index] = "rejected"
                rejections.append(Rejection(uplink.terminal_id, uplink.message_id, reason))
                continue
            if outcome.conflict:
                # Never "duplicate" for another message: the terminal would drop it as
                # delivered. A reused id is a terminal bug to be seen, not absorbed.
                reason = REUSED_ID_REASON
                acks[index] = self._ack(sign_acks, uplink.terminal_id, outcome.message_id,
                                        uplink.seq, "rejected", reason)
                outcomes[index] = "rejected"
                rejections.append(Rejection(uplink.terminal_id, outcome.message_id, reason))
                continue
            status: AckStatus = "accepted" if outcome.new else "duplicate"
            acks[index] = self._ack(sign_acks, uplink.terminal_id, outcome.message_id,
                                    uplink.seq, status)
            outcomes[index] = status
        self.storage.record_rejections(rejections, received_at)
        with self._counts_lock:
            self.commits += 1
            self.commit_seconds += time.perf_counter() - started
            for outcome_name in outcomes:
                self.counts[outcome_name] += 1
        return acks

    def _refuse_unverified(
        self,
        raw: RawUplink,
        index: int,
        outcomes: list[str],
        rejections: list[Rejection],
        reason: str,
    ) -> None:
        """No ack for a body nobody vouches for; logged (within the rate limit), counted."""
        outcomes[index] = "refused"
        channel = _printable(raw.terminal_id)
        if self._refusal_logged(channel):
            message_id = _printable(_message_id_of(raw.body))
            log.info("refused unverified uplink on %s (%s): %s", channel, message_id, reason)
            rejections.append(Rejection(channel, message_id, reason))
