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

An answer is decoded with bounds (:func:`decode_json`: at most 1 MiB and 32 levels of
nesting), and every connector reads it inside :func:`reading`, which turns any shape or
type surprise (a missing key, a string where an object belongs, a non-ASCII code) into
:class:`MalformedResponseError`: an answer the terminal cannot read is an unknown outcome, which
the router reverses — never a raw ``KeyError`` that would lose the reversal.

HTTP statuses: 2xx and 402 are answers; 429 and 5xx are "retry" answers; 400, 401, 403,
404 and 422 are :class:`PspRejectedError`; 409 is "retry" (the same idempotency key is still
being processed) — Stripe's documented semantics, which PayPal's mostly share.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from edge_sync.connectors.errors import (
    MalformedResponseError,
    OutcomeUnknownError,
    PspError,
    PspRejectedError,
    PspTimeoutError,
    PspUnreachableError,
)
from edge_sync.http_client import OwnsHttpClient, http_client

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_JSON_DEPTH",
    "HttpAnswer",
    "RestClient",
    "RestSettings",
    "SentRequests",
    "approval_code",
    "decode_json",
    "map_httpx_error",
    "mapping",
    "reading",
    "require",
    "text",
]

#: A PSP answer is a few kilobytes; anything near this is not one.
MAX_ANSWER_BYTES = 1 << 20
#: PSP answers nest a handful of levels; the bound keeps the decoder and every walker of
#: the result far from Python's recursion limit.
MAX_JSON_DEPTH = 32
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
#: ISO 8583 DE 38 / EMV tag 89: six alphanumeric characters (shorter ones are padded).
_APPROVAL_CODE = re.compile(r"[0-9A-Za-z ]{1,6}")


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
        try:
            response = await self._client.request(method, path, headers=headers, data=data,
                                                  json=json_body, params=params)
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL,
                httpx.CookieConflict) as exc:
            raise map_httpx_error(exc, where) from exc
        name = self.settings.name
        body = decode_json(response.content, name=name,
                           where={**where, "http_status": response.status_code})
        status = response.status_code
        if status in (400, 401, 403, 404, 422):
            raise PspRejectedError(
                f"{name}: HTTP {status} to {method} {path}: {_error_text(body)}; "
                "fix the request or the credentials, do not resend", **where,
                http_status=status,
            )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return HttpAnswer(status=status, body=body, replayed=replayed)


def decode_json(content: bytes, *, name: str, where: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object of at most :data:`MAX_ANSWER_BYTES` and :data:`MAX_JSON_DEPTH` levels,
    else :class:`MalformedResponseError` (the outcome of the request is unknown)."""
    if len(content) > MAX_ANSWER_BYTES:
        raise MalformedResponseError(f"{name}: the answer is {len(content)} bytes, more than "
                                f"{MAX_ANSWER_BYTES}; the outcome is unknown", **where)
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(content):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise MalformedResponseError(f"{name}: the answer nests deeper than {MAX_JSON_DEPTH} "
                                "levels; the outcome is unknown", **where)
    try:
        body = json.loads(content)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedResponseError(f"{name}: the answer is not JSON; the outcome of the request "
                                "is unknown", **where) from exc
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{name}: the answer is JSON but not an object", **where)
    return body


@contextmanager
def reading(where: Mapping[str, Any], what: str = "the answer") -> Iterator[None]:
    """Read a decoded answer: any shape or type surprise is :class:`MalformedResponseError`.

    The connectors' answer readers index, convert and compare freely inside this block; a
    PSP that sends a list entry without its id, a string where an object belongs or a
    non-ASCII code gets "unreadable answer, outcome unknown" — the case the router reverses.
    """
    try:
        yield
    except PspError:
        raise
    except (LookupError, TypeError, AttributeError, ValueError, UnicodeError,
            RecursionError) as exc:
        raise MalformedResponseError(
            f"{where.get('connector', 'psp')}: {what} has an unexpected shape "
            f"({type(exc).__name__}); the outcome is unknown", **where,
        ) from None


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else ``TypeError`` (mapped by :func:`reading`)."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object")
    return value


def text(value: Any, what: str) -> str:
    """``value`` when it is a JSON string, else ``TypeError`` (mapped by :func:`reading`)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is not a string")
    return value


def approval_code(value: Any) -> str | None:
    """An issuer approval code (DE 38 / tag 89: up to six ASCII alphanumerics) or ``None``;
    anything else is ``ValueError`` (mapped by :func:`reading`)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _APPROVAL_CODE.fullmatch(value):
        raise ValueError("the approval code is not up to six ASCII letters or digits")
    return value


def _error_text(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(body.get("message") or body.get("name") or "no detail")


def require(body: Mapping[str, Any], key: str, where: Mapping[str, Any]) -> Any:
    """``body[key]`` or :class:`MalformedResponseError` naming the missing key."""
    if key not in body:
        raise MalformedResponseError(
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
