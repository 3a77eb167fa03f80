"""The Étika acquirer profile of ISO 8583:1987 and its wire framing.

Messages are encoded and decoded by *pyiso8583*; this module holds only the field
specification (which pyiso8583 takes as data) and the few private sub-formats no library
knows: DE 48 sub-elements and DE 90 original data elements.

Field usage (ISO 8583:1987 §4 data element directory; "b" = binary, "ans" = text):

====  ==========================================  =================================
DE    content                                     format in this profile
====  ==========================================  =================================
t     message type indicator (ISO 8583 §4.1)      n4 ASCII
p/1   primary / secondary bitmap                  b8 each
3     processing code: 000000 purchase,           n6
      200000 refund, 330000 status enquiry
4     amount, transaction (minor units)           n12
7     transmission date and time (UTC)            n10 MMDDhhmmss
11    systems trace audit number (STAN)           n6, 000001–999999, never 000000
12/13 local time hhmmss / local date MMDD         n6 / n4
22    POS entry mode: 051 chip, 071 contactless,  n3
      901 advice of an offline chip approval
23    card sequence number (EMV 5F34)             n3
32    acquiring institution id                    n..11 LLVAR
37    retrieval reference number (RRN)            an12 YDDDhh + STAN
38    approval code                               an6
39    response code                               an2
41/42 card acceptor terminal id / merchant id     ans8 / ans15
43    card acceptor name and location             ans40
44    additional response data (host text)        ans..25 LLVAR
48    additional data, private: sub-elements      ans..999 LLLVAR, ``TT LLL value``
      01 idempotency key (transaction UUID),
      02 "1" in an answer replayed from the cache
49    currency code, transaction (ISO 4217 num.)  n3
52    enciphered PIN block (ISO 9564 f.0 or f.4)  b..16, 1-byte binary length
53    security control: the DUKPT KSN             b..12, 1-byte binary length
55    ICC system related data (EMV BER-TLV)       b..255 LLLVAR
70    network management code: 301 echo test      n3
90    original data elements: MTI, STAN, DE 7,    n42
      acquirer id (n11), forwarding id (n11)
125   P2PE envelope (``hsm.p2pe``): the only      b..999 LLLVAR
      place card data travels
====  ==========================================  =================================

No DE 2, 14, 35 or 45: a clear PAN, expiry or track never goes on the wire.

Framing: each message is preceded by its length as a 2-byte unsigned big-endian integer
(the common "2-byte binary header" of acquirer TCP links), so at most 65535 bytes.
"""

from __future__ import annotations

import copy
import struct
from typing import Any

import iso8583
from iso8583.specs import default_ascii

__all__ = [
    "DE48_IDEMPOTENCY_KEY",
    "DE48_REPLAYED",
    "FORBIDDEN_ICC_TAGS",
    "MAX_FRAME",
    "MTI_RESPONSE",
    "SPEC",
    "decode",
    "decode_de48",
    "decode_de90",
    "encode",
    "encode_de48",
    "encode_de90",
    "frame",
]

MAX_FRAME = 0xFFFF
DE48_IDEMPOTENCY_KEY = "01"
DE48_REPLAYED = "02"  # in answers: "1" when the host answered from its duplicate cache

#: Request MTI → the MTI of its answer (ISO 8583 §4.1.1: the function digit + 1).
MTI_RESPONSE = {
    "0100": "0110",
    "0200": "0210",
    "0220": "0230",
    "0221": "0230",
    "0400": "0410",
    "0401": "0410",
    "0600": "0610",
    "0800": "0810",
}

#: EMV tags that carry cardholder data and must never be put in DE 55 (EMV Book 3 Annex A):
#: PAN, track 1/2 equivalents, cardholder name (and extended), expiry date, IBAN, PIN data.
#: PAN and expiry travel in the P2PE block, the PIN block in DE 52. Every tag of the
#: kernel's ``SENSITIVE_TAGS`` is here (a test checks it; edge_sync cannot import it).
FORBIDDEN_ICC_TAGS = frozenset(
    {"5A", "57", "56", "5F20", "5F24", "9F0B", "9F1F", "9F20", "9F6B", "5F53", "99"}
)


