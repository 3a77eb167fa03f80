"""The PoP leg: records for the ``etika-pop-consensus`` back end and the HTTPS client.

Every payment, refund and void has a :class:`PopRecord` (proof of participation, seed 001
§3.2). The terminal submits it in parallel with the financial authorisation; when the back end
cannot be reached it stays in the outbox (destination ``pop``, see :mod:`edge_sync.pop_outbox`)
and is sent again later under the same ``record_id``, which the back end deduplicates on.

Wire contract (version 1). Every request is a ``POST`` of one signed JSON object::

    POST {base}/v1/pop/terminals/{terminal_id}/records                      op = "submit"
    POST {base}/v1/pop/terminals/{terminal_id}/records/{record_id}/cancel   op = "cancel"
    POST {base}/v1/pop/terminals/{terminal_id}/records/{record_id}/status   op = "status"

    {"v": 1, "op": str, "audience": str, "terminal_id": str, "key_version": int,
     "sent_at": "<ISO 8601 UTC>", "record": {...} | "record_id": str [, "reason": str],
     "signature": "<base64 DER ECDSA P-256/SHA-256 over canonical_json of the rest>"}

The signature binds who sends (``terminal_id``, its registered key), for whom (``audience``,
the back end's name: a record signed for another back end is refused there), and, through
the record, its identity, time and place in sequence (``record_id``, ``created_at``,
``sequence``): a replayed, reordered or redirected record is refused by the back end.
Answers are ``{"v": 1, "record_id", "status", "pop_reference", "reason"}`` (HTTP 200); a
refusal is a 4xx with ``{"error": code, "reason": text}``; 404 ``unknown_record`` means the
back end never saw the record.

No card data travels: the record carries the card *token* (format-preserving, Luhn-failing,
from :mod:`hsm`), never a PAN; a Luhn-valid number in ``card_token`` is refused here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from edge_sync.bounded_json import decode_json, storable_text
from edge_sync.errors import (
    MessageFormatError,
    PopRecordError,
    PopRejectedError,
    PopUnavailableError,
    PopUnknownRecordError,
)
from edge_sync.http_client import JSON_HEADERS, OwnsHttpClient, http_client
from edge_sync.messages import canonical_json, utc_now_iso
from edge_sync.signing import Signer
from hsm.cards import luhn_valid

__all__ = [
    "DEFAULT_AUDIENCE",
    "MAX_BODY_BYTES",
    "POP_KINDS",
    "POP_PROTOCOL_VERSION",
    "POP_STATUSES",
    "HttpsPopClient",
    "PopClient",
    "PopKind",
    "PopReceipt",
    "PopRecord",
    "PopStatus",
    "build_request",
    "record_path",
    "records_path",
]

POP_PROTOCOL_VERSION: Literal[1] = 1
#: The back end's name that requests are signed for (the stand-in answers to it by default).
DEFAULT_AUDIENCE = "etika-pop-consensus"
#: Largest answer the client reads (and request the stand-in accepts): a receipt is ~200 bytes.
MAX_BODY_BYTES = 64 * 1024

PopKind = Literal["sale", "refund", "cancel"]
PopStatus = Literal["pending", "confirmed", "rejected", "cancelled"]
POP_KINDS: tuple[str, ...] = ("sale", "refund", "cancel")
POP_STATUSES: tuple[str, ...] = ("pending", "confirmed", "rejected", "cancelled")

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MERCHANT = re.compile(r"^[A-Za-z0-9 ._-]{1,40}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
#: An amount is EMV n12 at most (Book 3 Annex A, 9F02).
_MAX_AMOUNT = 10**12 - 1


def _utc(value: str, name: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise PopRecordError(f"PoP record {name} is not an ISO 8601 timestamp",
                             field=name) from None
    if parsed.utcoffset() is None or parsed.utcoffset() != UTC.utcoffset(None):
        raise PopRecordError(f"PoP record {name} must be in UTC (Z or +00:00)", field=name)
    return value


@dataclass(frozen=True)
class PopRecord:
    """One PoP record; ``record_id`` is its idempotency key at the back end.

    ``sequence`` is the terminal's monotonic PoP counter and ``created_at`` rises with it;
    ``refers_to`` is the sale a refund or cancel record is about (None for a sale).
    """

    record_id: uuid.UUID
    payment_id: uuid.UUID
    kind: PopKind
    terminal_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    card_token: str
    created_at: str
    sequence: int
    refers_to: uuid.UUID | None = None

    def __post_init__(self) -> None:
        for name in ("record_id", "payment_id"):
            if not isinstance(getattr(self, name), uuid.UUID):
                raise PopRecordError(f"PoP record {name} must be a uuid.UUID", field=name)
        if self.kind not in POP_KINDS:
            raise PopRecordError(f"PoP record kind must be one of {', '.join(POP_KINDS)}",
                                 field="kind")
        if (self.kind == "sale") != (self.refers_to is None):
            raise PopRecordError("a sale refers to nothing; a refund or cancel record refers "
                                 "to its sale (refers_to)", field="refers_to")
        if self.refers_to is not None and not isinstance(self.refers_to, uuid.UUID):
            raise PopRecordError("PoP record refers_to must be a uuid.UUID", field="refers_to")
        if not isinstance(self.terminal_id, str) or not _ID.fullmatch(self.terminal_id):
            raise PopRecordError("PoP record terminal_id must be 1-64 letters, digits, . _ -",
                                 field="terminal_id")
        if not isinstance(self.merchant_id, str) or not _MERCHANT.fullmatch(self.merchant_id):
            raise PopRecordError("PoP record merchant_id must be 1-40 letters, digits, spaces",
                                 field="merchant_id")
        if (not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool)
                or not 0 <= self.amount_minor <= _MAX_AMOUNT):
            raise PopRecordError("PoP record amount_minor must be an int of 0 to 12 digits",
                                 field="amount_minor")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise PopRecordError("PoP record currency must be an ISO 4217 alphabetic code",
                                 field="currency")
        if not isinstance(self.card_token, str) or not _TOKEN.fullmatch(self.card_token):
            raise PopRecordError("PoP record card_token must be a card token (8-128 chars)",
                                 field="card_token")
        if self.card_token.isdigit() and 12 <= len(self.card_token) <= 19 and luhn_valid(
                self.card_token):
            # Tokens are made to fail Luhn (hsm.cards): this one is probably a clear PAN.
            raise PopRecordError("PoP record card_token passes the Luhn check: a PoP record "
                                 "takes the card token, never the PAN", field="card_token")
        if (not isinstance(self.sequence, int) or isinstance(self.sequence, bool)
                or self.sequence < 0):
            raise PopRecordError("PoP record sequence must be an int >= 0", field="sequence")
        if not isinstance(self.created_at, str):
            raise PopRecordError("PoP record created_at must be ISO 8601 text",
                                 field="created_at")
        _utc(self.created_at, "created_at")

    def as_payload(self) -> dict[str, str | int | None]:
        """The canonical JSON-able form (the one that is signed and stored)."""
        return {
            "record_id": str(self.record_id),
            "payment_id": str(self.payment_id),
            "kind": self.kind,
            "terminal_id": self.terminal_id,
            "merchant_id": self.merchant_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "card_token": self.card_token,
            "created_at": self.created_at,
            "sequence": self.sequence,
            "refers_to": None if self.refers_to is None else str(self.refers_to),
        }

    @classmethod
    def from_payload(cls, payload: object) -> PopRecord:
        """Inverse of :meth:`as_payload`; :class:`PopRecordError` names what is wrong."""
        if not isinstance(payload, Mapping):
            raise PopRecordError("a PoP record is a JSON object")
        expected = set(cls.__dataclass_fields__)
        if set(payload) != expected:
            missing, extra = expected - set(payload), set(payload) - expected
            raise PopRecordError(
                f"PoP record fields differ from the contract (missing {sorted(missing)}, "
                f"unexpected {sorted(extra)})")
        values: dict[str, Any] = dict(payload)  # each field is checked by __post_init__
        for name in ("record_id", "payment_id", "refers_to"):
            raw = values[name]
            if raw is None and name == "refers_to":
                continue
            try:
                values[name] = uuid.UUID(raw)
            except (TypeError, ValueError, AttributeError):
                raise PopRecordError(f"PoP record {name} is not a UUID", field=name) from None
        return cls(**values)

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical payload: same id + same hash = the same record."""
        return hashlib.sha256(canonical_json(self.as_payload())).hexdigest()


