"""Command APDUs and the T=0 response rules every card session applies.

A card on T=0 cannot send data with a case 4 command in one exchange, and may ask for the
command again with the right Le. ISO/IEC 7816-4 §5.3.4 and EMV 4.4 Book 1 §9.3.1 (GET
RESPONSE, procedure bytes) define the rules; :meth:`T0Session.transmit` applies them so
that the kernel only ever sees the final response:

* ``61xx``: xx more bytes are waiting; send GET RESPONSE (``00 C0 00 00 xx``) and append
  its data, repeating while the card says ``61xx``;
* ``6Cxx``: wrong Le; send the same command again with Le = xx (the answer to the wrong
  Le carries no data);
* ``62xx``/``63xx`` with no data to a case 4 command: a warning, and a T=0 card cannot send
  the data with it; send GET RESPONSE with Le = ``00`` and return its data with the
  *warning* status word (EMV Contact Interface Specification, Annex A, case 4 with warning).

The rules are written once, as the generator :func:`t0_rounds`, which yields each command
to send and receives each raw response. Every session (pyscard, the scripted reader, the
in-process card simulator) subclasses :class:`T0Session`: async sessions implement
:meth:`T0Session._transmit_raw`; the PC/SC session drives the same generator synchronously
inside its I/O thread (one thread hop per APDU, GET RESPONSEs included). So the rules are
tested once against the scripted reader and hold for all of them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator

from drivers.base import ResponseApdu
from drivers.reader_errors import CardProtocolError

__all__ = [
    "MAX_T0_ROUNDS",
    "T0Session",
    "apdu_case",
    "exchange_sync",
    "get_response",
    "t0_rounds",
    "with_le",
]

#: Exchanges one ``transmit`` may take; a card that keeps asking beyond this is broken.
MAX_T0_ROUNDS = 32


def apdu_case(apdu: bytes) -> int:
    """ISO/IEC 7816-3 §12.1 case (1–4) of a short command APDU; ``ValueError`` if malformed."""
    if len(apdu) < 4:
        raise ValueError(f"a command APDU has at least 4 bytes, got {len(apdu)}")
    if len(apdu) == 4:
        return 1
    if len(apdu) == 5:
        return 2
    lc = apdu[4]
    if lc == 0:
        raise ValueError("extended-length APDUs are not used by EMV and not supported")
    if len(apdu) == 5 + lc:
        return 3
    if len(apdu) == 6 + lc:
        return 4
    raise ValueError(f"command APDU length {len(apdu)} does not match its Lc {lc}")


def with_le(apdu: bytes, le: int) -> bytes:
    """The same command with its Le set to ``le`` (added to a case 1/3 command)."""
    case = apdu_case(apdu)
    if case in (2, 4):
        return apdu[:-1] + bytes([le])
    return apdu + bytes([le])


def get_response(le: int) -> bytes:
    """GET RESPONSE for ``le`` bytes (EMV 4.4 Book 3 §6.5.6 names it; class ``00``)."""
    return bytes([0x00, 0xC0, 0x00, 0x00, le])


def t0_rounds(apdu: bytes, reader: str) -> Generator[bytes, ResponseApdu, ResponseApdu]:
    """The T=0 rules as a dialogue: yields each command to send, receives its raw answer.

    Returns the final response (data of every ``61xx`` round concatenated); raises
    :class:`CardProtocolError` when the card keeps asking beyond :data:`MAX_T0_ROUNDS`.
    """
    command = apdu
    collected = bytearray()
    warning: ResponseApdu | None = None
    case4 = apdu_case(apdu) == 4
    for _ in range(MAX_T0_ROUNDS):
        response = yield command
        if response.sw1 == 0x6C:
            command = with_le(command, response.sw2)
            continue
        if warning is not None and not response.data and response.sw1 not in (0x61, 0x90):
            # GET RESPONSE after a warning found nothing: the warning alone is the answer.
            return ResponseApdu(bytes(collected), warning.sw1, warning.sw2)
        collected += response.data
        if response.sw1 == 0x61:
            command = get_response(response.sw2)
            continue
        if (case4 and warning is None and not collected and response.sw1 in (0x62, 0x63)):
            warning = response
            command = get_response(0x00)
            continue
        if warning is not None:
            return ResponseApdu(bytes(collected), warning.sw1, warning.sw2)
        return ResponseApdu(bytes(collected), response.sw1, response.sw2)
    raise CardProtocolError(
        f"the card kept answering 61xx/6Cxx after {MAX_T0_ROUNDS} exchanges; "
        "it cannot be used",
        reader=reader,
        ins=apdu[1],
    )


def exchange_sync(
    send: Callable[[bytes], ResponseApdu], apdu: bytes, reader: str
) -> ResponseApdu:
    """Drive :func:`t0_rounds` with a blocking ``send``; for sessions that own a thread."""
    # Nearly every answer is final (no 61xx, 6Cxx or case 4 warning): t0_rounds would
    # hand it back unchanged, so skip building the generator and copying the response.
    response = send(apdu)
    if response.sw1 not in _T0_PROCEDURE:
        return response
    rounds = t0_rounds(apdu, reader)
    next(rounds)
    while True:
        try:
            command = rounds.send(response)
        except StopIteration as done:
            final: ResponseApdu = done.value
            return final
        response = send(command)


#: First status bytes after which :func:`t0_rounds` does more than return the answer.
_T0_PROCEDURE = frozenset({0x61, 0x6C, 0x62, 0x63})


class T0Session(abc.ABC):
    """A single-use card session; subclasses provide one raw exchange and the close."""

    def __init__(self, reader: str, atr: bytes) -> None:
        self._reader = reader
        self._atr = atr
        self._closed = False

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_command(self, apdu: bytes) -> bytes:
        if self._closed:
            raise RuntimeError("this card session is closed; connect again for a new one")
        if not isinstance(apdu, bytes | bytearray):
            raise TypeError(f"an APDU is bytes, not {type(apdu).__name__}")
        apdu_case(bytes(apdu))
        return bytes(apdu)

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        """Send one command APDU; return the final response after the T=0 rules."""
        rounds = t0_rounds(self._check_command(apdu), self._reader)
        command = next(rounds)
        while True:
            response = await self._transmit_raw(command)
            try:
                command = rounds.send(response)
            except StopIteration as done:
                final: ResponseApdu = done.value
                return final

    async def close(self) -> None:
        """Power the card off and end the session; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        await self._close()

    @abc.abstractmethod
    async def _transmit_raw(self, command: bytes) -> ResponseApdu:
        """One command APDU to the card and its response, with no T=0 handling."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Power off / disconnect."""
