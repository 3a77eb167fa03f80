"""The hardware boundaries as small protocols (DESIGN §7.1).

The EMV kernel is given a :class:`CardReader`; it never imports pyscard. The real
implementation (pyscard through pcscd) and the card simulator's in-process reader both
implement it, and so does the scripted reader that tests use.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "CardEvent",
    "CardEventKind",
    "CardReader",
    "CardSession",
    "EncryptedPin",
    "OfflinePinPad",
    "PinPad",
    "ResponseApdu",
]


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU (ISO/IEC 7816-4 §5.1): data field and the two status bytes.

    The ``repr`` gives the data's length, never its bytes: a READ RECORD answer carries the
    PAN (5A) and track 2 (57), and reprs end up in logs, tracebacks and test reports.
    """

    data: bytes
    sw1: int
    sw2: int

    def __repr__(self) -> str:
        return f"ResponseApdu(<{len(self.data)} bytes>, sw={self.sw:04X})"

    @property
    def sw(self) -> int:
        """The status word as one integer, e.g. ``0x9000``."""
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000


class CardEventKind(enum.Enum):
    INSERTED = "inserted"
    REMOVED = "removed"
    READER_ADDED = "reader_added"
    READER_REMOVED = "reader_removed"


@dataclass(frozen=True, slots=True)
class CardEvent:
    kind: CardEventKind
    reader: str
    atr: bytes = b""


class CardSession(Protocol):
    """One powered card in one reader; single use: after ``close()`` it refuses to transmit.

    ``transmit`` hands back the final response: the driver has already followed
    ``61xx`` with GET RESPONSE and resent on ``6Cxx`` with the right Le (T=0).
    """

    @property
    def reader(self) -> str: ...

    @property
    def atr(self) -> bytes: ...

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        """The final response; failures raise ``drivers.reader_errors`` leaves
        (``CardRemovedError`` when the card left, ``ReaderGoneError``...)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    """A PC/SC-like reader service: lists readers, waits for cards, opens card sessions."""

    async def list_readers(self) -> list[str]: ...

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        """Wait until a card is present; return the name of the reader that holds it."""
        ...

    async def connect(self, reader: str) -> CardSession:
        """Power the card on (reading its ATR) and open a session on it."""
        ...

    def events(self) -> AsyncIterator[CardEvent]:
        """Insert/remove and reader plug/unplug events, as they happen.

        The stream starts by describing what is there (``READER_ADDED`` per reader, then
        ``INSERTED`` per card present), so a consumer needs no separate initial scan. A
        reader unplugged with its card gives ``REMOVED`` then ``READER_REMOVED``.
        """
        ...


@dataclass(frozen=True, slots=True)
class EncryptedPin:
    """What a PIN pad hands back: the PIN block enciphered under a DUKPT key, and its KSN.

    ``format`` is the ISO 9564-1 PIN block format: 0 (8-byte block, TDES DUKPT, ANSI
    X9.24-1, 10-byte KSN) or 4 (16-byte block, AES DUKPT, ANSI X9.24-3, 12-byte KSN).
    Only the acquirer, holding the BDK, can recover the PIN from it.
    """

    ksn: bytes
    pin_block: bytes
    format: int

    def __post_init__(self) -> None:
        expected = {0: (10, 8), 4: (12, 16)}.get(self.format)
        if expected is None:
            raise ValueError(f"PIN block format must be 0 or 4, not {self.format}")
        if (len(self.ksn), len(self.pin_block)) != expected:
            raise ValueError(
                f"format {self.format} needs a {expected[0]}-byte KSN and a {expected[1]}-byte "
                f"PIN block, got {len(self.ksn)} and {len(self.pin_block)}"
            )

    def __repr__(self) -> str:
        # The block goes to the acquirer and nowhere else (not logs, not tracebacks): PCI
        # treats even an enciphered PIN block as sensitive authentication data.
        return (
            f"EncryptedPin(ksn={self.ksn.hex().upper()}, "
            f"pin_block=<{len(self.pin_block)} bytes>, format={self.format})"
        )

    def as_json(self) -> dict[str, object]:
        """``{"ksn", "pin_block", "format"}`` with upper-case hex, as the CLI prints it."""
        return {
            "ksn": self.ksn.hex().upper(),
            "pin_block": self.pin_block.hex().upper(),
            "format": self.format,
        }


@runtime_checkable
class OfflinePinPad(Protocol):
    """A PIN pad that enciphers the PIN for the card itself (offline enciphered PIN).

    EMV 4.4 Book 2 §7: the pad takes the PIN, builds ``7F ‖ PIN block ‖ challenge ‖
    padding`` and enciphers it with RSA under the ICC's public key; the terminal relays the
    result in VERIFY (P2 ``88``) and never sees the PIN. ``drivers.pinpad.SerialPinPad``
    and the simulator's in-process pad implement it.
    """

    async def encipher_pin_for_card(
        self,
        modulus: bytes,
        exponent: bytes,
        challenge: bytes,
        amount_minor: int,
        currency_numeric: int,
        timeout_s: float = 30.0,
    ) -> bytes:
        """The PIN the cardholder types, enciphered for the card (as long as ``modulus``)."""
        ...


@runtime_checkable
class PinPad(Protocol):
    """A PIN entry device: the clear PIN never leaves it, only an :class:`EncryptedPin`.

    The serial driver (``drivers.pinpad.SerialPinPad``), the in-process fake
    (``drivers.pinpad.FakePinPad``) and the simulator's in-process pad implement it.
    Failures raise ``drivers.errors.PinPadError`` leaves.
    """

    async def get_pin(
        self, pan: str, amount_minor: int, currency_numeric: int, timeout_s: float = 30.0
    ) -> EncryptedPin:
        """Ask the cardholder for the PIN for ``pan`` and this amount; return it enciphered."""
        ...

    async def display(self, text: str) -> None:
        """Show a short message (at most 32 printable ASCII characters) on the pad."""
        ...

    async def cancel(self) -> None:
        """Abort a PIN entry in progress (its ``get_pin`` raises ``PinEntryCancelledError``)."""
        ...

    async def ping(self) -> dict[str, str]:
        """Check the pad answers; return its status (model, key scheme, next KSN...)."""
        ...