@dataclass(frozen=True)
class PopReceipt:
    """The back end's answer about one record. ``pop_reference`` is set once confirmed."""

    record_id: uuid.UUID
    status: PopStatus
    pop_reference: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        return {"v": POP_PROTOCOL_VERSION, "record_id": str(self.record_id),
                "status": self.status, "pop_reference": self.pop_reference,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, data: object) -> PopReceipt:
        """Parse an answer; :class:`PopRecordError` when it is not a receipt."""
        if not isinstance(data, dict):
            raise PopRecordError("a PoP receipt is a JSON object")
        try:
            record_id = uuid.UUID(data["record_id"])
            status = data["status"]
            reference, reason = data.get("pop_reference"), data.get("reason")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PopRecordError(f"PoP receipt lacks a valid record_id/status ({exc})"
                                 ) from None
        if status not in POP_STATUSES:
            raise PopRecordError(f"PoP receipt status {str(status)[:20]!r} is unknown")
        for name, value in (("pop_reference", reference), ("reason", reason)):
            # Text SQLite, the journal and a signature can carry: a lone surrogate or NUL is
            # refused here, not when the receipt is stored mid-sale (#17 item 8).
            if value is not None and (not isinstance(value, str) or len(value) > 500
                                      or storable_text(value, 500) != value):
                raise PopRecordError(f"PoP receipt {name} must be text (at most 500 chars)")
        return cls(record_id, status, reference, reason)


