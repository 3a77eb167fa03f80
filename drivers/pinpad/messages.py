"""Application messages of the PIN pad protocol (``drivers/PROTOCOL.md`` §3).

Codes follow the VeriFone PINpad 1000SE where it has one (``Z2`` display, ``Z62`` DUKPT
PIN entry, ``71`` its answer, ``72`` cancel, ``11``/``12`` status, ``90``/``91`` key load).
Offline enciphered PIN (EMV 4.4 Book 2 §7) is this protocol's own: ``Z63`` ICC key parts,
``Z64`` PIN entry enciphered for the card (answer ``73``), ``Z66``/``74`` the block's parts.
Fields are ASCII; binary values (KSN, PIN block, key) travel as upper-case hex; FS
(0x1C) separates variable-length fields.

Both sides use these codecs: the driver encodes requests and decodes answers, the
simulator the reverse. Each ``decode_*`` raises ``ValueError`` on a malformed message
and never echoes the message (it may hold a PAN) in the error.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_PART",
    "BlockPartRequest",
    "BlockPartResponse",
    "CancelRequest",
    "DisplayRequest",
    "IccKeyPartRequest",
    "LoadKeyRequest",
    "LoadKeyResponse",
    "OfflinePinRequest",
    "OfflinePinResponse",
    "PinEntryRequest",
    "PinEntryResponse",
    "PinResult",
    "Request",
    "Response",
    "StatusRequest",
    "StatusResponse",
    "decode_request",
    "decode_response",
]

_FS = "\x1c"
MAX_DISPLAY = 32
#: Bytes per ``Z63`` / ``74`` part: 224 hex digits keep a packet under its 240 bytes.
MAX_PART = 112
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_HEX = re.compile(r"[0-9A-F]*")


def _hex(data: bytes) -> str:
    return data.hex().upper()


def _check_entry(amount_minor: int, currency_numeric: int, timeout_s: int, min_length: int,
                 max_length: int) -> None:
    """What every PIN entry request (online ``Z62``, offline ``Z64``) must hold."""
    if not 0 <= amount_minor <= 999_999_999_999:
        raise ValueError("the amount must be 0 to 999999999999 minor units")
    if not 0 <= currency_numeric <= 999:
        raise ValueError("the currency must be an ISO 4217 numeric code (0-999)")
    if not 1 <= timeout_s <= 300:
        raise ValueError("the PIN entry timeout must be 1 to 300 seconds")
    if not 4 <= min_length <= max_length <= 12:
        raise ValueError("PIN lengths must satisfy 4 <= min <= max <= 12")


def _unhex(text: str, what: str, lengths: tuple[int, ...]) -> bytes:
    if not _HEX.fullmatch(text) or len(text) % 2 or len(text) // 2 not in lengths:
        raise ValueError(f"{what} must be upper-case hex of {' or '.join(map(str, lengths))} bytes")
    return bytes.fromhex(text)


def _digits(text: str, what: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{what} must be decimal digits")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}")
    return value


# --- requests: terminal to PIN pad ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisplayRequest:
    """``Z2<text>``: show up to 32 printable ASCII characters. ACK then EOT, no answer."""

    text: str

    def __post_init__(self) -> None:
        if len(self.text) > MAX_DISPLAY or not _PRINTABLE.fullmatch(self.text):
            raise ValueError(f"display text is at most {MAX_DISPLAY} printable ASCII characters")

    def encode(self) -> bytes:
        return b"Z2" + self.text.encode("ascii")


@dataclass(frozen=True, slots=True)
class PinEntryRequest:
    """``Z62.<PAN>FS<amount>FS<currency>FS<timeout>FS<min><max>``: PIN entry; answer ``71``."""

    pan: str = field(repr=False)
    amount_minor: int
    currency_numeric: int
    timeout_s: int
    min_length: int = 4
    max_length: int = 12

    def __post_init__(self) -> None:
        if not (self.pan.isascii() and self.pan.isdigit() and 13 <= len(self.pan) <= 19):
            raise ValueError("the PAN must be 13 to 19 digits")
        _check_entry(self.amount_minor, self.currency_numeric, self.timeout_s,
                     self.min_length, self.max_length)

    def __repr__(self) -> str:
        return (
            f"PinEntryRequest(pan='{self.pan[:6]}…{self.pan[-4:]}', "
            f"amount_minor={self.amount_minor}, currency_numeric={self.currency_numeric}, "
            f"timeout_s={self.timeout_s})"
        )

    def encode(self) -> bytes:
        return (
            f"Z62.{self.pan}{_FS}{self.amount_minor}{_FS}{self.currency_numeric:03d}{_FS}"
            f"{self.timeout_s:03d}{_FS}{self.min_length:02d}{self.max_length:02d}"
        ).encode("ascii")


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """``72``: abort the PIN entry in progress (it answers ``71.1``). ACK then EOT."""

    def encode(self) -> bytes:
        return b"72"


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """``11``: are you there, and what are you? Answer ``12``."""

    def encode(self) -> bytes:
        return b"11"


@dataclass(frozen=True, slots=True)
class LoadKeyRequest:
    """``90<initial key hex>FS<KSN hex>``: load a *test* DUKPT initial key; answer ``91``.

    TDES DUKPT: 16-byte key, 10-byte KSN. AES DUKPT: 16/24/32-byte key, 12-byte KSN.
    """

    initial_key: bytes = field(repr=False)
    ksn: bytes

    def __post_init__(self) -> None:
        key_lengths = (16,) if len(self.ksn) == 10 else (16, 24, 32)
        if len(self.ksn) not in (10, 12) or len(self.initial_key) not in key_lengths:
            raise ValueError(
                "a 10-byte KSN with a 16-byte TDES key, or a 12-byte KSN with a 16-, 24- or "
                "32-byte AES key, is needed"
            )

    def encode(self) -> bytes:
        return f"90{_hex(self.initial_key)}{_FS}{_hex(self.ksn)}".encode("ascii")


@dataclass(frozen=True, slots=True)
class IccKeyPartRequest:
    """``Z63.<part><parts>FS<hex>``: part of the modulus the next ``Z64`` enciphers under.

    The ICC PIN encipherment public key (or the ICC public key) is too long for one packet,
    so it travels in ``parts`` (1–3) pieces of at most :data:`MAX_PART` bytes, numbered
    from 1. No answer: ACK then EOT. Part 1 starts a new key.
    """

    part: int
    parts: int
    data: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.part <= self.parts <= 3:
            raise ValueError("key parts are numbered 1 to 3, part <= parts")
        if not 1 <= len(self.data) <= MAX_PART:
            raise ValueError(f"a key part is 1 to {MAX_PART} bytes")

    def encode(self) -> bytes:
        return f"Z63.{self.part}{self.parts}{_FS}{_hex(self.data)}".encode("ascii")


@dataclass(frozen=True, slots=True)
class OfflinePinRequest:
    """``Z64.<exponent>FS<challenge>FS<amount>FS<currency>FS<timeout>FS<min><max>``.

    Offline enciphered PIN entry (EMV 4.4 Book 2 §7.2): the pad takes the PIN, builds
    ``7F ‖ PIN block (format 2) ‖ challenge ‖ random padding`` as long as the key loaded by
    ``Z63``, enciphers it with RSA under that key and ``exponent``, and answers ``73``.
    ``challenge`` is the card's 8-byte unpredictable number (GET CHALLENGE).
    """

    exponent: bytes
    challenge: bytes = field(repr=False)
    amount_minor: int
    currency_numeric: int
    timeout_s: int
    min_length: int = 4
    max_length: int = 12

    def __post_init__(self) -> None:
        if self.exponent not in (b"\x03", b"\x01\x00\x01"):
            raise ValueError("the ICC key exponent is 3 or 65537 (Book 2 §7.1)")
        if len(self.challenge) != 8:
            raise ValueError("the ICC challenge is 8 bytes")
        _check_entry(self.amount_minor, self.currency_numeric, self.timeout_s,
                     self.min_length, self.max_length)

    def encode(self) -> bytes:
        return (
            f"Z64.{_hex(self.exponent)}{_FS}{_hex(self.challenge)}{_FS}{self.amount_minor}"
            f"{_FS}{self.currency_numeric:03d}{_FS}{self.timeout_s:03d}{_FS}"
            f"{self.min_length:02d}{self.max_length:02d}"
        ).encode("ascii")


@dataclass(frozen=True, slots=True)
class BlockPartRequest:
    """``Z66.<part>``: send part ``part`` (from 1) of the last enciphered block; answer ``74``."""

    part: int

    def __post_init__(self) -> None:
        if not 1 <= self.part <= 3:
            raise ValueError("block parts are numbered 1 to 3")

    def encode(self) -> bytes:
        return f"Z66.{self.part}".encode("ascii")


Request = (
    DisplayRequest
    | PinEntryRequest
    | CancelRequest
    | StatusRequest
    | LoadKeyRequest
    | IccKeyPartRequest
    | OfflinePinRequest
    | BlockPartRequest
)


def decode_request(message: bytes) -> Request:
    """Parse a request message (the simulator's side)."""
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("a request is ASCII") from None
    if text.startswith("Z62."):
        parts = text[4:].split(_FS)
        if len(parts) != 5 or len(parts[4]) != 4:
            raise ValueError("Z62 needs PAN, amount, currency, timeout and PIN lengths")
        pan, amount, currency, timeout, lengths = parts
        if not (pan.isascii() and pan.isdigit()):
            raise ValueError("the PAN must be digits")
        return PinEntryRequest(
            pan=pan,
            amount_minor=_digits(amount, "amount", 0, 999_999_999_999),
            currency_numeric=_digits(currency, "currency", 0, 999),
            timeout_s=_digits(timeout, "timeout", 1, 300),
            min_length=_digits(lengths[:2], "minimum PIN length", 4, 12),
            max_length=_digits(lengths[2:], "maximum PIN length", 4, 12),
        )
    if text.startswith("Z63."):
        head, sep, data = text[4:].partition(_FS)
        if not sep or len(head) != 2 or not head.isdigit():
            raise ValueError("Z63 needs part, parts and the key part")
        return IccKeyPartRequest(
            int(head[0]), int(head[1]), _unhex(data, "key part", tuple(range(1, MAX_PART + 1)))
        )
    if text.startswith("Z64."):
        parts = text[4:].split(_FS)
        if len(parts) != 6 or len(parts[5]) != 4:
            raise ValueError(
                "Z64 needs exponent, challenge, amount, currency, timeout and PIN lengths"
            )
        exponent, challenge, amount, currency, timeout, lengths = parts
        return OfflinePinRequest(
            exponent=_unhex(exponent, "exponent", (1, 3)),
            challenge=_unhex(challenge, "challenge", (8,)),
            amount_minor=_digits(amount, "amount", 0, 999_999_999_999),
            currency_numeric=_digits(currency, "currency", 0, 999),
            timeout_s=_digits(timeout, "timeout", 1, 300),
            min_length=_digits(lengths[:2], "minimum PIN length", 4, 12),
            max_length=_digits(lengths[2:], "maximum PIN length", 4, 12),
        )
    if text.startswith("Z66."):
        return BlockPartRequest(_digits(text[4:], "block part", 1, 3))
    if text.startswith("Z2"):
        return DisplayRequest(text[2:])
    if text == "72":
        return CancelRequest()
    if text == "11":
        return StatusRequest()
    if text.startswith("90"):
        parts = text[2:].split(_FS)
        if len(parts) != 2:
            raise ValueError("90 needs an initial key and a KSN")
        return LoadKeyRequest(
            initial_key=_unhex(parts[0], "initial key", (16, 24, 32)),
            ksn=_unhex(parts[1], "KSN", (10, 12)),
        )
    raise ValueError("unknown request code")


# --- answers: PIN pad to terminal -------------------------------------------------------


class PinResult(enum.Enum):
    """The result digit of a ``71`` answer."""

    OK = "0"
    CANCELLED = "1"
    TIMEOUT = "2"
    NO_KEY = "3"
    KEY_EXHAUSTED = "4"
    BAD_REQUEST = "5"


@dataclass(frozen=True, slots=True)
class PinEntryResponse:
    """``71.<result>[<format>FS<KSN hex>FS<PIN block hex>]``; the data only when result is 0."""

    result: PinResult
    pin_format: int | None = None
    ksn: bytes = b""
    pin_block: bytes = b""

    def __post_init__(self) -> None:
        if self.result is PinResult.OK:
            sizes = {0: (10, 8), 4: (12, 16)}.get(self.pin_format or 0)
            if self.pin_format not in (0, 4) or sizes != (len(self.ksn), len(self.pin_block)):
                raise ValueError("a format 0 answer has a 10/8-byte KSN/block, format 4 12/16")
        elif self.pin_format is not None or self.ksn or self.pin_block:
            raise ValueError("only a successful PIN entry carries a KSN and PIN block")

    def encode(self) -> bytes:
        text = f"71.{self.result.value}"
        if self.result is PinResult.OK:
            text += f"{self.pin_format}{_FS}{_hex(self.ksn)}{_FS}{_hex(self.pin_block)}"
        return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """``12.<key>=<value>FS...``: model, firmware, key scheme, next KSN."""

    fields: dict[str, str]

    def __post_init__(self) -> None:
        for key, value in self.fields.items():
            if not re.fullmatch(r"[a-z_]+", key) or not _PRINTABLE.fullmatch(value) or "=" in key:
                raise ValueError("status fields are lower-case names and printable values")

    def encode(self) -> bytes:
        return ("12." + _FS.join(f"{k}={v}" for k, v in self.fields.items())).encode("ascii")


@dataclass(frozen=True, slots=True)
class LoadKeyResponse:
    """``91.<0|1>``: the test key was loaded (0) or refused (1)."""

    ok: bool

    def encode(self) -> bytes:
        return b"91.0" if self.ok else b"91.1"


@dataclass(frozen=True, slots=True)
class OfflinePinResponse:
    """``73.<result>[<parts>]``: the offline PIN entry ended; on ``0``, how many ``74`` parts
    the enciphered block has (results as for ``71``; ``5`` also when no key was loaded)."""

    result: PinResult
    parts: int = 0

    def __post_init__(self) -> None:
        if (self.result is PinResult.OK) != (1 <= self.parts <= 3) or not 0 <= self.parts <= 3:
            raise ValueError("only a successful offline PIN entry has 1 to 3 block parts")

    def encode(self) -> bytes:
        tail = str(self.parts) if self.result is PinResult.OK else ""
        return f"73.{self.result.value}{tail}".encode("ascii")


@dataclass(frozen=True, slots=True)
class BlockPartResponse:
    """``74.<part>FS<hex>``: one part of the RSA-enciphered PIN block for the card."""

    part: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.part <= 3 or not 1 <= len(self.data) <= MAX_PART:
            raise ValueError(f"a block part is numbered 1 to 3 and holds 1 to {MAX_PART} bytes")

    def encode(self) -> bytes:
        return f"74.{self.part}{_FS}{_hex(self.data)}".encode("ascii")


Response = (
    PinEntryResponse | StatusResponse | LoadKeyResponse | OfflinePinResponse | BlockPartResponse
)


def decode_response(message: bytes) -> Response:
    """Parse an answer message (the driver's side)."""
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("an answer is ASCII") from None
    if text.startswith("71.") and len(text) >= 4:
        try:
            result = PinResult(text[3])
        except ValueError:
            raise ValueError("unknown PIN entry result") from None
        if result is not PinResult.OK:
            if len(text) != 4:
                raise ValueError("a failed PIN entry carries no data")
            return PinEntryResponse(result)
        parts = text[4:].split(_FS)
        if len(parts) != 3 or parts[0] not in ("0", "4"):
            raise ValueError("71.0 needs format, KSN and PIN block")
        return PinEntryResponse(
            result,
            pin_format=int(parts[0]),
            ksn=_unhex(parts[1], "KSN", (10, 12)),
            pin_block=_unhex(parts[2], "PIN block", (8, 16)),
        )
    if text.startswith("12."):
        fields: dict[str, str] = {}
        for item in text[3:].split(_FS) if len(text) > 3 else []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError("status fields are key=value")
            fields[key] = value
        return StatusResponse(fields)
    if text in ("91.0", "91.1"):
        return LoadKeyResponse(text == "91.0")
    if text.startswith("73.") and len(text) in (4, 5):
        try:
            result = PinResult(text[3])
        except ValueError:
            raise ValueError("unknown PIN entry result") from None
        block_parts = _digits(text[4:], "block parts", 1, 3) if len(text) == 5 else 0
        return OfflinePinResponse(result, block_parts)
    if text.startswith("74."):
        head, sep, data = text[3:].partition(_FS)
        if not sep:
            raise ValueError("74 needs the part number and the data")
        return BlockPartResponse(
            _digits(head, "block part", 1, 3),
            _unhex(data, "block part", tuple(range(1, MAX_PART + 1))),
        )
    raise ValueError("unknown answer code")
