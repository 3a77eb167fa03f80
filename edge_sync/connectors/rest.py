"""What the REST connectors share: one httpx client, error mapping at the edge.

Every httpx exception is mapped here (a test walks httpx's whole exception tree):

==========================================  ==================================
httpx                                        ours
==========================================  ==================================
``ConnectError``, ``ConnectTimeout``,        :class:`PspUnreachableError` (nothing sent)
``UnsupportedProtocol``, ``ProxyError``
``ReadTimeout``, ``WriteTimeout``,           :class:`PspTimeoutError`
``PoolTimeout``
``DecodingError``, ``TooManyRedirects``      :class:`MalformedResponseError`
``InvalidURL``, ``CookieConflict``,          ``ValueError`` (a configuration mistake)
``StreamError`` and its subclasses
any other ``httpx.HTTPError`` (``ReadError``, :class:`OutcomeUnknownError`
``RemoteProtocolError``…)
==========================================  ==================================

An answer is read at most :data:`~edge_sync.connectors.answers.MAX_ANSWER_BYTES` into
memory (a longer body is not read on) and decoded with bounds
(:func:`~edge_sync.connectors.answers.decode_json`); every connector then reads it with
the typed reader of :mod:`edge_sync.connectors.answers`, which turns any shape or type
surprise into :class:`MalformedResponseError`: an answer the terminal cannot read is an
unknown outcome, which the router reverses — never a raw ``KeyError`` that would lose the
reversal.

HTTP statuses: 2xx and 402 are answers; 429 and 5xx are "retry" answers; 400, 401, 403,
404 and 422 are :class:`PspRejectedError`; 409 is "retry" (the same idempotency key is still
being processed) — Stripe's documented semantics, which PayPal's mostly share. Any other
status (a redirect, which the client never follows, or another 4xx) is no answer of the
PSP's API: :class:`MalformedResponseError`, so a body that merely looks like an approval
is never taken for one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from edge_sync.connectors.answers import MAX_ANSWER_BYTES, decode_json, message
from edge_sync.connectors.errors import (
    MalformedResponseError,
    OutcomeUnknownError,
    PspRejectedError,
    PspTimeoutError,
    PspUnreachableError,
)
from edge_sync.http_client import OwnsHttpClient, http_client, read_capped

__all__ = [
    "HttpAnswer",
    "RestClient",
    "RestSettings",
    "SentRequests",
    "map_httpx_error",
]


@dataclass(frozen=True)
class RestSettings:
    """One REST PSP as values (from ``[[psp]]``)."""

    name: str
    url: str
    p2pe_public_key: bytes
    #: The connector's secret (``Authorization: Bearer``); ``None`` sends none (a local
    #: simulator). The terminal loads it per connector, never from code.
    api_key: str | None = None
    timeout_s: float = 2.0
    verify: bool | str = True  # CA bundle path, or False for a plain-HTTP simulator


def map_httpx_error(exc: httpx.HTTPError | httpx.StreamError | httpx.InvalidURL
                    | httpx.CookieConflict, where: Mapping[str, Any]) -> Exception:
    """Our error for an httpx exception (see the module table)."""
    name = where.get("connector", "psp")
    if isinstance(exc, httpx.InvalidURL | httpx.CookieConflict | httpx.StreamError):
        return ValueError(f"{name}: the request could not be built ({exc})")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol
                  | httpx.ProxyError):
        return PspUnreachableError(f"{name}: cannot connect ({type(exc).__name__}: {exc}); "
                              "nothing was sent, try another connector", **where)
    if isinstance(exc, httpx.TimeoutException):
        return PspTimeoutError(f"{name}: no answer in time ({type(exc).__name__}); "
                          "the outcome is unknown", **where)
    if isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects):
        return MalformedResponseError(f"{name}: unreadable answer ({type(exc).__name__}: {exc})",
                                 **where)
    return OutcomeUnknownError(f"{name}: the exchange failed ({type(exc).__name__}: {exc}); "
                          "the outcome is unknown", **where)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool


class RestClient(OwnsHttpClient):
    """An httpx client that turns every failure into a connector error."""

    def __init__(self, settings: RestSettings, *, auth_header: str | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        headers = {"User-Agent": "etika-terminal/0.1"}
        if auth_header is not None:
            headers["Authorization"] = auth_header
        self._client = http_client(
            base_url=settings.url, timeout_s=settings.timeout_s, headers=headers,
            verify=settings.verify,
            transport=transport or httpx.AsyncHTTPTransport(retries=0, verify=settings.verify),
        )

    async def request(self, method: str, path: str, *, where: Mapping[str, Any],
                      idempotency_header: str | None = None, idempotency_key: str | None = None,
                      data: Mapping[str, str] | None = None,
                      json_body: Mapping[str, Any] | None = None,
                      params: Mapping[str, str] | None = None) -> HttpAnswer:
        headers = {}
        if idempotency_header and idempotency_key:
            headers[idempotency_header] = idempotency_key
        name = self.settings.name
        try:
            request = self._client.build_request(method, path, headers=headers, data=data,
                                                 json=json_body, params=params)
            response = await self._client.send(request, stream=True)
            try:
                content = await read_capped(response, MAX_ANSWER_BYTES)
            finally:
                await response.aclose()
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL,
                httpx.CookieConflict) as exc:
            raise map_httpx_error(exc, where) from exc
        status = response.status_code
        if content is None:
            raise MalformedResponseError(f"{name}: the answer is more than {MAX_ANSWER_BYTES} "
                                         "bytes; the outcome is unknown", **where,
                                         http_status=status)
        body = decode_json(content, name=name, where={**where, "http_status": status})
        if status in (400, 401, 403, 404, 422):
            raise PspRejectedError(
                f"{name}: HTTP {status} to {method} {path}: {_error_text(body)}; "
                "fix the request or the credentials, do not resend", **where,
                http_status=status,
            )
        if not (200 <= status < 300 or status in (402, 409, 429) or 500 <= status < 600):
            raise MalformedResponseError(
                f"{name}: HTTP {status} to {method} {path} is not an answer of the API; the "
                "outcome is unknown", **where, http_status=status)
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return HttpAnswer(status=status, body=body, replayed=replayed)


def _error_text(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return message(error.get("message") or error.get("code") or "no detail")
    return message(body.get("message") or body.get("name") or "no detail")


class SentRequests:
    """The last few create bodies by idempotency key, so a resend repeats them exactly.

    Bounded (oldest dropped first): a terminal has few payments in doubt at a time. The
    bodies hold the P2PE envelope only, never clear card data.
    """

    def __init__(self, limit: int = 256) -> None:
        self._bodies: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._limit = limit

    def get(self, key: str, operation: str) -> dict[str, Any] | None:
        return self._bodies.get((key, operation))

    def put(self, key: str, operation: str, body: dict[str, Any]) -> None:
        self._bodies[(key, operation)] = body
        while len(self._bodies) > self._limit:
            self._bodies.popitem(last=False)