def _field(data_enc: str, len_type: int, max_len: int, desc: str, len_enc: str = "ascii"
           ) -> dict[str, Any]:
    return {"data_enc": data_enc, "len_enc": len_enc, "len_type": len_type,
            "max_len": max_len, "desc": desc}


SPEC: dict[str, dict[str, Any]] = copy.deepcopy(default_ascii)
SPEC.update({
    "p": _field("b", 0, 8, "Bitmap, Primary"),
    "1": _field("b", 0, 8, "Bitmap, Secondary"),
    "52": _field("b", 1, 16, "PIN block (ISO 9564 format 0 or 4)", len_enc="b"),
    "53": _field("b", 1, 12, "DUKPT key serial number", len_enc="b"),
    "55": _field("b", 3, 255, "ICC data (EMV BER-TLV)"),
    "125": _field("b", 3, 999, "P2PE envelope"),
})


def encode(fields: dict[str, str]) -> bytes:
    """One message as bytes (no length prefix); ``ValueError`` names the bad field."""
    try:
        raw, _ = iso8583.encode(dict(fields), SPEC)
    except iso8583.EncodeError as exc:
        raise ValueError(f"cannot encode ISO 8583 message: {exc}") from exc
    return bytes(raw)


def decode(raw: bytes) -> dict[str, str]:
    """The fields of one message; raises ``iso8583.DecodeError`` (a ``ValueError``)."""
    fields, _ = iso8583.decode(bytes(raw), SPEC)
    return fields


def frame(message: bytes) -> bytes:
    """The 2-byte big-endian length prefix, then the message."""
    if len(message) > MAX_FRAME:
        raise ValueError(f"an ISO 8583 message is at most {MAX_FRAME} bytes on this link")
    return struct.pack(">H", len(message)) + message


def encode_de48(elements: dict[str, str]) -> str:
    """DE 48 private sub-elements: 2-digit tag, 3-digit length, value, in tag order."""
    out = []
    for tag in sorted(elements):
        value = elements[tag]
        if not (len(tag) == 2 and tag.isdigit()):
            raise ValueError(f"DE 48 tag {tag!r} is not two digits")
        if len(value) > 999:
            raise ValueError(f"DE 48 sub-element {tag} is longer than 999")
        out.append(f"{tag}{len(value):03d}{value}")
    return "".join(out)


def decode_de48(text: str) -> dict[str, str]:
    """Inverse of :func:`encode_de48`; ``ValueError`` with the offset when malformed."""
    elements: dict[str, str] = {}
    offset = 0
    while offset < len(text):
        head = text[offset : offset + 5]
        if len(head) < 5 or not head.isdigit():
            raise ValueError(f"DE 48 sub-element header malformed at offset {offset}")
        length = int(head[2:])
        value = text[offset + 5 : offset + 5 + length]
        if len(value) != length:
            raise ValueError(f"DE 48 sub-element {head[:2]} truncated at offset {offset}")
        elements[head[:2]] = value
        offset += 5 + length
    return elements


def encode_de90(mti: str, stan: str, transmitted_at: str, acquirer_id: str) -> str:
    """DE 90 (ISO 8583:1987): original MTI n4, STAN n6, DE 7 n10, acquirer n11, forwarder n11."""
    parts = (mti, stan, transmitted_at, acquirer_id)
    if not all(p.isdigit() for p in parts) or (len(mti), len(stan), len(transmitted_at)) != (
        4, 6, 10
    ) or len(acquirer_id) > 11:
        raise ValueError("DE 90 needs MTI n4, STAN n6, transmission time n10, acquirer n..11")
    return f"{mti}{stan}{transmitted_at}{int(acquirer_id):011d}{0:011d}"


def decode_de90(text: str) -> tuple[str, str, str, str]:
    """``(mti, stan, transmitted_at, acquirer_id)`` of a DE 90."""
    if len(text) != 42 or not text.isdigit():
        raise ValueError("DE 90 is 42 digits")
    return text[:4], text[4:10], text[10:20], str(int(text[20:31]))
