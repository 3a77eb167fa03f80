"""Builders of the ISO 8583 requests the connector sends, and the reader of the answers.

Pure functions from request values to the field dictionaries of
:mod:`edge_sync.connectors.iso8583_spec` (ISO 8583:1987 §4; the profile's field table is
there). STAN and RRN (DE 11, DE 37):

* the STAN identifies a message of this terminal for the day: six digits, 000001–999999,
  wrapping, never reused while an exchange is open; a reversal or repeat carries its own
  STAN and points at the original's through DE 90;
* the RRN (Visa layout ``YDDDhh`` + STAN) is the one reference the merchant, the acquirer
  and the issuer share; it is kept from the original request into completions and
  reversals so the host finds the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edge_sync.connectors.answers import issuer_data, message
from edge_sync.connectors.base import (
    Amount,
    AuthorisationRequest,
    EntryMode,
    PspReference,
    RefundRequest,
)
from edge_sync.connectors.iso8583_spec import (
    DE48_IDEMPOTENCY_KEY,
    DE48_REPLAYED,
    FORBIDDEN_ICC_TAGS,
    decode_de48,
    encode_de48,
    encode_de90,
)

__all__ = [
    "HostContext",
    "ParsedAnswer",
    "StanCounter",
    "StanSource",
    "build_authorisation",
    "build_completion",
    "build_echo",
    "build_refund",
    "build_reversal",
    "build_status",
    "encode_icc",
    "icc_tags",
    "make_rrn",
    "read_answer",
    "refuse_card_data_tags",
]

PROCESSING_PURCHASE = "000000"
PROCESSING_REFUND = "200000"
PROCESSING_STATUS = "330000"
NETWORK_ECHO = "301"
#: DE 38 (an 6): what the terminal keeps as the issuer's approval code.
_APPROVAL = re.compile(r"[0-9A-Za-z ]{1,6}")
_ENTRY_MODE = {EntryMode.CHIP: "051", EntryMode.CONTACTLESS: "071",
               EntryMode.OFFLINE_ADVICE: "901"}  # fmt: skip


class StanSource(Protocol):
    """Hands out systems trace audit numbers; the terminal persists one across restarts."""

    def next_stan(self) -> str: ...


class StanCounter:
    """In-memory STANs 000001…999999, wrapping (the terminal may give a persistent one)."""

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= 999_999:
            raise ValueError("a STAN is 1 to 999999")
        self._next = start

    def next_stan(self) -> str:
        value = self._next
        self._next = value % 999_999 + 1
        return f"{value:06d}"


@dataclass(frozen=True)
class HostContext:
    """The acceptor's identity on one acquirer's host (from the profile, as values)."""

    connector: str
    acquirer_id: str
    terminal_id: str
    merchant_id: str
    merchant_name_location: str = ""

    def __post_init__(self) -> None:
        if not (self.acquirer_id.isdigit() and 1 <= len(self.acquirer_id) <= 11):
            raise ValueError("an acquirer id is 1 to 11 digits")
        if len(self.terminal_id) != 8:
            raise ValueError("a terminal id (DE 41) is 8 characters")
        if len(self.merchant_id) != 15:
            raise ValueError("a merchant id (DE 42) is 15 characters")


def make_rrn(now: datetime, stan: str) -> str:
    """DE 37 as ``YDDDhh`` + STAN: last year digit, day of year, hour, then the STAN."""
    return f"{now.year % 10}{now.timetuple().tm_yday:03d}{now.hour:02d}{stan}"


def icc_tags(emv_data: bytes, *, nested: bool = False) -> list[str]:
    """The top-level tags of a BER-TLV string (EMV Book 3 Annex B), hex upper-case.

    With ``nested``, the tags inside constructed objects follow each one (depth first).
    Written by hand because ``edge_sync`` may not import the kernel's codec: a minimal
    walk over tag and length octets, enough to refuse card-data tags in DE 55.
    """
    tags: list[str] = []
    offset = 0
    data = emv_data
    while offset < len(data):
        if data[offset] in (0x00, 0xFF):  # padding between objects (Book 3 B1)
            offset += 1
            continue
        start = offset
        offset += 1
        if data[start] & 0x1F == 0x1F:
            while offset < len(data) and data[offset] & 0x80:
                offset += 1
            offset += 1
        tag = data[start:offset].hex().upper()
        if offset >= len(data):
            raise ValueError(f"ICC data truncated in the length of tag {tag}")
        length = data[offset]
        offset += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or offset + count > len(data):
                raise ValueError(f"ICC data has a malformed length for tag {tag}")
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        if offset + length > len(data):
            raise ValueError(f"ICC data truncated in the value of tag {tag}")
        value = data[offset : offset + length]
        offset += length
        tags.append(tag)
        if nested and data[start] & 0x20:  # constructed (Book 3 B1): look inside
            tags += icc_tags(value, nested=True)
    return tags


def encode_icc(tags: Mapping[int, bytes]) -> bytes:
    """DE 55 from the kernel's ICC data, dropping the card-data tags (Book 3 Annex B).

    Primitive tags only, in the order given; the tag number's bytes are its minimal
    big-endian form, the length BER (short form below 128, ``81``/``82`` above).
    """
    out = bytearray()
    for tag, value in tags.items():
        tag_hex = f"{tag:X}"
        tag_hex = tag_hex if len(tag_hex) % 2 == 0 else "0" + tag_hex
        if tag_hex in FORBIDDEN_ICC_TAGS:
            continue
        out += bytes.fromhex(tag_hex)
        size = len(value)
        if size < 0x80:
            out.append(size)
        elif size <= 0xFF:
            out += bytes([0x81, size])
        else:
            out += bytes([0x82]) + size.to_bytes(2, "big")
        out += value
    return bytes(out)


def refuse_card_data_tags(emv_data: bytes, where: str) -> None:
    """``ValueError`` (naming the tags, never their values) if ICC data carries card data.

    Every connector calls it before ICC data goes on its wire: PAN, track data and name
    travel only in the P2PE envelope, whichever PSP protocol carries the rest.
    """
    # Nested too: a PAN inside a template (70, 77…) is as clear as one at the top level.
    forbidden = sorted(set(icc_tags(emv_data, nested=True)) & FORBIDDEN_ICC_TAGS)
    if forbidden:
        raise ValueError(
            f"ICC data for {where} holds card-data tag(s) {forbidden}: card data travels only "
            "in the P2PE envelope"
        )


def _check_icc(emv_data: bytes) -> str:
    refuse_card_data_tags(emv_data, "DE 55")
    if len(emv_data) > 255:
        raise ValueError("ICC data for DE 55 is longer than 255 bytes")
    return emv_data.hex().upper()


def _common(ctx: HostContext, mti: str, stan: str, now: datetime) -> dict[str, str]:
    local = now.astimezone()
    fields = {
        "t": mti,
        "7": now.strftime("%m%d%H%M%S"),
        "11": stan,
        "12": local.strftime("%H%M%S"),
        "13": local.strftime("%m%d"),
        "32": ctx.acquirer_id,
        "41": ctx.terminal_id,
        "42": ctx.merchant_id,
    }
    if ctx.merchant_name_location:
        fields["43"] = ctx.merchant_name_location[:40].ljust(40)
    return fields


def build_authorisation(
    ctx: HostContext,
    request: AuthorisationRequest,
    *,
    stan: str,
    now: datetime,
    p2pe_envelope: bytes,
    advice: bool = False,
) -> dict[str, str]:
    """0100 (authorisation only), 0200 (sale) or 0220 (advice of an offline approval)."""
    mti = "0220" if advice else ("0200" if request.capture else "0100")
    if not p2pe_envelope:
        raise ValueError("an authorisation needs the P2PE envelope of the card")
    card = request.card
    fields = _common(ctx, mti, stan, now)
    mode = EntryMode.OFFLINE_ADVICE if advice else card.entry_mode
    fields.update({
        "3": PROCESSING_PURCHASE,
        "4": f"{request.amount.minor:012d}",
        "22": _ENTRY_MODE[mode],
        "37": make_rrn(now, stan),
        "48": encode_de48({DE48_IDEMPOTENCY_KEY: request.idempotency_key}),
        "49": f"{request.amount.numeric:03d}",
        "125": p2pe_envelope.hex().upper(),
    })
    if card.pan_sequence is not None:
        fields["23"] = f"{int(card.pan_sequence):03d}"
    if card.emv_data:
        fields["55"] = _check_icc(card.emv_data)
    if card.pin_block is not None and card.ksn is not None:
        if len(card.pin_block) not in (8, 16) or len(card.ksn) not in (10, 12):
            raise ValueError("a PIN block is 8 or 16 bytes and its KSN 10 or 12 bytes")
        fields["52"] = card.pin_block.hex().upper()
        fields["53"] = card.ksn.hex().upper()
    return fields


def _original(ctx: HostContext, original: PspReference) -> str:
    if original.mti and original.stan and original.transmitted_at:
        return encode_de90(original.mti, original.stan, original.transmitted_at,
                           ctx.acquirer_id)
    # Crash recovery reverses a payment whose answer *and* process were lost: its STAN and
    # transmission time died with the process. DE 90 then carries zeros ("original data
    # unknown") and the original is named by its idempotency key in DE 48, which every
    # follow-up carries and the acquirer matches when DE 90 finds nothing.
    return encode_de90("0000", "000000", "0000000000", ctx.acquirer_id)


def _follow_up(ctx: HostContext, mti: str, processing: str, original: PspReference,
               amount: Amount, stan: str, now: datetime, key: str) -> dict[str, str]:
    fields = _common(ctx, mti, stan, now)
    fields.update({
        "3": processing,
        "4": f"{amount.minor:012d}",
        "37": original.rrn or make_rrn(now, stan),
        "48": encode_de48({DE48_IDEMPOTENCY_KEY: key}),
        "49": f"{amount.numeric:03d}",
        "90": _original(ctx, original),
    })
    if original.approval_code:
        fields["38"] = original.approval_code
    return fields


def build_reversal(ctx: HostContext, original: PspReference, amount: Amount, *, stan: str,
                   now: datetime, repeat: bool = False) -> dict[str, str]:
    """0400 (0401 when repeated) reversing the original in full (ISO 8583 §4.1.3.4)."""
    return _follow_up(ctx, "0401" if repeat else "0400", PROCESSING_PURCHASE, original,
                      amount, stan, now, original.transaction_id)


def build_completion(ctx: HostContext, original: PspReference, amount: Amount, *, stan: str,
                     now: datetime, repeat: bool = False) -> dict[str, str]:
    """0220 (0221 repeat): completion advice of an earlier 0100 for the final amount."""
    return _follow_up(ctx, "0221" if repeat else "0220", PROCESSING_PURCHASE, original,
                      amount, stan, now, original.transaction_id)


def build_refund(ctx: HostContext, request: RefundRequest, *, stan: str, now: datetime
                 ) -> dict[str, str]:
    """0200 with processing code 20: a refund referring to the original by DE 90."""
    fields = _follow_up(ctx, "0200", PROCESSING_REFUND, request.original, request.amount,
                        stan, now, request.idempotency_key)
    fields["37"] = make_rrn(now, stan)  # a refund is a transaction of its own
    fields.pop("38", None)
    return fields


def build_status(ctx: HostContext, original: PspReference, *, stan: str, now: datetime
                 ) -> dict[str, str]:
    """0600 status enquiry (processing code 33): DE 39 of the answer is the original's
    code, or 25 when the host never saw it. An administrative message of this profile."""
    fields = _common(ctx, "0600", stan, now)
    fields.update({
        "3": PROCESSING_STATUS,
        "48": encode_de48({DE48_IDEMPOTENCY_KEY: original.transaction_id}),
        "90": _original(ctx, original),
    })
    if original.rrn:
        fields["37"] = original.rrn
    return fields


def build_echo(ctx: HostContext, *, stan: str, now: datetime) -> dict[str, str]:
    """0800 network management, DE 70 = 301 (echo test)."""
    return {"t": "0800", "7": now.strftime("%m%d%H%M%S"), "11": stan, "32": ctx.acquirer_id,
            "70": NETWORK_ECHO}


@dataclass(frozen=True)
class ParsedAnswer:
    code: str
    message: str
    approval_code: str | None
    rrn: str | None
    emv_data: bytes
    replayed: bool
    #: DE 55 was present but not binary data: the host's decision stands, its issuer
    #: authentication fails (EMV Book 3 §10.9).
    emv_malformed: bool = False


def read_answer(fields: dict[str, str]) -> ParsedAnswer:
    """DE 39, 44, 38, 37 and 55 of an answer; ``ValueError`` when DE 39 is missing or bad,
    or DE 48 (which names the transaction) is malformed. An unreadable DE 55 does not void
    the answer: it is flagged (``emv_malformed``) and the kernel fails issuer
    authentication, keeping the decision (EMV Book 3 §10.9)."""
    code = fields.get("39")
    if code is None or len(code) != 2 or not code.isascii() or not code.isalnum():
        raise ValueError("the answer has no valid response code (DE 39)")
    emv, malformed = issuer_data(fields.get("55"))
    try:
        private = decode_de48(fields.get("48", ""))
    except ValueError as exc:
        raise ValueError(f"DE 48 of the answer is malformed: {exc}") from exc
    approval = fields.get("38")
    return ParsedAnswer(
        code=code,
        message=message(fields.get("44", "").strip()),
        # DE 38 is an 6 (ISO 8583:1987 §4.3.38); anything else is not an approval code.
        approval_code=approval if approval and _APPROVAL.fullmatch(approval) else None,
        rrn=fields.get("37"),
        emv_data=emv,
        replayed=private.get(DE48_REPLAYED) == "1",
        emv_malformed=malformed,
    )
