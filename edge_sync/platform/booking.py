"""What an uplink books: its payload's fields, checked against the wire contract and the
database's columns, as the rows :class:`~edge_sync.platform.records.Uplink` carries.

Pure functions of one verified envelope: no storage, no keys. :func:`book_payload` raises
:class:`~edge_sync.platform.errors.MalformedUplinkError` (the uplink is rejected with that
reason) for a payload the platform cannot book; the ingestion
(:mod:`edge_sync.platform.ingest`) verifies, commits and acks around it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from edge_sync.messages import Envelope
from edge_sync.platform.errors import MalformedUplinkError, RegistryError
from edge_sync.platform.keys import public_key_pem
from edge_sync.platform.records import COUNTED_STATES, EodTotal, TransactionFact, Uplink
from hsm.cards import luhn_valid

__all__ = ["KEY_VERSION_END", "book_payload", "payload_int"]

_CURRENCY = re.compile(r"^[A-Z]{3}\Z")
_INT64 = 2**63
#: Key versions are below this (a 32-bit column).
KEY_VERSION_END = 2**31
_SIGNS = {"sale": 1, "purchase": 1, "refund": -1}
_ID_KEYS = ("transaction_id", "payment_id", "id")


def payload_int(payload: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    """``payload[key]`` as an integer a 64-bit column holds (at least ``minimum``)."""
    value = payload.get(key)
    # bool is an int in Python but never an amount or a count on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedUplinkError(f"payload.{key} must be an integer")
    if minimum is not None and value < minimum:
        raise MalformedUplinkError(f"payload.{key} must be >= {minimum}")
    if not -_INT64 <= value < _INT64:
        raise MalformedUplinkError(f"payload.{key} is out of range")
    return value


def _text(value: Any, key: str, *, required: bool = True) -> str | None:
    """A string the database can hold: no NUL, valid UTF-8, at most 200 characters."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise MalformedUplinkError(f"{key} must be a non-empty string")
    if len(value) > 200 or "\x00" in value:
        raise MalformedUplinkError(f"{key} must be at most 200 characters, without NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedUplinkError(f"{key} is not valid Unicode text") from exc
    return value


def _date(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise MalformedUplinkError(f"payload.{key} must be a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise MalformedUplinkError(f"payload.{key} must be a date YYYY-MM-DD") from exc


def _currency(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise MalformedUplinkError(f"payload.{key} must be an ISO 4217 code such as MAD")
    return value


def _transaction(envelope: Envelope) -> TransactionFact | None:
    """The booked transaction, or ``None`` when the payload carries no amount to book."""
    payload = envelope.payload
    if "amount_minor" not in payload and "currency" not in payload:
        # A record without money (an early state report, another writer's shape): kept as
        # received and counted as unbooked, never refused — refusing would dead-letter it.
        return None
    # Terminal-side writers name these differently (payment_id, status): accept the aliases.
    transaction_id = next(
        (payload[key] for key in _ID_KEYS if key in payload), envelope.idempotency_key
    )
    kind = payload.get("type", "sale")
    if kind not in _SIGNS:
        raise MalformedUplinkError(f"payload.type must be one of {', '.join(sorted(_SIGNS))}")
    state = _text(payload.get("state", payload.get("status")), "payload.state", required=False)
    return TransactionFact(
        details=_details(payload),
        transaction_id=str(_text(transaction_id, "payload.transaction_id")),
        business_date=_date(payload.get("business_date", envelope.created_at[:10]),
                            "business_date"),
        currency=_currency(payload.get("currency"), "currency"),
        amount_minor=_SIGNS[kind] * payload_int(payload, "amount_minor", minimum=0),
        state=state,
        # A sale counts while its financial leg stands; a refund once the PSP approved it
        # (negative), as the terminal's end-of-day report counts them (terminal.eod).
        counted=state is None or state in COUNTED_STATES
        or (kind == "refund" and state == "approved"),
    )


#: Payload fields kept as the payment's mirror (seed 000: payments, attempts, fraud checks).
_DETAIL_KEYS = ("type", "network", "pan_masked", "offline", "fraud", "attempts", "refers_to",
                "reason", "pop_record_id")
_MAX_DETAILS_BYTES = 8192
_CARD_NUMBER = re.compile(r"(?<![0-9])[1-9][0-9]{11,18}(?![0-9])")
#: Record and payment ids: the last group of a UUID is 12 hex digits, all decimal now and then
#: (about 1 in 300), and then Luhn-valid 1 time in 10 — not a card number.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _details(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The mirror fields of a transaction payload; a clear card number anywhere in them
    refuses the uplink (DESIGN §5: the platform stores masked PANs only)."""
    details = {key: payload[key] for key in _DETAIL_KEYS if key in payload}
    if not details:
        return None
    text = json.dumps(details, sort_keys=True, ensure_ascii=True)
    if any(luhn_valid(run) for run in _CARD_NUMBER.findall(_UUID.sub("uuid", text))):
        raise MalformedUplinkError("the transaction's details hold a card number; the platform "
                              "takes masked PANs only")
    if len(text) > _MAX_DETAILS_BYTES:
        raise MalformedUplinkError(f"the transaction's details are over {_MAX_DETAILS_BYTES} bytes")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _eod(envelope: Envelope) -> tuple[str, tuple[EodTotal, ...]]:
    payload = envelope.payload
    business_date = _date(payload.get("business_date"), "business_date")
    lines = payload.get("totals")
    if not isinstance(lines, list):
        raise MalformedUplinkError("payload.totals must be a list")
    totals: list[EodTotal] = []
    for index, line in enumerate(lines):
        where = f"totals[{index}]"
        if not isinstance(line, Mapping):
            raise MalformedUplinkError(f"payload.{where} must be an object")
        totals.append(
            EodTotal(
                currency=_currency(line.get("currency"), f"{where}.currency"),
                count=payload_int(line, "count", minimum=0),
                amount_minor=payload_int(line, "amount_minor"),
            )
        )
    currencies = [total.currency for total in totals]
    if len(set(currencies)) != len(currencies):
        raise MalformedUplinkError("payload.totals lists a currency twice")
    return business_date, tuple(totals)


def _backlog(envelope: Envelope) -> dict[str, int]:
    value = envelope.payload.get("backlog")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return {"all": value}
    if isinstance(value, Mapping):
        counts = {k: v for k, v in value.items()
                  if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
        if len(counts) == len(value):
            return counts
    raise MalformedUplinkError("payload.backlog must be a count or {destination: count}")


def book_payload(envelope: Envelope) -> Uplink:
    """The row(s) an envelope books; :class:`MalformedUplinkError` when its payload is unusable."""
    # The envelope fits the wire contract; these are the limits of the database columns.
    if envelope.seq >= _INT64:
        raise MalformedUplinkError("seq is out of range")
    if envelope.key_version >= KEY_VERSION_END:
        raise MalformedUplinkError("key_version is out of range")
    _text(envelope.idempotency_key, "idempotency_key")
    uplink = Uplink(
        message_id=envelope.message_id,
        terminal_id=envelope.terminal_id,
        kind=envelope.kind,
        seq=envelope.seq,
        idempotency_key=envelope.idempotency_key,
        created_at=envelope.created_at,
        # ASCII escapes: a NUL or a lone surrogate in a payload string stays storable text.
        envelope_json=json.dumps(envelope.wire(), sort_keys=True),
    )
    if envelope.kind == "transaction":
        fact = _transaction(envelope)
        return replace(uplink, transaction=fact, booked=fact is not None)
    if envelope.kind == "eod_totals":
        business_date, totals = _eod(envelope)
        return replace(uplink, eod_date=business_date, eod_totals=totals)
    if envelope.kind == "status" and "backlog" in envelope.payload:
        return replace(uplink, backlog=_backlog(envelope))
    if envelope.kind == "keys_rotated" and (
        "public_key_pem" in envelope.payload or "public_key" in envelope.payload
    ):
        return replace(uplink, new_key=_rotated_key(envelope))
    return uplink


def _rotated_key(envelope: Envelope) -> tuple[int, str]:
    """The next key a terminal announces, signed with a key the platform already trusts."""
    version = payload_int(envelope.payload, "key_version", minimum=0)
    if not envelope.key_version < version < KEY_VERSION_END:
        raise MalformedUplinkError(
            f"payload.key_version must be above the signing key's ({envelope.key_version})"
        )
    # The terminal's rotate hook reports it as public_key_pem.
    pem = envelope.payload.get("public_key_pem", envelope.payload.get("public_key"))
    if not isinstance(pem, str):
        raise MalformedUplinkError("payload.public_key must be a PEM string")
    try:
        return version, public_key_pem(pem.encode())
    except RegistryError as exc:
        raise MalformedUplinkError(f"payload.public_key: {exc.message}") from exc
