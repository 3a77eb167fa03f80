"""Field types for where the terminal connects and what it opens: a base URL, a host name,
a local file or device path, and printable ASCII text for the wire.

A profile value of these kinds used to pass validation and fail much later, inside
``etika card``, ``psp`` or ``sync``, as a library's exception (issue #17 item 10: a PSP URL
``http://[::1`` was an ``InvalidURL`` traceback). Each is checked here, at load, so the
problem is reported as ``file:key: reason`` with everything else wrong with the profile.

The URL grammar is hand-written on purpose: :func:`urllib.parse.urlsplit` accepts netlocs
such as ``[::1]x:80`` that httpx (the HTTP client that uses these URLs) refuses, and
httpx itself is not imported by a card read (``tests/terminal/test_lazy_imports.py``). The
grammar is a strict subset of RFC 3986 §3 (scheme, authority, path; no user information,
query or fragment, which a base URL has no use for), so whatever passes here also parses
with both; the profile fuzz harness checks that against httpx.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = [
    "BaseUrl",
    "HostName",
    "LocalPath",
    "WireText",
    "base_url",
    "host_name",
]

#: RFC 1123 §2.1 labels; ``_`` is tolerated (container and internal DNS names use it).
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
#: RFC 3986 §3.2: ``host[:port]`` with an IPv6 literal in brackets.
_AUTHORITY = re.compile(r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]/]+))"
                        r"(?::(?P<port>[0-9]{1,5}))?")
#: RFC 3986 §3.3 path characters (pchar and "/"), a "%" only before two hex digits.
_PATH = re.compile(r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*")
_MAX_URL = 2048


def _dns_name(value: str) -> str | None:
    """Why ``value`` is not a DNS host name (RFC 1123), or ``None``."""
    name = value.removesuffix(".")
    if not name or len(name) > 253:
        return "must be 1 to 253 characters"
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return ("must be a host name (letters, digits, '-' between dot-separated labels of "
                "at most 63 characters) or an IP address")
    if labels[-1].isdigit():  # 999.1.1.1, 1.2.3: neither a name nor an IPv4 address
        return "is not a valid IP address"
    return None


def host_name(value: str) -> str:
    """A host to connect to: an IPv4 or IPv6 address (no brackets) or a DNS name."""
    if value.startswith("[") and value.endswith("]"):
        raise ValueError("write an IPv6 address without brackets here (e.g. ::1)")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        problem = _dns_name(value)
        if problem:
            raise ValueError(problem) from None
    return value


def base_url(value: str) -> str:
    """An ``http://`` or ``https://`` base URL with a host, an optional port (1-65535) and
    path; no credentials, query or fragment; plain ASCII."""
    if len(value) > _MAX_URL:
        raise ValueError(f"is longer than {_MAX_URL} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("must be plain ASCII without spaces or control characters")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL with a host")
    authority, slash, path = rest.partition("/")
    if "?" in rest or "#" in rest:
        raise ValueError("must be a base URL, without ?query or #fragment")
    if "@" in authority:
        raise ValueError("must not carry credentials (use the connector's credentials file)")
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        raise ValueError(f"is not a valid URL (cannot read host and port from {authority!r})")
    if match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            raise ValueError(f"is not a valid URL ([{match['ip6']}] is not an IPv6 "
                             "address)") from None
    else:
        try:
            host_name(match["host"])
        except ValueError as exc:
            raise ValueError(f"is not a valid URL (host {match['host']!r} {exc})") from None
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"is not a valid URL (port {match['port']} is not 1-65535)")
    if not _PATH.fullmatch(slash + path):
        raise ValueError("is not a valid URL (its path has a character that must be "
                         "%-escaped)")
    return value


def _local_path(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if len(value) > 4096:
        raise ValueError("is longer than 4096 characters")
    if not value.isprintable():  # NUL cannot reach open(); no other control belongs in a path
        raise ValueError("must not contain control characters")
    return value


def _wire_text(value: str) -> str:
    # EMV "ans" (Book 4 Annex B, the common character set) and ISO 8583 "ans" fields carry
    # printable ASCII only; anything else failed when the message was encoded.
    if not re.fullmatch(r"[\x20-\x7e]*", value):
        raise ValueError("must be printable ASCII (it is sent over the wire as it is)")
    return value


HostName = Annotated[str, AfterValidator(host_name)]
BaseUrl = Annotated[str, AfterValidator(base_url)]
#: A file or device path (relative ones are resolved by the field's user).
LocalPath = Annotated[str, AfterValidator(_local_path)]
WireText = Annotated[str, AfterValidator(_wire_text)]
