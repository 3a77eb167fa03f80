"""The profile loader on mutated copies of the shipped profiles (``firmware-config/*``):
only a usable profile or the profile's own error comes out (issue #17 item 10).

Each example copies one shipped profile, mutates one of its files (a value replaced by one
of the hostile classes or by random text, a line deleted, duplicated or inserted, a value
nested thousands of levels deep, raw text spliced in) and loads it from disk. A
:class:`~terminal.errors.ConfigError` must name the file; a profile that loads must pass
:func:`tests.fuzz.profile_mutations.check_usable`. The atheris harness
``fuzz/fuzz_profile.py`` drives the same mutations coverage-guided.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.errors import ConfigError
from terminal.profile import PROFILE_FILES, load_profile
from tests.fuzz.profile_mutations import (
    HOSTILE_VALUES,
    PROFILE_DIRS,
    check_usable,
    mutate,
    toml_string,
)

_FILES = (*sorted(PROFILE_FILES), "crl.toml")
_TOML_ATOM = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=30).map(toml_string),
    st.text(max_size=30),  # raw text: often invalid TOML, sometimes a key or a table
)


@settings(max_examples=150, deadline=None)
@given(source=st.sampled_from(PROFILE_DIRS), filename=st.sampled_from(_FILES),
       mutations=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000), _TOML_ATOM),
                          min_size=1, max_size=3))
def test_mutated_profile_loads_usable_or_is_a_config_error(
        source: Path, filename: str, mutations: list[tuple[int, int, str]]) -> None:
    """A mutated shipped profile loads into a usable Profile or raises ConfigError naming
    the mutated directory's files; nothing else escapes the loader."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "profile"
        shutil.copytree(source, directory)
        path = directory / filename
        text = path.read_text("utf-8") if path.exists() else ""
        for kind, index, payload in mutations:
            text = mutate(text, kind, index, payload)
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        try:
            profile = load_profile(directory)
        except ConfigError as exc:
            assert exc.problems
            assert all(p.startswith(f"{directory}/") for p in exc.problems), exc.problems
            assert all("\x1b" not in p for p in exc.problems), exc.problems
            return
        check_usable(profile)


_URL_HOSTS = st.one_of(
    st.sampled_from(["127.0.0.1", "localhost", "localhost.", "[::1]", "::1", "[::1", "[v1.x]",
                     "[fe80::1%25eth0]", "999.1.1.1", "a..b", "-a-", "a_b", "xn--bcher-kva",
                     "é", "[::ffff:1.2.3.4]", "1.2.3", "a" * 64, ""]),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.text("abc.-_[]:%@0123456789", max_size=20),
)
_URLS = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    scheme=st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "http:/", ""]),
    host=_URL_HOSTS,
    port=st.one_of(st.just(""), st.integers(-1, 70_000).map(lambda p: f":{p}"),
                   st.sampled_from([":", ":80", ":443", ":+80", ": 80", ":0x50", ":٣"])),
    path=st.one_of(st.just(""), st.text(st.characters(max_codepoint=0x2FF), max_size=20)
                   .map(lambda t: "/" + t)),
)


@settings(max_examples=200, deadline=None)
@given(url=_URLS)
def test_every_url_the_profile_accepts_parses_alike_in_httpx_and_urllib(url: str) -> None:
    """A URL the profile's check accepts is one httpx (which sends to it) and urllib (which
    the loopback rule reads) both parse, to the same host and port; any other is refused
    with a ValueError the loader reports as file:key."""
    import httpx

    from terminal.profile.endpoints import base_url

    try:
        base_url(url)
    except ValueError:
        return
    parsed = httpx.URL(url)
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname and parsed.host
    assert parsed.raw_host.decode("ascii").lower() == parts.hostname.lower()
    default = {"http": 80, "https": 443}[parts.scheme]  # httpx drops a default port
    assert (parsed.port or default) == (parts.port or default)