@runtime_checkable
class PopClient(Protocol):
    """What the payment manager and the outbox use to reach the PoP back end."""

    async def submit(self, record: PopRecord) -> PopReceipt:
        """Submit (or resubmit) ``record``: ``pending`` or ``confirmed``; a record cancelled
        before it arrived answers ``cancelled``. Raises :class:`PopRejectedError` when the
        back end refuses it and :class:`PopUnavailableError` when its fate is unknown."""
        ...

    async def cancel(self, record_id: uuid.UUID, reason: str) -> PopReceipt:
        """Withdraw a record (known or not yet arrived: a later submit is then refused)."""
        ...

    async def status(self, record_id: uuid.UUID) -> PopReceipt:
        """Where the record stands; :class:`PopUnknownRecordError` if the back end never saw
        it."""
        ...


def records_path(terminal_id: str) -> str:
    if not _ID.fullmatch(terminal_id):
        raise ValueError(f"terminal id {terminal_id!r} cannot appear in a URL path")
    return f"/v1/pop/terminals/{terminal_id}/records"


def record_path(terminal_id: str, record_id: uuid.UUID, op: Literal["cancel", "status"]) -> str:
    return f"{records_path(terminal_id)}/{record_id}/{op}"


def build_request(
    signer: Signer,
    *,
    op: Literal["submit", "cancel", "status"],
    terminal_id: str,
    audience: str,
    fields: Mapping[str, Any],
    sent_at: str | None = None,
) -> dict[str, Any]:
    """A signed request object (see the module docstring for its fields)."""
    unsigned: dict[str, Any] = {
        "v": POP_PROTOCOL_VERSION,
        "op": op,
        "audience": audience,
        "terminal_id": terminal_id,
        "key_version": signer.key_version,
        "sent_at": sent_at or utc_now_iso(),
        **fields,
    }
    signature = base64.b64encode(signer.sign(canonical_json(unsigned))).decode("ascii")
    return {**unsigned, "signature": signature}


