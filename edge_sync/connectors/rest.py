"""What the REST connectors share: one httpx client, error mapping at the edge.

Every httpx exception is mapped here (a test walks httpx's whole exception tree):

==========================================  ==================================
httpx                                        ours
==========================================  ==================================
``ConnectError``, ``ConnectTimeout``,        :class:`PspUnreachable` (nothing sent)
``UnsupportedProtocol``, ``ProxyError``
``ReadTimeout``, ``WriteTimeout``,           :class:`PspTimeout`
``PoolTimeout``
``DecodingError``, ``TooManyRedirects``      :class:`MalformedResponse`
``InvalidURL``, ``CookieConflict``,          ``ValueError`` (a configuration mistake)
``StreamError`` and its subclasses
any other ``httpx.HTTPError`` (``ReadError``, :class:`OutcomeUnknown`
``RemoteProtocolError``…)
==========================================  ==================================

HTTP statuses: 2xx and 402 are answers; 429 and 5xx are "retry" answers; 400, 401, 403,
404 and 422 are :class:`PspRejected`; 409 is "retry" (the same idempotency key is still
being processed) — Stripe's documented semantics, which PayPal's mostly share.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from edge_sync.connectors.errors import (
    MalformedResponse,
    OutcomeUnknown,
    PspRejected,
    PspTimeout,
    PspUnreachable,
)

__all__ = [
    "HttpAnswer",
    "RestClient",
    "RestSettings",
    "SentRequests",
    "map_httpx_error",
    "require",
]


@dataclass(frozen=True)
class RestSettings:
    """One REST PSP as values (from ``[[psp]]``)."""

    name: str
    url: str
    p2pe_public_key: bytes
    api_key: str = "sk_test_etika"
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
        return PspUnreachable(f"{name}: cannot connect ({type(exc).__name__}: {exc}); "
                              "nothing was sent, try another connector", **where)
    if isinstance(exc, httpx.TimeoutException):
        return PspTimeout(f"{name}: no answer in time ({type(exc).__name__}); "
                          "the outcome is unknown", **where)
    if isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects):
        return MalformedResponse(f"{name}: unreadable answer ({type(exc).__name__}: {exc})",
                                 **where)
    return OutcomeUnknown(f"{name}: the exchange failed ({type(exc).__name__}: {exc}); "
                          "the outcome is unknown", **where)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool


class RestClient:
    """An httpx client that turns every failure into a connector error."""

    def __init__(self, settings: RestSettings, *, auth_header: str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            base_url=settings.url,
            timeout=httpx.Timeout(settings.timeout_s),
            headers={"Authorization": auth_header, "User-Agent": "etika-terminal/0.1"},
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
        try:
            response = await self._client.request(method, path, headers=headers, data=data,
                                                  json=json_body, params=params)
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL,
                httpx.CookieConflict) as exc:
            raise map_httpx_error(exc, where) from exc
        name = self.settings.name
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponse(
                f"{name}: HTTP {response.status_code} answer is not JSON; the outcome of "
                "the request is unknown", **where, http_status=response.status_code,
            ) from exc
        if not isinstance(body, dict):
            raise MalformedResponse(f"{name}: the answer is JSON but not an object",
                                    **where, http_status=response.status_code)
        status = response.status_code
        if status in (400, 401, 403, 404, 422):
            raise PspRejected(
                f"{name}: HTTP {status} to {method} {path}: {_error_text(body)}; "
                "fix the request or the credentials, do not resend", **where,
                http_status=status,
            )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return HttpAnswer(status=status, body=body, replayed=replayed)

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_text(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(body.get("message") or body.get("name") or "no detail")


def require(body: Mapping[str, Any], key: str, where: Mapping[str, Any]) -> Any:
    """``body[key]`` or :class:`MalformedResponse` naming the missing key."""
    if key not in body:
        raise MalformedResponse(
            f"{where.get('connector', 'psp')}: the answer has no {key!r}; the outcome is "
            "unknown", **where,
        )
    return body[key]



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
