"""A side HTTP port for the ISO 8583 host (``etika sim psp --control-port N``).

The acquirer keeps its ledger in memory, so a test that reconciles the terminal against the
PSP (the chaos suite) asks the running process for it, and changes its faults without a
restart (a restart would lose the ledger)::

    GET  /ledger/summary      every ledger entry (idempotency key, kind, state, amounts) and
                              counts and sums per currency and state; no card data (entries
                              are keyed by the terminal's transaction UUID); see
                              :mod:`simulators.psp.ledger_view` (the REST gateways serve
                              the same document on their own port)
    POST /v1/admin/faults     {"spec": "timeout=1,latency=0.5"} replaces the faults
                              (the ``--faults`` syntax; "" clears them)

Plain HTTP/1.1 on loopback, one request per connection, JSON in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from simulators.psp.errors import FaultSpecError
from simulators.psp.faults import parse_faults
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.ledger_view import ledger_summary

__all__ = ["ControlServer", "ledger_summary"]

_MAX_BODY = 64 * 1024


class ControlServer:
    """The control port of one :class:`Iso8583Host` (see the module docstring)."""

    def __init__(self, host_sim: Iso8583Host, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host_sim = host_sim
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, answer = await self._handle(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, UnicodeDecodeError):
            status, answer = 400, {"error": "bad_request"}
        body = json.dumps(answer).encode()
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + body)
            await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("ascii").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if not 0 <= length <= _MAX_BODY:
            return 413, {"error": "too_large"}
        body = await reader.readexactly(length) if length else b""
        if (method, path) == ("GET", "/ledger/summary"):
            return 200, ledger_summary(self.host_sim.acquirer)
        if (method, path) == ("POST", "/v1/admin/faults"):
            spec = json.loads(body or b"{}").get("spec", "")
            try:
                self.host_sim.faults = parse_faults(str(spec) or None)
            except FaultSpecError as exc:
                return 400, {"error": "bad_faults", "reason": str(exc)[:300]}
            return 200, {"faults": str(spec)}
        return 404, {"error": "not_found", "reason": f"no route {method} {path}"}
