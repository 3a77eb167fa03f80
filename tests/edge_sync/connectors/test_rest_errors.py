"""Every httpx exception becomes one of ours (or ValueError for a configuration mistake)."""

from __future__ import annotations

import inspect

import httpx
import pytest

from edge_sync.connectors.errors import (
    MalformedResponseError,
    OutcomeUnknownError,
    PspError,
    PspTimeoutError,
    PspUnreachableError,
)
from edge_sync.connectors.rest import map_httpx_error


def _all_subclasses(root: type) -> set[type]:
    out = {root}
    for sub in root.__subclasses__():
        out |= _all_subclasses(sub)
    return out


#: Every exception class httpx exports (read from the module, not a hand-picked list of
#: roots), and every httpx subclass below them.
HTTPX_ERRORS = sorted(
    {sub
     for _, cls in inspect.getmembers(httpx, inspect.isclass) if issubclass(cls, Exception)
     for sub in _all_subclasses(cls) if sub.__module__.startswith("httpx")},
    key=lambda c: c.__name__,
)


def _instance(cls: type) -> Exception:
    request = httpx.Request("GET", "http://127.0.0.1/")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=request)
    try:
        return cls("boom")
    except TypeError:  # StreamConsumed, StreamClosed, RequestNotRead… take no message
        return cls()


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_error_is_mapped(cls: type) -> None:
    """No httpx exception escapes the connector unmapped."""
    mapped = map_httpx_error(_instance(cls), {"connector": "stripe"})  # type: ignore[arg-type]
    assert isinstance(mapped, PspError | ValueError)
    assert "stripe" in str(mapped)


@pytest.mark.parametrize(
    ("cls",                        "ours"),
    [
        (httpx.ConnectError,           PspUnreachableError),
        (httpx.ConnectTimeout,         PspUnreachableError),
        (httpx.ReadTimeout,            PspTimeoutError),
        (httpx.WriteTimeout,           PspTimeoutError),
        (httpx.PoolTimeout,            PspTimeoutError),
        (httpx.RemoteProtocolError,    OutcomeUnknownError),
        (httpx.ReadError,              OutcomeUnknownError),
        (httpx.DecodingError,          MalformedResponseError),
        (httpx.InvalidURL,             ValueError),
    ],
)
def test_mapping_table(cls: type, ours: type) -> None:
    """Not connected → unreachable; sent but unanswered → unknown; unreadable → malformed."""
    assert type(map_httpx_error(_instance(cls), {"connector": "x"})) is ours  # type: ignore[arg-type]
