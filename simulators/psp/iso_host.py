"""The simulated ISO 8583 acquirer host: asyncio TCP, 2-byte length prefix, optional TLS.

It speaks the Étika acquirer profile (:mod:`edge_sync.connectors.iso8583_spec`, decoded
by pyiso8583) and hands decisions to an :class:`~simulators.psp.acquirer.Acquirer`:

======  ===================================================================
MTI     what the host does
======  ===================================================================
0100    authorisation only: hold (answer 0110)
0200    sale (processing code 00) or refund (20, original in DE 90) (0210)
0220/1  completion of a 0100 (DE 90 present) or advice of an offline sale (0230)
0400/1  reversal of the original in DE 90 (0410; ``25`` if never seen)
0600    status enquiry: the original's code, or ``25`` (0610)
0800    echo test, DE 70 = 301 (0810)
======  ===================================================================

Requests are deduplicated twice: by idempotency key (DE 48 tag 01) in the acquirer, and by
(terminal, MTI class, STAN, DE 7) here, so a repeated frame gets the very same answer. A
frame that does not decode is dropped with the connection (there is no STAN to answer to);
a frame that decodes but lacks a mandatory field is answered ``30`` (format error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
from typing import Any, BinaryIO

import iso8583

from edge_sync.connectors.iso8583_mac import MacError, MessageAuthenticator, placeholder, seal
from edge_sync.connectors.iso8583_mac import check as check_mac
from edge_sync.connectors.iso8583_spec import (
    DE48_IDEMPOTENCY_KEY,
    DE48_REPLAYED,
    MTI_RESPONSE,
    decode,
    decode_de48,
    decode_de90,
    encode,
    encode_de48,
    frame,
)
from simulators.psp.acquirer import Acquirer, Decision, EntryKind
from simulators.psp.faults import Faults
from terminal.emv import tlv

__all__ = ["Iso8583Host"]

log = logging.getLogger(__name__)

_ECHOED = ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49")


#: Marks a request whose MAC failed (a key no ISO 8583 field uses).
_MAC_REFUSED = "mac_refused"


class _FormatError(Exception):
    pass


class Iso8583Host:
    """One acquirer host on ``host:port`` (port 0: a free one, see :attr:`port`)."""

    def __init__(self, acquirer: Acquirer, faults: Faults | None = None, *,
                 host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None,
                 mac: MessageAuthenticator | None = None,
                 capture: BinaryIO | None = None) -> None:
        self.acquirer = acquirer
        #: The terminal's MAC key (DE 64/128): requests must carry a valid MAC (else the
        #: answer is 63, security violation, and nothing is processed); answers carry one.
        self.mac = mac
        #: Every frame received, as received (length prefix and body), appended here when
        #: given: the card data leak scan reads the wire (``etika sim psp --capture FILE``).
        self.capture = capture
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._answers: dict[tuple[str, str, str, str], dict[str, str]] = {}
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        #: (terminal, STAN, DE 7) of each financial request → its idempotency key, so that
        #: DE 90 of a reversal, completion or refund finds the original.
        self._originals: dict[tuple[str, str, str], str] = {}
        #: Every request the host received, decoded (tests inspect what went on the wire).
        self.received: list[dict[str, str]] = []

    async def start(self, *, sock: socket.socket | None = None) -> int:
        """Listen on ``host:port`` (0: any free port), or on ``sock``, already bound by the
        caller; returns the port."""
        if sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=sock, ssl=self._ssl)
        else:
            self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                      ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ISO 8583 host listening on %s:%d", self.host, self.port)
        return self.port

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            # Let each handler see its closed stream and return, so none is left to be
            # cancelled by the loop's shutdown (3.11 logs those as errors).
            await asyncio.gather(*self._handlers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Iso8583Host:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connection --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        lock = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    (length,) = struct.unpack(">H", await reader.readexactly(2))
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if self.capture is not None:
                    self.capture.write(struct.pack(">H", length) + body)
                    self.capture.flush()
                try:
                    fields = decode(body)
                except (iso8583.DecodeError, ValueError) as exc:
                    log.warning("undecodable request, closing the connection: %s", exc)
                    return
                self.received.append(fields)
                if self.mac is not None:
                    try:
                        check_mac(body, fields, self.mac)
                    except MacError as exc:
                        log.warning("refusing STAN %s: %s", fields.get("11"), exc)
                        fields = {**fields, _MAC_REFUSED: str(exc)}
                if self.faults.take("drop"):
                    log.info("fault: dropping the connection on STAN %s", fields.get("11"))
                    return
                task = asyncio.create_task(self._answer(fields, writer, lock))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self._connections.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            for task in tasks:
                task.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _refusal(self, fields: dict[str, str]) -> dict[str, str]:
        """ISO 8583 63 "security violation": the request was not processed."""
        answer = {"t": MTI_RESPONSE.get(fields.get("t", ""), "0810"), "39": "63",
                  "44": "MAC DOES NOT VERIFY"}
        for de in ("3", "4", "7", "11", "37", "41", "42", "48", "49"):
            if de in fields:
                answer[de] = fields[de]
        return answer

    def _encode(self, answer: dict[str, str]) -> bytes:
        if self.mac is None:
            return encode(answer)
        sealed = seal(encode(placeholder(answer)), self.mac)
        if self.faults.take("bad_mac"):
            sealed = sealed[:-1] + (b"0" if sealed[-1:] != b"0" else b"1")
        return sealed

    async def _answer(self, fields: dict[str, str], writer: asyncio.StreamWriter,
                      lock: asyncio.Lock) -> None:
        answer = self._refusal(fields) if _MAC_REFUSED in fields else self.handle(fields)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.take("timeout"):
            log.info("fault: never answering STAN %s", fields.get("11"))
            return
        if self.faults.take("drop_after"):
            log.info("fault: processed STAN %s, dropping the connection", fields.get("11"))
            writer.close()
            return
        raw = self._encode(answer)
        async with lock:
            if self.faults.take("malformed"):
                writer.write(frame(b"\x00garbage" + os.urandom(8)))
            elif self.faults.take("truncated"):
                writer.write(frame(raw)[: 2 + len(raw) // 2])
                await writer.drain()
                writer.close()
                return
            else:
                writer.write(frame(raw))
                if self.faults.take("duplicate"):
                    writer.write(frame(raw))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # --- messages ----------------------------------------------------------------------

    def handle(self, fields: dict[str, str]) -> dict[str, str]:
        """The answer to one decoded request (pure apart from the acquirer's ledger)."""
        mti = fields.get("t", "")
        dedup = (fields.get("41", ""), mti[:3], fields.get("11", ""), fields.get("7", ""))
        previous = self._answers.get(dedup)
        if previous is not None:
            return _mark_replayed(previous)
        try:
            answer = self._dispatch(mti, fields)
        except _FormatError as exc:
            answer = _base(fields, MTI_RESPONSE.get(mti, "0810"))
            answer.update({"39": "30", "44": str(exc)[:25]})
        self._answers[dedup] = answer
        return answer

    def _dispatch(self, mti: str, fields: dict[str, str]) -> dict[str, str]:
        if mti not in MTI_RESPONSE:
            raise _FormatError(f"MTI {mti} NOT SUPPORTED")
        answer = _base(fields, MTI_RESPONSE[mti])
        if mti == "0800":
            answer["39"] = "00" if fields.get("70") == "301" else "12"
            answer["70"] = fields.get("70", "")
            return answer
        key = _require_key(fields)
        processing = fields.get("3", "")
        if mti in ("0100", "0200", "0220", "0221") and "90" not in fields:
            self._originals[(fields.get("41", ""), fields.get("11", ""),
                             fields.get("7", ""))] = key
        decision: Decision
        if mti == "0100" or (mti == "0200" and processing.startswith("00")):
            decision = self._authorise(fields, key, EntryKind.AUTH if mti == "0100"
                                       else EntryKind.SALE)
        elif mti == "0200" and processing.startswith("20"):
            original = self._original_key(fields)
            decision = self.acquirer.refund(original, key, _amount(fields))
        elif mti in ("0220", "0221") and "90" in fields:
            decision = self.acquirer.complete(self._original_key(fields), _amount(fields))
        elif mti in ("0220", "0221"):
            decision = self._authorise(fields, key, EntryKind.ADVICE)
        elif mti in ("0400", "0401"):
            decision = self.acquirer.reverse(self._original_key(fields))
        elif mti == "0600":
            decision = self.acquirer.status(self._original_key(fields))
        else:
            raise _FormatError(f"PROCESSING {processing} NOT SUPPORTED")
        answer["39"] = decision.code
        answer["44"] = decision.reason[:25]
        answer["48"] = encode_de48({DE48_IDEMPOTENCY_KEY: key,
                                    **({DE48_REPLAYED: "1"} if decision.replayed else {})})
        if decision.approval_code:
            answer["38"] = decision.approval_code
        if decision.issuer_auth_data:
            iad = decision.issuer_auth_data
            if self.faults.take("bad_arpc"):
                # An ARPC the card will not verify: it answers AAC to GENERATE AC 2 after
                # the issuer approved (the payment manager must reverse the approval).
                iad = bytes([iad[0] ^ 0xFF]) + iad[1:]
            answer["55"] = tlv.encode(0x91, iad).hex().upper()
        return answer

    def _original_key(self, fields: dict[str, str]) -> str:
        """The original's idempotency key, found by DE 90 (STAN and DE 7 of the original);
        a reversal or completion that names it in DE 48 is believed when DE 90 finds none."""
        try:
            _, stan, transmitted, _ = decode_de90(fields["90"])
        except (KeyError, ValueError) as exc:
            raise _FormatError("DE 90 MISSING OR BAD") from exc
        found = self._originals.get((fields.get("41", ""), stan, transmitted))
        if found is not None:
            return found
        if fields.get("3", "").startswith("20"):
            return ""  # a refund's own key is not its original's: not found (25)
        return _require_key(fields)

    def _authorise(self, fields: dict[str, str], key: str, kind: EntryKind) -> Decision:
        try:
            envelope = bytes.fromhex(fields["125"])
        except (KeyError, ValueError) as exc:
            raise _FormatError("DE 125 P2PE MISSING") from exc
        icc: dict[int, bytes] = {}
        if fields.get("55"):
            try:
                icc = tlv.flatten(tlv.decode(bytes.fromhex(fields["55"])))
            except ValueError as exc:  # TlvError is a ValueError
                raise _FormatError("DE 55 NOT BER-TLV") from exc
        pin_block = bytes.fromhex(fields["52"]) if fields.get("52") else None
        ksn = bytes.fromhex(fields["53"]) if fields.get("53") else None
        if (pin_block is None) != (ksn is None):
            raise _FormatError("DE 52 WITHOUT DE 53")
        psn = int(fields["23"]) if fields.get("23", "").isdigit() else None
        forced = self.faults.take_decline() if kind is not EntryKind.ADVICE else None
        return self.acquirer.authorise(
            key, envelope, _amount(fields), fields.get("49", ""), kind=kind, icc=icc,
            psn=psn, pin_block=pin_block, ksn=ksn, forced_code=forced,
        )


def _require_key(fields: dict[str, str]) -> str:
    try:
        key = decode_de48(fields.get("48", "")).get(DE48_IDEMPOTENCY_KEY)
    except ValueError as exc:
        raise _FormatError("DE 48 MALFORMED") from exc
    if not key:
        raise _FormatError("DE 48 KEY MISSING")
    return key


def _amount(fields: dict[str, str]) -> int:
    value = fields.get("4", "")
    if len(value) != 12 or not value.isdigit():
        raise _FormatError("DE 4 MISSING OR BAD")
    return int(value)


def _base(fields: dict[str, str], mti: str) -> dict[str, Any]:
    answer = {"t": mti}
    answer.update({k: fields[k] for k in _ECHOED if k in fields})
    return answer


def _mark_replayed(answer: dict[str, str]) -> dict[str, str]:
    again = dict(answer)
    if "48" in again:
        elements = decode_de48(again["48"])
        elements[DE48_REPLAYED] = "1"
        again["48"] = encode_de48(elements)
    return again
