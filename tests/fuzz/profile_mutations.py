"""Mutations of the shipped profiles and the check every loaded profile must pass: shared
by the hypothesis target (``test_profile_loader.py``) and the atheris harness
(``fuzz/fuzz_profile.py``), so both hold the loader to one contract.

The contract (issue #17 item 10): :func:`terminal.profile.load_profile` returns a
:class:`~terminal.profile.Profile` or raises :class:`~terminal.errors.ConfigError` (the
profile's error root), nothing else; and what it returns can be used: every URL parses
with httpx (the client that uses it) and urllib alike, every host and port is one a
socket can take, every FX rate converts and ages without overflow.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from terminal.money import Amount, convert
from terminal.profile import Profile

__all__ = ["HOSTILE_VALUES", "PROFILE_DIRS", "SCALAR_LINE", "check_usable", "mutate",
           "toml_string"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The example profiles the project ships (each a directory of the loader's files).
PROFILE_DIRS = tuple(sorted(p for p in (REPO_ROOT / "firmware-config").iterdir()
                            if (p / "terminal.toml").is_file()))
#: ``key = value`` lines of a profile file (the values a mutation replaces).
SCALAR_LINE = re.compile(r'^([A-Za-z_]\w*) = (.+?)\s*(?:#.*)?$', re.MULTILINE)

#: Values of the classes that used to pass validation and crash later, and their cousins.
HOSTILE_VALUES: tuple[str, ...] = (
    '"http://[::1"', '"http://[::1]x:80"', '"http://[v1.x]:80"', '"https://h:0"',
    '"https://h:99999"', '"https://h:+80"', '"http://h/%zz"', '"http://h/\\u0000"',
    '"http://h?x#y"', '"https://user:pw@h"', '"ftp://h"', '"http://"', '"//h"', '"h:80"',
    '"http://[fe80::1%25eth0]:80"', '"http://999.1.1.1"', '"http://-h-.example"',
    '"http://localhost."', '"[::1]"', '"::1"', '""', '"\\u0000"', '"\\u001b[2J"',
    '"é☕"', '"\\ud7ff"', '"' + "a" * 300 + '"', '"../../etc/passwd"', '"/dev/null"',
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2000-01-01T00:00:00Z",
    "2999-12-31T00:00:00Z", "1979-05-27", "07:32:00", '"2026-11-22T06:00:00"',
    "0", "-1", "65535", "65536", "9223372036854775807", "-9223372036854775808",
    "1e308", "inf", "-inf", "nan", "-0.0", "5e-324", '"1e999999"', '"1e-999999"',
    '"Infinity"', '"NaN"', '"-0"', '"0.0000000000000000001"', "true", "[]", "{}",
    "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]", "{a = {b = {c = {d = 1}}}}",
    "9" * 5000, "0x" + "f" * 5000, "1e" + "9" * 400,  # past int()'s digit limit; huge
)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (so a fuzzed value reaches validation, not the parser)."""
    # JSON's escapes are TOML's; TOML also wants DEL escaped, and lone surrogates cannot be
    # written at all.
    quoted = json.dumps(text.encode("utf-8", "replace").decode("utf-8"), ensure_ascii=False)
    return quoted.replace("\x7f", "\\u007f")


def mutate(text: str, kind: int, index: int, payload: str) -> str:
    """One mutation of a profile file's ``text``; ``kind`` picks which, ``index`` where.

    0: replace the value of the ``index``-th ``key = value`` line with ``payload``;
    1: delete that line; 2: duplicate it; 3: insert ``payload`` as a line there;
    4: nest that value in arrays, a few levels for a short payload, thousands for a long
    one; 5: splice ``payload`` into the raw text at ``index``.
    """
    lines = list(SCALAR_LINE.finditer(text))
    if kind == 5 or not lines:
        at = index % (len(text) + 1)
        return text[:at] + payload + text[at + len(payload) // 2:]
    line = lines[index % len(lines)]
    start, end = line.span()
    if kind == 0:
        new = f"{line.group(1)} = {payload}"
    elif kind == 1:
        new = ""
    elif kind == 2:
        new = f"{line.group(0)}\n{line.group(0)}"
    elif kind == 3:
        new = f"{payload}\n{line.group(0)}"
    else:
        # A short payload nests a few levels (a list where a scalar belongs), a long one
        # thousands (past the parser's recursion).
        depth = len(payload) if len(payload) <= 8 else len(payload) * 97
        new = f"{line.group(1)} = {'[' * depth}{line.group(2)}{']' * depth}"
    return text[:start] + new + text[end:]


def check_usable(profile: Profile) -> None:
    """What a loaded profile's users do with it must not raise (AssertionError otherwise)."""
    urls = [p.url for p in profile.psps if p.url] + [
        u for u in (profile.sync.https_url, profile.sync.pop_url) if u]
    for url in urls:
        parsed = httpx.URL(url)  # raises httpx.InvalidURL: a crash in card/psp/sync
        assert parsed.host, url
        parts = urlsplit(url)
        assert parts.hostname and parts.scheme in ("http", "https"), url
        assert parts.port is None or 1 <= parts.port <= 65535, url
        httpx.URL(url.rstrip("/") + "/v1/terminals/ETK00001/messages")  # the sync's join
    hosts = [p.host for p in profile.psps if p.host] + [profile.sync.mqtt_host]
    for host in hosts:
        assert host and host.isascii() and host.isprintable() and "[" not in host, host
        host.encode("idna")  # what the resolver does with a name
    for psp in profile.psps:
        assert psp.port is None or 1 <= psp.port <= 65535
    now = datetime.now(UTC)
    for rate in profile.currencies.rates():
        rate.age(now)
        assert rate.as_of + rate.max_age > rate.as_of
        # One unit each way (convert picks the direct or the inverse rate); a stale rate
        # is the money error a cashier sees, never an overflow.
        for source, target in ((rate.base, rate.quote), (rate.quote, rate.base)):
            convert(Amount(100, source), target, [rate], now=rate.as_of)
    if profile.sync.max_bytes_per_s is not None:
        assert float(profile.sync.max_bytes_per_s) * 86_400 < float("inf")
    profile.terminal.merchant_name.encode("ascii")  # DE 43 and 9F4E are ASCII
