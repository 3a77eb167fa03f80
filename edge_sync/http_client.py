"""The terminal's outgoing links built one way: TLS contexts and httpx clients.

The HTTPS sync fallback (:mod:`edge_sync.https`), the PoP back end's client
(:mod:`edge_sync.pop`), the REST PSP connectors (:mod:`edge_sync.connectors.rest`) and the
MQTT link (:mod:`edge_sync.mqtt`) all verify a server against a CA file and present the
terminal's certificate, and the HTTP ones each own one ``httpx.AsyncClient`` that
``async with`` closes. They build those here, so that a fix to either (a TLS option, a
header, how a client is closed) reaches every link at once. Each caller still maps a TLS
file it cannot load to its own error, which names its own configuration keys.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

__all__ = ["JSON_HEADERS", "OwnsHttpClient", "client_tls_context", "http_client", "read_capped"]

#: For a client whose every request body is JSON it encodes itself.
JSON_HEADERS = {"content-type": "application/json"}


def client_tls_context(ca_file: Path | str | None, cert_file: Path | str | None = None,
                key_file: Path | str | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file`` (the system's CAs when
    ``None``) and presents ``cert_file`` (its key in ``key_file``, or in the same file).

    ``OSError``/``ssl.SSLError`` when a file cannot be read or is not what it should be;
    the caller says which of its settings named it.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if ca_file is None else str(ca_file))
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file or cert_file))
    return context


def http_client(*, verify: ssl.SSLContext | bool | str = True,
                transport: httpx.AsyncBaseTransport | None = None,
                timeout_s: float | None = None, base_url: str = "",
                headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient``. ``transport`` replaces httpx's own (a test's double, or one
    with options of its own; ``verify`` then does not apply); ``timeout_s`` ``None`` keeps
    httpx's default, for callers that give a timeout per request. ``headers`` go with every
    request (:data:`JSON_HEADERS` for a JSON client; not for one that also posts forms,
    whose own content type the client's would override)."""
    client = httpx.AsyncClient(base_url=base_url, verify=verify, transport=transport,
                               headers=dict(headers or {}))
    if timeout_s is not None:
        client.timeout = httpx.Timeout(timeout_s)
    return client


class OwnsHttpClient:
    """For a link that owns ``self._client``: ``async with`` (or :meth:`aclose`) closes it."""

    _client: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


async def read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed response's body, or ``None`` as soon as it grows past ``limit`` bytes (not
    read further): a hostile peer's answer is never held whole in memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
