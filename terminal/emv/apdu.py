"""EMV command APDUs (EMV 4.4 Book 3 §6.5) and the kernel's channel to the card.

:class:`CardChannel` wraps a :class:`drivers.base.CardSession`: it maps the driver's errors
to the kernel's (:class:`~terminal.emv.errors.CardRemovedMidTransactionError`,
``ReaderFailureError``) and, should
a reader hand back ``61xx``/``6Cxx`` itself, applies the T=0 rules of Book 1 §9.3.1 (GET
RESPONSE, resend with Le) so the kernel works with such readers too.
"""

from __future__ import annotations

import logging

from drivers.base import CardSession, ResponseApdu
from drivers.errors import DriverError
from drivers.reader_errors import CardRemovedError, NoCardError
from terminal.emv.errors import (
    CardRemovedMidTransactionError,
    CommandTooLongError,
    ReaderFailureError,
)
from terminal.emv.tlv import encode

__all__ = [
    "CardChannel",
    "external_authenticate",
    "generate_ac",
    "get_challenge",
    "get_data",
    "get_processing_options",
    "internal_authenticate",
    "read_record",
    "select",
    "verify_enciphered_pin",
]

log = logging.getLogger(__name__)

_MAX_T0_ROUNDS = 16

#: GENERATE AC reference control parameter P1 (Book 3 §6.5.5, Table 12).
AC_AAC = 0x00
AC_TC = 0x40
AC_ARQC = 0x80
CDA_REQUESTED = 0x10


#: Command data of a short APDU (Lc is one byte, 1–255; Book 1 §9.4).
MAX_COMMAND_DATA = 255


def _case4(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    if len(data) > MAX_COMMAND_DATA:
        raise CommandTooLongError(
            f"command data of {len(data)} bytes does not fit a short APDU "
            f"(at most {MAX_COMMAND_DATA})"
        )
    if not data:
        # No command data is case 2 (CLA INS P1 P2 Le): "Lc = 00" would read as extended
        # length (ISO/IEC 7816-3 §12.1.3), which EMV does not use (Book 1 §9.4).
        return bytes([cla, ins, p1, p2, 0x00])
    return bytes([cla, ins, p1, p2, len(data)]) + data + b"\x00"


def select(name: bytes, *, next_occurrence: bool = False) -> bytes:
    """SELECT by DF name, first or next occurrence (Book 1 §11.3.2)."""
    return _case4(0x00, 0xA4, 0x04, 0x02 if next_occurrence else 0x00, name)


def read_record(sfi: int, record: int) -> bytes:
    """READ RECORD (Book 3 §6.5.11): P2 = SFI << 3 | 100b."""
    if not 1 <= sfi <= 30 or not 1 <= record <= 255:
        raise ValueError(f"bad SFI {sfi} / record {record}")
    return bytes([0x00, 0xB2, record, (sfi << 3) | 0x04, 0x00])


def get_processing_options(pdol_data: bytes) -> bytes:
    """GET PROCESSING OPTIONS with command template 83 (Book 3 §6.5.8).

    The template's length is BER-coded (Annex B2): above 127 bytes it is ``81 xx``.
    """
    return _case4(0x80, 0xA8, 0x00, 0x00, encode(0x83, pdol_data))


def generate_ac(p1: int, cdol_data: bytes) -> bytes:
    """GENERATE APPLICATION CRYPTOGRAM (Book 3 §6.5.5)."""
    return _case4(0x80, 0xAE, p1, 0x00, cdol_data)


def internal_authenticate(ddol_data: bytes) -> bytes:
    """INTERNAL AUTHENTICATE (Book 3 §6.5.9)."""
    return _case4(0x00, 0x88, 0x00, 0x00, ddol_data)


def external_authenticate(issuer_auth_data: bytes) -> bytes:
    """EXTERNAL AUTHENTICATE (Book 3 §6.5.4), case 3."""
    if not 8 <= len(issuer_auth_data) <= 16:
        raise ValueError("issuer authentication data is 8 to 16 bytes")
    return bytes([0x00, 0x82, 0x00, 0x00, len(issuer_auth_data)]) + issuer_auth_data


def get_data(tag: int) -> bytes:
    """GET DATA for ATC (9F36), last online ATC (9F13), PIN try counter (9F17)… (§6.5.7)."""
    return bytes([0x80, 0xCA, tag >> 8, tag & 0xFF, 0x00])


def get_challenge() -> bytes:
    return bytes([0x00, 0x84, 0x00, 0x00, 0x00])


def verify_enciphered_pin(enciphered: bytes) -> bytes:
    """VERIFY with an enciphered PIN, P2 ``88`` (Book 3 §6.5.12), case 3 (no Le)."""
    if not 1 <= len(enciphered) <= 255:
        raise ValueError(f"an enciphered PIN of {len(enciphered)} bytes does not fit VERIFY")
    return bytes([0x00, 0x20, 0x00, 0x88, len(enciphered)]) + enciphered


class CardChannel:
    """The kernel's side of a card session: error mapping, T=0 robustness, APDU trace.

    The trace (``log`` at DEBUG) shows the command header and status words only: command
    and response data may hold the PAN or track 2.
    """

    def __init__(self, session: CardSession) -> None:
        self.session = session
        self.exchanges = 0

    async def _raw(self, apdu: bytes) -> ResponseApdu:
        try:
            response = await self.session.transmit(apdu)
        except DriverError as exc:
            if isinstance(exc, CardRemovedError | NoCardError):
                raise CardRemovedMidTransactionError(
                    "the card was removed during the transaction; insert it again",
                    reader=getattr(exc, "reader", None),
                ) from exc
            raise ReaderFailureError(
                f"the card reader failed: {exc.message}", reader=getattr(exc, "reader", None)
            ) from exc
        self.exchanges += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("apdu %s -> %02X%02X", apdu[:4].hex().upper(), response.sw1, response.sw2)
        return response

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        """Send ``apdu``; follow 61xx/6Cxx if the reader did not (Book 1 §9.3.1.3)."""
        response = await self._raw(apdu)
        data = b""
        for _ in range(_MAX_T0_ROUNDS):
            if response.sw1 == 0x6C and len(apdu) >= 5:
                resent = apdu[:4] + bytes([response.sw2]) if len(apdu) == 5 else (
                    apdu[:-1] + bytes([response.sw2])
                )
                response = await self._raw(resent)
                continue
            if response.sw1 == 0x61:
                data += response.data
                response = await self._raw(bytes([0x00, 0xC0, 0x00, 0x00, response.sw2]))
                continue
            break
        else:
            raise ReaderFailureError("the card keeps answering 61xx/6Cxx; it is not usable")
        if data:
            return ResponseApdu(data + response.data, response.sw1, response.sw2)
        return response
