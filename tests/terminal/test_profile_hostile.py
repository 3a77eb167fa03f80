"""Profile values that used to validate and then crash ``etika card``, ``psp`` or ``sync``
are ConfigErrors at load, each naming its file:key (issue #17 item 10): every URL, host,
file path, wire text, size and rate, the nesting and the size of every file (``crl.toml``
included). Each case edits a real copy of the default profile and loads it from disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from terminal.errors import ConfigError
from terminal.profile import load_profile
from terminal.profile.toml_reading import MAX_FILE_BYTES
from terminal.profile_crl import read_crl

_HTTPS = 'https_url = "https://127.0.0.1:8443"'
_POP = 'pop_url = "http://127.0.0.1:8600"'
_MQTT = 'mqtt_host = "127.0.0.1"'
_STRIPE = 'url = "http://127.0.0.1:8590"'
_ISO_HOST = 'host = "127.0.0.1"'
_MERCHANT = 'merchant_name = "Epicerie Atlas, Casablanca"'
_RATE = 'rate = "10.8350"'
_TIMEOUT = "pop_timeout_s = 2.0"


@pytest.fixture
def profile_copy(tmp_path: Path, default_profile_dir: Path) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(default_profile_dir, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _problems(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_profile(directory)
    return info.value.problems


@pytest.mark.parametrize(
    ("filename",        "old",      "new",                                          "key",                   "reason"),
    [
        # -- sync URLs: a traceback out of `etika sync run` before ---------------------------------------------------
        ("sync.toml",       _HTTPS,     'https_url = "http://[::1"',                    "sync.https_url",        "not a valid URL"),
        ("sync.toml",       _HTTPS,     'https_url = "https://127.0.0.1:99999"',        "sync.https_url",        "port 99999 is not 1-65535"),
        ("sync.toml",       _HTTPS,     'https_url = "https://127.0.0.1:8443?x=1"',     "sync.https_url",        "without ?query"),
        ("sync.toml",       _HTTPS,     'https_url = "http://platform.example"',        "sync",                  "use https://"),
        ("sync.toml",       _POP,       'pop_url = "ftp://pop.example"',                "sync.pop_url",          "http:// or https://"),
        ("sync.toml",       _POP,       'pop_url = "http://[::1"',                      "sync.pop_url",          "not a valid URL"),
        ("sync.toml",       _POP,       'pop_url = "http://10.0.0.5:8600"',             "sync",                  "use https://"),
        # -- hosts ----------------------------------------------------------------------------------------------------
        ("sync.toml",       _MQTT,      'mqtt_host = ""',                               "sync.mqtt_host",        "1 to 253"),
        ("sync.toml",       _MQTT,      'mqtt_host = "a\\u0000b"',                      "sync.mqtt_host",        "host name"),
        ("sync.toml",       _MQTT,      'mqtt_host = "[::1"',                           "sync.mqtt_host",        "host name"),
        ("sync.toml",       _MQTT,      'mqtt_host = "999.1.1.1"',                      "sync.mqtt_host",        "not a valid IP"),
        ("routing.toml",    _ISO_HOST,  'host = "[::1]"',                               "psp[0].host",           "without brackets"),
        ("routing.toml",    _ISO_HOST,  'host = "::1]"',                                "psp[0].host",           "host name"),
        # -- PSP URLs that urlsplit reads but httpx refuses (a traceback in card, psp and sync) ------------------------
        ("routing.toml",    _STRIPE,    'url = "http://[::1]x:8590"',                   "psp[3].url",            "not a valid URL"),
        ("routing.toml",    _STRIPE,    'url = "http://[v1.x]:8590"',                   "psp[3].url",            "not a valid URL"),
        ("routing.toml",    _STRIPE,    'url = "http://127.0.0.1:0"',                   "psp[3].url",            "port 0 is not"),
        ("routing.toml",    _STRIPE,    'url = "http://127.0.0.1:8590/%zz"',            "psp[3].url",            "%-escaped"),
        ("routing.toml",    _STRIPE,    'url = "http://127.0.0.1:8590/v1#x"',           "psp[3].url",            "#fragment"),
        ("routing.toml",    _STRIPE,    'url = "http://127.0.0.1:8590/\\u0000"',        "psp[3].url",            "control characters"),
        # -- file paths: an embedded NUL was a ValueError out of open() -----------------------------------------------
        ("sync.toml",       _HTTPS,     _HTTPS + '\nplatform_public_key = "a\\u0000"',  "sync.platform_public_key", "control characters"),
        ("sync.toml",       'ca_file = "pki/ca.pem"', 'ca_file = "pki/\\u0000"',        "sync.ca_file",          "control characters"),
        ("terminal.toml",   'port = "/dev/ttyUSB0"', 'port = ""',                       "pinpad.port",           "must not be empty"),
        ("terminal.toml",   'pkcs11_module = "', 'pkcs11_module = "\\u001b[31m',        "hsm.pkcs11_module",     "control characters"),
        # -- text sent as is: DE 43 / 9F4E, PoP headers, the PKCS#11 label -------------------------------------------
        ("terminal.toml",   _MERCHANT,  'merchant_name = "Café Atlas"',                 "terminal.merchant_name", "printable ASCII"),
        ("sync.toml",       _TIMEOUT,   _TIMEOUT + '\npop_audience = "pop\\n"',         "sync.pop_audience",     "printable ASCII"),
        ("terminal.toml",   'token_label = "etika-terminal"', 'token_label = "ét"',     "hsm.token_label",       "printable ASCII"),
        ("aids.toml",       'label = "VISA"', 'label = "VISA\\u0000"',                  "aid[0].label",          "control characters"),
        # -- sizes and rates: float and Decimal arithmetic overflowed later -------------------------------------------
        ("sync.toml",       _TIMEOUT,   _TIMEOUT + "\nmax_bytes_per_s = 10000000000000000000", "sync.max_bytes_per_s", "less than or equal"),
        ("sync.toml",       _TIMEOUT,   _TIMEOUT + "\nmax_attempts = 10000000000000000000",    "sync.max_attempts",    "less than or equal"),
        ("currencies.toml", _RATE,      'rate = "1e999999"',                            "fx_rate[0].rate",       "24 digits"),
        ("currencies.toml", _RATE,      'rate = "1e-999999"',                           "fx_rate[0].rate",       "24 digits"),
        ("currencies.toml", 'as_of = "2026-11-22T06:00:00Z"', 'as_of = 9999-12-31T23:59:59-23:59', "fx_rate[0].as_of", "between 2000 and 2999"),
        # -- default DOLs: a malformed one failed every transaction that used it --------------------------------------
        ("aids.toml",       'default_tdol = "9F02065F2A029A039C0195059F3704"', 'default_tdol = "9F"', "aid[0].default_tdol", "not a data object list"),
        ("aids.toml",       'default_tdol = "9F02065F2A029A039C0195059F3704"', 'default_tdol = "' + "9F02FF" * 2 + '"', "aid[0].default_tdol", "more than 252 bytes"),
        ("aids.toml",       'default_ddol = "9F3704"', 'default_ddol = "9F0206"',         "aid[0].default_ddol",   "unpredictable number"),
        # -- BIN ranges: the high end was any string ------------------------------------------------------------------
        ("routing.toml",    'connectors = ["cih", "bmce"]', 'connectors = ["cih", "bmce"]\nbin_ranges = [["400000", "zzz"]]', "route[0].bin_ranges[0][1]", "should match pattern"),
        ("routing.toml",    'connectors = ["cih", "bmce"]', 'connectors = ["cih", "bmce"]\nbin_ranges = [["500000", "400000"]]', "route[0]", "low above high"),
    ],
)
def test_hostile_value_is_a_located_config_error(profile_copy: Path, filename: str, old: str,
                                                 new: str, key: str, reason: str) -> None:
    """Each hostile value is a ConfigError naming file:key and why, at load."""
    _edit(profile_copy / filename, old, new)
    problems = _problems(profile_copy)
    assert any(f"{filename}:{key}" in p and reason in p for p in problems), problems


@pytest.mark.parametrize(
    ("filename",     "old",     "new"),
    [
        ("routing.toml", _STRIPE,   'url = "http://[::1]:8590"'),
        ("routing.toml", _STRIPE,   'url = "http://localhost:8590/v1/"'),
        ("routing.toml", _STRIPE,   'url = "HTTPS://api.stripe.example/v1/%7Eacct"'),
        ("routing.toml", _ISO_HOST, 'host = "::1"'),
        ("sync.toml",    _MQTT,     'mqtt_host = "broker.fleet.example."'),
        ("sync.toml",    _POP,      'pop_url = "https://pop.example:9443/api"'),
        ("currencies.toml", _RATE,  'rate = "0.000000000123"'),
    ],
)
def test_ordinary_endpoints_still_load(profile_copy: Path, filename: str, old: str,
                                       new: str) -> None:
    """The bounds refuse no ordinary value: IPv6 literals, names, paths, small rates load."""
    _edit(profile_copy / filename, old, new)
    assert load_profile(profile_copy).directory == profile_copy


def test_deep_crl_is_a_config_error(profile_copy: Path) -> None:
    """crl.toml nested past the parser's recursion is a ConfigError, not a RecursionError."""
    (profile_copy / "crl.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    problems = _problems(profile_copy)
    assert any("crl.toml" in p and "nested too deep" in p for p in problems), problems
    with pytest.raises(ConfigError, match=r"crl\.toml: nested too deep"):
        read_crl(profile_copy)


def test_deep_inline_tables_are_a_config_error(profile_copy: Path) -> None:
    """Nested inline tables (not only arrays) are refused with the file named."""
    with (profile_copy / "sync.toml").open("a") as out:
        out.write("deep = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    problems = _problems(profile_copy)
    assert any(p.endswith("sync.toml: nested too deep to read (arrays or tables)")
               for p in problems), problems


def test_deep_dotted_keys_are_bounded(profile_copy: Path) -> None:
    """A dotted key thousands of levels deep parses, and is then refused by depth."""
    with (profile_copy / "limits.toml").open("a") as out:
        out.write("\n[deep]\n" + ".".join(["k"] * 5000) + " = 1\n")
    problems = _problems(profile_copy)
    assert any("limits.toml:deep.k.k" in p and "nested too deep" in p for p in problems), \
        problems


def test_oversized_file_is_refused_unread(profile_copy: Path) -> None:
    """A profile file over the size bound is refused by size, before it is parsed."""
    with (profile_copy / "aids.toml").open("a") as out:
        out.write("# " + "x" * MAX_FILE_BYTES + "\n")
    problems = _problems(profile_copy)
    assert any("aids.toml: larger than 1024 KiB" in p for p in problems), problems


def test_hostile_key_names_are_shown_escaped_and_short(profile_copy: Path) -> None:
    """An unknown key holding a terminal escape and 10,000 characters is named escaped and
    cut short, so the problem list stays one readable line per problem."""
    key = "\x1b[2J" + "k" * 10_000
    with (profile_copy / "sync.toml").open("a") as out:
        out.write(f'"\\u001b[2J{"k" * 10_000}" = 1\n')
    problems = _problems(profile_copy)
    assert len(problems) == 1, problems
    assert "\x1b" not in problems[0] and key not in problems[0]
    assert "sync.toml:sync.'\\x1b[2Jkkk" in problems[0] and "…'" in problems[0], problems
    assert len(problems[0]) < len(str(profile_copy)) + 200


def test_symbolic_link_loop_is_a_config_error(profile_copy: Path) -> None:
    """A key file that is a symbolic link loop is named, not a RuntimeError out of resolve."""
    (profile_copy / "loop.pem").symlink_to("loop.pem")
    _edit(profile_copy / "routing.toml", 'p2pe_public_key = "p2pe/iso8583-test.pem"',
          'p2pe_public_key = "loop.pem"')
    problems = _problems(profile_copy)
    assert any("routing.toml:psp[0].p2pe_public_key: loop.pem cannot be resolved" in p
               and "symbolic link loop" in p for p in problems), problems


def test_number_past_the_digit_limit_is_a_config_error(profile_copy: Path) -> None:
    """A decimal integer of 5,000 digits is a ConfigError naming the file, not the bare
    ValueError tomllib lets out of int()."""
    _edit(profile_copy / "sync.toml", "mqtt_port = 8883", "mqtt_port = " + "9" * 5000)
    problems = _problems(profile_copy)
    assert any(p.endswith("sync.toml: invalid TOML: a number of more than 4300 digits")
               for p in problems), problems
