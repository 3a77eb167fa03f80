"""The PoP back-end stand-in's HTTP(S) service: a small asyncio HTTP/1.1 server.

A hand-written server rather than uvicorn because the faults it must play act below the
framework: never answering a processed request, closing mid-request, or writing one answer
twice on a kept-alive connection. Routes (JSON in and out; record routes per
:mod:`edge_sync.pop`)::

    POST /v1/pop/terminals/{tid}/records                    submit a signed record
    POST /v1/pop/terminals/{tid}/records/{rid}/cancel       cancel (signed)
    POST /v1/pop/terminals/{tid}/records/{rid}/status       status (signed)
    GET  /ledger/summary                                    counts and sums per currency/status
    GET  /ledger/records                                    every record and its status
    GET  /ledger/verify                                     recompute the hash chain
    POST /v1/admin/terminals                                register a terminal public key
    POST /v1/admin/faults                                   {"spec": "..."} replace the faults
    POST /v1/token-system/activations                       record a token-activation event
    GET  /v1/token-system/activations                       the events received

Every signed request is checked in this order: JSON shape, ``audience`` is this back end's
(else ``redirected``), ``terminal_id`` matches the path and the record (``redirected``), the
key ``(terminal_id, key_version)`` is registered (``unknown_terminal``), the signature holds
(``bad_signature``), ``sent_at`` is within ``max_skew_s`` of now (``stale_request``); then the
ledger's rules. Each refusal is counted (``/ledger/summary`` ``refused``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from edge_sync.errors import PopRecordError, SignatureError
from edge_sync.messages import canonical_json
from edge_sync.pop import DEFAULT_AUDIENCE, MAX_BODY_BYTES, POP_PROTOCOL_VERSION, PopRecord
from edge_sync.signing import verify_signature
from simulators.pop.errors import PopFaultSpecError, PopKeyFileError
from simulators.pop.faults import PopFaults, parse_faults
from simulators.pop.keys import KeyRegistry
from simulators.pop.ledger import PopLedger, Refusal
from simulators.token_system.store import ActivationLog, ActivationRefusedError

__all__ = ["PopServer"]

_RECORDS = re.compile(r"^/v1/pop/terminals/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/records"
                      r"(?:/([0-9a-fA-F-]{36})/(cancel|status))?$")
_MAX_HEADER_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            411: "Length Required", 413: "Payload Too Large", 422: "Unprocessable Entity",
            503: "Service Unavailable"}


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Drop(Exception):
    """Close the connection without answering (the ``drop`` fault)."""


class PopServer:
    """One stand-in: a ledger, its key registry, its token-activation log, its faults."""

    def __init__(self, ledger: PopLedger, *, faults: PopFaults | None = None,
                 audience: str = DEFAULT_AUDIENCE, max_skew_s: float = 300.0,
                 capture: BinaryIO | None = None) -> None:
        self.ledger = ledger
        #: Every request as received (head and body), appended here when given: the card
        #: data leak scan reads what went over the wire (``etika sim pop --capture FILE``).
        self.capture = capture
        self.keys = KeyRegistry(ledger.connection)
        self.activations = ActivationLog(ledger.connection)
        self.faults = faults or PopFaults()
        self.audience = audience
        self.max_skew_s = max_skew_s
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
                    ) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._connection, host, port,
                                                  ssl=ssl_context, limit=_MAX_HEADER_BYTES)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("start() the server first")
        async with self._server:
            await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # idle kept-alive connections end at once
            writer.close()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not self._stop.is_set():
                try:
                    request = await self._read(reader)
                except _HttpError as exc:
                    writer.write(_response(exc.status, {"error": "bad_request",
                                                        "reason": exc.reason}, close=True))
                    await writer.drain()
                    break
                if request is None:
                    break
                try:
                    status, answer, twice = await self._route(request)
                except _Drop:
                    break
                data = _response(status, answer)
                writer.write(data + data if twice else data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the loop is shutting down: this connection simply ends
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _HttpError(400, "incomplete request head") from None
            return None
        except asyncio.LimitOverrunError:
            raise _HttpError(413, "request head too large") from None
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
        except ValueError:
            raise _HttpError(400, "malformed request line") from None
        if "transfer-encoding" in headers:
            raise _HttpError(411, "send a Content-Length body, not chunked")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _HttpError(400, "bad Content-Length") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise _HttpError(413, f"body above {MAX_BODY_BYTES} bytes")
        body = await reader.readexactly(length) if length else b""
        if self.capture is not None:
            self.capture.write(head + body + b"\n")
            self.capture.flush()
        return _Request(method.upper(), target.split("?", 1)[0], headers, body)

    async def _route(self, request: _Request) -> tuple[int, dict[str, Any], bool]:
        match = _RECORDS.match(request.path)
        if match is not None:
            if request.method != "POST":
                return 405, {"error": "method", "reason": "POST only"}, False
            return await self._pop_route(request, match.group(1), match.group(2),
                                         match.group(3) or "submit")
        handler = {
            ("GET", "/ledger/summary"): self._summary,
            ("GET", "/ledger/records"): self._records,
            ("GET", "/ledger/verify"): self._verify,
            ("POST", "/v1/admin/terminals"): self._register,
            ("POST", "/v1/admin/faults"): self._set_faults,
            ("POST", "/v1/token-system/activations"): self._activation,
            ("GET", "/v1/token-system/activations"): self._activations,
            ("GET", "/health"): self._health,
        }.get((request.method, request.path))
        if handler is None:
            return 404, {"error": "not_found", "reason": f"no route {request.path}"}, False
        status, answer = handler(request)
        return status, answer, False

    # --- PoP record routes (with faults) ---------------------------------------------------

    async def _pop_route(self, request: _Request, terminal_id: str, record_id: str | None,
                         op: str) -> tuple[int, dict[str, Any], bool]:
        faults = self.faults
        if faults.take("drop"):
            raise _Drop
        if faults.take("error"):
            return 503, {"error": "unavailable", "reason": "injected fault: error"}, False
        status, answer = self._pop(request, terminal_id, record_id, op)
        if faults.take("timeout"):
            await self._stop.wait()  # processed, never answered
            raise _Drop
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        return status, answer, faults.take("twice")

    def _pop(self, request: _Request, terminal_id: str, record_id: str | None,
             op: str) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            return self._refused(Refusal("malformed", "the body is not JSON", 400))
        refusal = self._authenticate(body, terminal_id, op)
        if refusal is not None:
            return self._refused(refusal)
        if op == "submit":
            return self._submit(body, terminal_id)
        try:
            rid = uuid.UUID(str(body.get("record_id")))
        except ValueError:
            return self._refused(Refusal("malformed", "record_id is not a UUID", 422))
        if str(rid) != str(uuid.UUID(record_id or "")):
            return self._refused(Refusal("redirected", "record_id differs from the path", 403))
        if op == "cancel":
            reason = body.get("reason")
            if not isinstance(reason, str) or not 0 < len(reason) <= 200:
                return self._refused(Refusal("malformed", "a cancel needs a reason", 422))
            return 200, self.ledger.cancel(rid, reason).as_dict()
        receipt = self.ledger.status(rid)
        if receipt is None:
            return 404, {"error": "unknown_record", "reason": f"no record {rid}"}
        return 200, receipt.as_dict()

    def _submit(self, body: dict[str, Any], terminal_id: str) -> tuple[int, dict[str, Any]]:
        try:
            record = PopRecord.from_payload(body.get("record"))
        except PopRecordError as exc:
            return self._refused(Refusal("malformed", str(exc), 422))
        if record.terminal_id != terminal_id:
            return self._refused(Refusal("redirected", f"record of terminal "
                                         f"{record.terminal_id} sent by {terminal_id}", 403))
        if self.ledger.is_new(record) and self.faults.take("reject"):
            return 200, self.ledger.reject_next(record, "injected fault: reject").as_dict()
        result = self.ledger.submit(record)
        if isinstance(result, Refusal):
            return result.http_status, {"error": result.code, "reason": result.reason}
        return 200, result.as_dict()

    def _authenticate(self, body: Any, terminal_id: str, op: str) -> Refusal | None:
        if not isinstance(body, dict) or body.get("v") != POP_PROTOCOL_VERSION:
            return Refusal("malformed", "not a version 1 PoP request object", 400)
        if body.get("op") != op:
            return Refusal("malformed", f"op {str(body.get('op'))[:20]!r} on the {op} route",
                           400)
        if body.get("audience") != self.audience:
            return Refusal("redirected", f"signed for {str(body.get('audience'))[:64]!r}, "
                           f"this is {self.audience!r}", 403)
        if body.get("terminal_id") != terminal_id:
            return Refusal("redirected", "terminal_id differs from the path", 403)
        version = body.get("key_version")
        if not isinstance(version, int) or isinstance(version, bool):
            return Refusal("malformed", "key_version must be an int", 400)
        pem = self.keys.lookup(terminal_id, version)
        if pem is None:
            return Refusal("unknown_terminal", f"no key {version} registered for terminal "
                           f"{terminal_id}", 401)
        try:
            signature = base64.b64decode(str(body.get("signature", "")), validate=True)
            verify_signature(pem, canonical_json(body), signature)
        except (binascii.Error, ValueError, SignatureError):
            return Refusal("bad_signature", "the signature does not verify against the "
                           "terminal's registered key", 401)
        try:
            sent = datetime.fromisoformat(str(body.get("sent_at"))).timestamp()
        except ValueError:
            return Refusal("malformed", "sent_at is not an ISO 8601 timestamp", 400)
        if abs(time.time() - sent) > self.max_skew_s:
            return Refusal("stale_request", f"sent_at is more than {self.max_skew_s:g} s "
                           "from now (replayed request?)", 401)
        return None

    def _refused(self, refusal: Refusal) -> tuple[int, dict[str, Any]]:
        self.ledger.count_refusal(refusal.code)
        return refusal.http_status, {"error": refusal.code, "reason": refusal.reason}

    # --- ledger, admin and token-system routes ------------------------------------------------

    def _summary(self, _: _Request) -> tuple[int, dict[str, Any]]:
        return 200, self.ledger.summary()

    def _records(self, _: _Request) -> tuple[int, dict[str, Any]]:
        return 200, {"records": self.ledger.records()}

    def _verify(self, _: _Request) -> tuple[int, dict[str, Any]]:
        from simulators.pop.errors import PopLedgerError

        try:
            return 200, {"ok": True, "entries": self.ledger.verify_chain()}
        except PopLedgerError as exc:
            return 200, {"ok": False, "reason": str(exc)}

    def _health(self, _: _Request) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "audience": self.audience}

    def _register(self, request: _Request) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(request.body)
            terminal_id = str(body["terminal_id"])
            version = int(body.get("key_version", 1))
            self.keys.register_pem(terminal_id, str(body["public_key_pem"]), version)
        except (ValueError, KeyError, TypeError, PopKeyFileError) as exc:
            return 400, {"error": "bad_key", "reason": str(exc)[:300]}
        return 200, {"registered": terminal_id, "key_version": version}

    def _set_faults(self, request: _Request) -> tuple[int, dict[str, Any]]:
        try:
            spec = json.loads(request.body).get("spec", "")
            self.faults = parse_faults(str(spec))
        except (ValueError, AttributeError, PopFaultSpecError) as exc:
            return 400, {"error": "bad_faults", "reason": str(exc)[:300]}
        return 200, {"faults": self.faults.as_dict()}

    def _activation(self, request: _Request) -> tuple[int, dict[str, Any]]:
        try:
            outcome = self.activations.record(json.loads(request.body))
        except (ValueError, ActivationRefusedError) as exc:
            return 422, {"error": "refused", "reason": str(exc)[:300]}
        return 200, {"status": outcome}

    def _activations(self, _: _Request) -> tuple[int, dict[str, Any]]:
        return 200, {"events": self.activations.events()}


class _HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _response(status: int, answer: dict[str, Any], *, close: bool = False) -> bytes:
    body = json.dumps(answer, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode("ascii") + body