class HttpsPopClient(OwnsHttpClient):
    """:class:`PopClient` over HTTPS (httpx); ``async with`` closes its connections.

    Each call is bounded by ``timeout_s`` as a whole (connect, send, a slow answer) and
    reads at most :data:`MAX_BODY_BYTES` of answer. Every failure comes out as a
    :class:`~edge_sync.errors.PopError` leaf; no httpx, JSON or ssl exception escapes.
    """

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        terminal_id: str,
        *,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        audience: str = DEFAULT_AUDIENCE,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"PoP base URL must be http(s)://…, not {base_url!r}")
        records_path(terminal_id)  # refuse an id that cannot go in a path, now
        self.base_url = base_url.rstrip("/")
        self.terminal_id = terminal_id
        self.audience = audience
        self._signer = signer
        self._timeout_s = timeout_s
        self._max_body = max_body_bytes
        self._client = http_client(
            verify=ssl_context if ssl_context is not None else True,
            transport=transport, timeout_s=timeout_s, headers=JSON_HEADERS,
        )

    async def submit(self, record: PopRecord) -> PopReceipt:
        if not isinstance(record, PopRecord):
            raise TypeError("submit takes a PopRecord")
        if record.terminal_id != self.terminal_id:
            raise PopRecordError(
                f"record of terminal {record.terminal_id!r} given to the client of "
                f"{self.terminal_id!r}", field="terminal_id")
        receipt = await self._call("submit", records_path(self.terminal_id), record.record_id,
                                   {"record": record.as_payload()})
        if receipt.status == "rejected":
            reason = receipt.reason or "no reason given"
            raise PopRejectedError(f"the PoP back end rejected record {record.record_id}: "
                                   f"{reason}", reason=reason, record_id=str(record.record_id))
        return receipt

    async def cancel(self, record_id: uuid.UUID, reason: str) -> PopReceipt:
        if not isinstance(reason, str) or not 0 < len(reason) <= 200:
            raise ValueError("a cancel reason is 1 to 200 characters")
        return await self._call("cancel", record_path(self.terminal_id, record_id, "cancel"),
                                record_id, {"record_id": str(record_id), "reason": reason})

    async def status(self, record_id: uuid.UUID) -> PopReceipt:
        return await self._call("status", record_path(self.terminal_id, record_id, "status"),
                                record_id, {"record_id": str(record_id)})

    async def _call(self, op: Literal["submit", "cancel", "status"], path: str,
                    record_id: uuid.UUID, fields: Mapping[str, Any]) -> PopReceipt:
        url = self.base_url + path
        body = json.dumps(build_request(self._signer, op=op, terminal_id=self.terminal_id,
                                        audience=self.audience, fields=fields),
                          separators=(",", ":"), ensure_ascii=False).encode()
        try:
            async with asyncio.timeout(self._timeout_s):
                status_code, raw = await self._post(url, body)
        except TimeoutError:
            raise PopUnavailableError(f"PoP {op} {url}: no answer within "
                                      f"{self._timeout_s:g} s", url=url, op=op) from None
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL) as exc:
            raise PopUnavailableError(f"PoP {op} {url} failed: {exc!s} "
                                      f"({type(exc).__name__})", url=url, op=op) from exc
        except (OSError, ssl.SSLError) as exc:
            raise PopUnavailableError(f"PoP {op} {url} failed: {exc}", url=url, op=op
                                      ) from exc
        return self._answer(op, url, record_id, status_code, raw)

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        async with self._client.stream("POST", url, content=body) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_body:
                    raise PopUnavailableError(
                        f"PoP answer from {url} exceeds {self._max_body} bytes; not read",
                        url=url)
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

    def _answer(self, op: str, url: str, record_id: uuid.UUID, status_code: int,
                raw: bytes) -> PopReceipt:
        try:  # bounded: a deep or huge answer is no answer, not a RecursionError
            data = decode_json(raw, "PoP answer", max_bytes=self._max_body) if raw else None
        except MessageFormatError:
            data = None
        if status_code == 200:
            try:
                receipt = PopReceipt.from_dict(data)
            except PopRecordError as exc:
                # Its fate is unknown: retried like an outage; the back end dedups.
                raise PopUnavailableError(f"PoP {op} {url}: the answer is not a receipt "
                                          f"({exc})", url=url, op=op) from exc
            if receipt.record_id != record_id:
                raise PopUnavailableError(f"PoP {op} {url}: the answer is about another "
                                          f"record ({receipt.record_id})", url=url, op=op)
            return receipt
        reason = _reason(data, raw)
        if status_code == 404 and isinstance(data, dict) and data.get("error") == (
                "unknown_record"):
            raise PopUnknownRecordError(f"the PoP back end has no record {record_id}",
                                        record_id=str(record_id), url=url)
        if 400 <= status_code < 500 and status_code not in (408, 425, 429):
            raise PopRejectedError(f"the PoP back end refused {op} of record {record_id} "
                                   f"({status_code}): {reason}", reason=reason,
                                   status=status_code, record_id=str(record_id), url=url)
        raise PopUnavailableError(f"PoP {op} {url} answered {status_code}: {reason}; "
                                  "retrying later", url=url, status=status_code, op=op)


def _reason(data: Any, raw: bytes) -> str:
    # The back end's words, kept in errors, logs and the outbox: storable whatever they hold.
    if isinstance(data, dict) and isinstance(data.get("reason"), str):
        return storable_text(data["reason"], 300)
    return storable_text(raw[:200].decode("utf-8", "replace"), 200) or "no reason given"
