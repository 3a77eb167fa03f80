"""A hostile profile on the ``etika`` command line: ``card``, ``psp`` and ``sync`` stop with
the profile's problem (exit 2, the file and key named), never a traceback (issue #17
item 10; the style of ``tests/test_cli_bad_input.py``).

Each profile is a copy of the default one with one value made hostile, each run is
``python -m terminal.cli.main`` in a subprocess with a fresh ``--data-dir`` and the
``ETIKA_*`` variables and ``SOFTHSM2_CONF`` removed. The runs go a few at a time in a
module fixture; each (profile, command) pair is still its own test.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("cli_hostile_profile")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROFILE = REPO_ROOT / "firmware-config" / "default"

# name: (file, text replaced, its hostile replacement, words the error names)
PROFILES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # The issue's own cases: an unclosed IPv6 PSP URL, TOML past the parser's recursion, an
    # FX as_of at the datetime limits.
    "psp_url": ("routing.toml", 'url = "http://127.0.0.1:8590"', 'url = "http://[::1"',
                ("routing.toml:psp[3].url", "not a valid URL")),
    "deep_toml": ("limits.toml", "[offline]", "deep = " + "[" * 3000 + "]" * 3000 + "\n[offline]",
                  ("limits.toml", "nested too deep")),
    "fx_as_of": ("currencies.toml", 'as_of = "2026-11-22T06:00:00Z"',
                 "as_of = 9999-12-31T23:59:59-23:59",
                 ("currencies.toml:fx_rate[0].as_of", "between 2000 and 2999")),
    # The same classes found beside them: a URL urlsplit reads and httpx refuses, the sync
    # URL, a NUL in a key path, text the ISO 8583 encoder cannot send, a crl.toml too deep.
    "psp_url_netloc": ("routing.toml", 'url = "http://127.0.0.1:8590"',
                       'url = "http://[::1]x:8590"', ("routing.toml:psp[3].url", "not a valid URL")),
    "sync_url": ("sync.toml", 'https_url = "https://127.0.0.1:8443"', 'https_url = "http://[::1"',
                 ("sync.toml:sync.https_url", "not a valid URL")),
    "nul_path": ("sync.toml", 'ca_file = "pki/ca.pem"', 'ca_file = "pki/\\u0000"',
                 ("sync.toml:sync.ca_file", "control characters")),
    "merchant": ("terminal.toml", 'merchant_name = "Epicerie Atlas, Casablanca"',
                 'merchant_name = "Épicerie Atlas"',
                 ("terminal.toml:terminal.merchant_name", "printable ASCII")),
    "deep_crl": ("crl.toml", "", "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
                 ("crl.toml", "nested too deep")),
}
COMMANDS = {
    "card": "card transact --simulated visa-credit --amount 500 --issuer psp",
    "psp": "psp route --network visa",
    "sync": "sync run --once",
}


#: The issue's three cases through every command; each class found beside them through the
#: command where it crashed (one interpreter start each keeps the module in the budget).
CASES = [(profile, command) for profile in ("psp_url", "deep_toml", "fx_as_of")
         for command in COMMANDS] + [
    ("psp_url_netloc", "card"), ("sync_url", "sync"), ("nul_path", "sync"),
    ("merchant", "card"), ("deep_crl", "psp"),
]


def _hostile_profile(root: Path, name: str) -> Path:
    filename, old, new, _ = PROFILES[name]
    path = root / name
    shutil.copytree(DEFAULT_PROFILE, path)
    target = path / filename
    text = target.read_text()
    if old:
        assert old in text, f"{old!r} not in {filename}"
        target.write_text(text.replace(old, new, 1))
    else:
        target.write_text(new)
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k != "SOFTHSM2_CONF" and not k.startswith("ETIKA_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[tuple[str, str], subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("hostile-profile")
    profiles = {name: _hostile_profile(root, name) for name in PROFILES}
    jobs = CASES
    argvs = [[sys.executable, "-m", "terminal.cli.main",
              "--data-dir", str(root / "data" / f"{profile}-{command}"),
              "--profile", str(profiles[profile]), *shlex.split(COMMANDS[command])]
             for profile, command in jobs]
    # Interpreter starts are CPU-bound: a few at a time.
    with ThreadPoolExecutor(max_workers=3) as pool:
        yield dict(zip(jobs, pool.map(_run, argvs), strict=True))


@pytest.mark.parametrize(("profile", "command"), CASES)
def test_hostile_profile_is_a_clear_profile_error(
        runs: dict[tuple[str, str], subprocess.CompletedProcess[str]],
        profile: str, command: str) -> None:
    """The command ends with exit 2 and the profile's file:key and reason, no traceback."""
    run = runs[(profile, command)]
    shown = f"{profile} / etika {COMMANDS[command]}\n--- stderr ---\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr, shown
    assert "internal error" not in run.stderr, shown
    assert run.returncode == 2, shown
    assert run.stderr.startswith("etika: error: "), shown
    for word in PROFILES[profile][3]:
        assert word in run.stderr, shown
