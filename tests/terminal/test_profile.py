"""Terminal profiles: the default one validates; every kind of damage is reported as file:key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terminal.errors import ConfigError
from terminal.profile import PROFILE_FILES, load_profile


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


def test_default_profile_is_a_moroccan_terminal(default_profile_dir: Path) -> None:
    """The shipped profile loads: MAD default, EUR/USD, the five applications, valid CAPKs."""
    profile = load_profile(default_profile_dir)
    assert profile.terminal.country_code == 504
    assert profile.default_currency.code == "MAD"
    assert set(profile.currencies.currencies) == {"MAD", "EUR", "USD"}
    assert {a.network for a in profile.aids} == {"visa", "mastercard", "cb", "bancontact",
                                                 "domestic"}
    assert all(rate.max_age.total_seconds() > 0 for rate in profile.currencies.rates())
    assert profile.capks and all(c.rid for c in profile.capks)


@pytest.mark.parametrize(
    ("filename",        "old",                              "new",                            "key",                          "reason"),
    [
        ("terminal.toml",   'terminal_id = "ETK00001"',         'terminal_id = "ETK1"',            "terminal.terminal_id",          "String should match"),
        ("terminal.toml",   'terminal_type = "22"',             'terminal_type = "99"',            "terminal.terminal_type",        "Annex A1"),
        ("terminal.toml",   'capabilities = "E0F8C8"',          'capabilities = "E0F8"',           "terminal.capabilities",         "3 bytes"),
        ("terminal.toml",   "baud = 9600",                      "baud = 9601",                     "pinpad.baud",                   "Input should be"),
        ("currencies.toml", 'default = "MAD"',                  'default = "GBP"',                 "(top level)",                   "not in the currency list"),
        ("currencies.toml", 'rate = "10.8350"',                 "rate = 10.835",                   "fx_rate[0].rate",               "as a string"),
        ("currencies.toml", 'as_of = "2026-11-22T06:00:00Z"',   'as_of = "2026-11-22T06:00:00"',   "fx_rate[0].as_of",              "timezone"),
        ("currencies.toml", "exponent = 2",                     "exponent = 3",                    "currency[0]",                   "exponent 2 in ISO 4217"),
        ("aids.toml",       'tac_online = "DC4004F800"',        'tac_online = "DC40"',             "aid[0].tac_online",             "5 bytes"),
        ("aids.toml",       "floor_limit = 50000",              "floor_limit = 100",               "aid[0]",                        "must not exceed floor_limit"),
        ("aids.toml",       'aid = "A0000000031010"',           'aid = "A0000000041010"',          "(top level)",                   "aid listed twice"),
        ("aids.toml",       'network = "visa"',                 'network = "diners"',              "aid[0].network",                "Input should be"),
        ("capks.toml",      'exponent = "03"',                  'exponent = "05"',                 "capk[0].exponent",              "String should match"),
        ("capks.toml",      'expiry = "2030-12-31"',            'expiry = "2030-13-31"',           "capk[0].expiry",                "date"),
        ("limits.toml",     "MAD = 100000",                     "MAD = 900000",                    "offline",                       "exceeds max_cumulative"),
        ("routing.toml",    'connectors = ["cih", "bmce"]',     'connectors = ["cih", "nobank"]',  "(top level)",                   "unknown connector"),
        ("routing.toml",    "port = 8583",                      "port = 70000",                    "psp[0].port",                   "less than or equal"),
        ("sync.toml",       "mqtt_port = 8883",                 'mqtt_port = "x"',                 "sync.mqtt_port",                "valid integer"),
        ("sync.toml",       "mqtt_tls = true",                  "mqtt_tsl = true",                 "sync.mqtt_tsl",                 "Extra inputs"),
    ],
)
def test_each_mistake_is_reported_as_file_key_reason(
    profile_copy: Path, filename: str, old: str, new: str, key: str, reason: str
) -> None:
    """A broken value is reported as path/file:key: reason."""
    _edit(profile_copy / filename, old, new)
    problems = _problems(profile_copy)
    prefix = f"{profile_copy / filename}:{key}"
    assert any(p.startswith(prefix) and reason in p for p in problems), problems


def test_capk_checksum_is_verified(profile_copy: Path) -> None:
    """A CA key whose modulus was altered no longer matches its SHA-1 checksum."""
    capks = profile_copy / "capks.toml"
    text = capks.read_text()
    modulus = re.search(r'modulus = "([0-9A-F]+)"', text)
    assert modulus is not None
    flipped = modulus.group(1)[:-1] + ("0" if modulus.group(1)[-1] != "0" else "1")
    capks.write_text(text.replace(modulus.group(1), flipped, 1))
    problems = _problems(profile_copy)
    assert any("capks.toml:capk[0]: checksum does not match" in p for p in problems), problems


def test_every_problem_is_listed_not_just_the_first(profile_copy: Path) -> None:
    """Errors in several files are all reported in one pass."""
    _edit(profile_copy / "terminal.toml", 'mcc = "5411"', 'mcc = "54"')
    _edit(profile_copy / "aids.toml", 'label = "VISA"', 'label = ""')
    (profile_copy / "sync.toml").unlink()
    problems = _problems(profile_copy)
    assert len(problems) == 3
    assert any("sync.toml: missing" in p for p in problems)


def test_invalid_toml_names_the_file_and_line(profile_copy: Path) -> None:
    """A syntax error names the file and where TOML stopped reading."""
    (profile_copy / "limits.toml").write_text("[offline\nmax_count = 5\n")
    problems = _problems(profile_copy)
    assert len(problems) == 1
    assert "limits.toml: invalid TOML" in problems[0] and "line 1" in problems[0]


def test_binary_garbage_is_not_utf8(profile_copy: Path) -> None:
    """A file that is not text is reported as such, not as a traceback."""
    (profile_copy / "routing.toml").write_bytes(b"\xff\xfe\x00garbage")
    assert any("routing.toml: not UTF-8" in p for p in _problems(profile_copy))


def test_cross_file_reference_to_missing_capk(profile_copy: Path) -> None:
    """An application whose RID has no CA key is refused: its ODA would always fail."""
    _edit(profile_copy / "aids.toml", 'aid = "A0000000421010"', 'aid = "A0000000991010"')
    problems = _problems(profile_copy)
    assert any("aids.toml:aid[2].aid: no CA public key for RID A000000099" in p for p in problems)


def test_missing_directory(tmp_path: Path) -> None:
    """A profile name that does not exist says so."""
    with pytest.raises(ConfigError, match="no such profile directory"):
        load_profile(tmp_path / "nope")


_TEXT_VALUE = re.compile(r'^(\w+) = (".*"|[-0-9.]+|true|false)$', re.MULTILINE)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_mutation_gives_ok_or_located_errors(
    data: st.DataObject, default_profile_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Replacing any scalar with arbitrary TOML gives a valid profile or file-located errors."""
    directory = tmp_path_factory.mktemp("mutated")
    shutil.copytree(default_profile_dir, directory, dirs_exist_ok=True)
    filename = data.draw(st.sampled_from(sorted(PROFILE_FILES)))
    path = directory / filename
    text = path.read_text()
    matches = list(_TEXT_VALUE.finditer(text))
    target = data.draw(st.sampled_from(matches))
    replacement = data.draw(
        st.one_of(
            st.integers(-(10**13), 10**13).map(str),
            st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
            st.sampled_from(["true", "false", "1.5", '""', "[]"]),
        )
    )
    line = f"{target.group(1)} = {replacement}"
    path.write_text(text[: target.start()] + line + text[target.end():])
    try:
        load_profile(directory)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith(str(directory / "")), problem
            assert ": " in problem
