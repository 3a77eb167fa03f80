"""Bad input of every kind on the ``etika`` command line: one clear line, never a traceback.

Each row runs ``python -m terminal.cli.main`` in a subprocess, as an operator would, with
``SOFTHSM2_CONF`` and the ``ETIKA_*`` variables removed and ``--data-dir`` a fresh temporary
directory (unless the row names a prepared one), and pins the exit status (1 an error the
command reports, 2 a wrong argument or a broken profile; never 70, the status of a bug) and
words of the message on stderr. The rows run a few at a time in a module fixture, so that
~90 interpreter starts stay within the suite's time budget; each row is still its own test.

``{name}`` in a row is a prepared input (see :func:`_prepare`): garbage files, a damaged
store, a store from the future, a broken profile, a port something listens on. After the
runs, :func:`test_refused_inputs_are_left_as_they_were` checks that refusing them changed
none of them (no data lost).
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

# One pytest-xdist worker runs the whole module: the rows share one module fixture (~90
# interpreter starts), which each worker would otherwise run again.
pytestmark = pytest.mark.xdist_group("cli_bad_input")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = REPO_ROOT / "firmware-config" / "default"
PAN = "4761739001010010"  # a public EMV test card number

# args (after --data-dir)                                                              status  words in stderr
CASES: list[tuple[str, int, tuple[str, ...]]] = [
    # -- argparse and the data directory ------------------------------------------------------------------------
    ("bogus",                                                                              2, ("invalid choice",)),
    ("--data-dir {data_is_file} db status",                                                1, ("cannot write logs", "--data-dir")),
    ("--data-dir '' db status",                                                            2, ("--data-dir", "must not be empty")),
    ("--profile '' config check",                                                          2, ("--profile", "must not be empty")),
    # -- the store: garbage, damaged pages, a directory, newer software's ------------------------------------------
    ("--data-dir {garbage_db} db status",                                                  1, ("damaged", "etika.db", "backup")),
    ("--data-dir {damaged_db} db status",                                                  1, ("damaged", "etika.db", "backup")),
    ("--data-dir {damaged_db} sync status",                                                1, ("damaged", "etika.db")),
    ("--data-dir {db_is_dir} db status",                                                   1, ("etika.db", "is a file")),
    ("--data-dir {future_db} db status",                                                   1, ("schema version 99", "upgrade")),
    ("--data-dir {newer_db} db status",                                                    1, ("migration(s) [9999]", "upgrade")),
    # -- profiles: missing, garbage, broken TOML, a missing file, unusable key files ----------------------------------
    ("--profile {missing} psp route --network visa",                                       2, ("no such profile directory",)),
    ("--profile {garbage} psp route --network visa",                                       2, ("garbage: not a directory",)),
    ("--profile {prof_garbage_aids} psp route --network visa",                             2, ("aids.toml", "not UTF-8")),
    ("--profile {prof_no_sync} pinpad get-pin --amount 1",                                 2, ("sync.toml", "missing")),
    ("--profile {prof_bad_p2pe} card transact --simulated visa-credit --amount 500 --issuer psp",
                                                                                           2, ("p2pe_public_key", "not a PEM public key")),
    ("--profile {prof_rsa_platform_key} sync eod",                                         2, ("platform_public_key", "EC P-256")),
    # -- hsm ----------------------------------------------------------------------------------------------------------
    ("hsm --module {garbage} status",                                                      1, ("cannot load the PKCS#11 module",)),
    ("hsm status",                                                                         1, ("no PKCS#11 token", "hsm init")),
    ("hsm public-key --version 0",                                                         2, ("--version", "start at 1")),
    ("--data-dir {softhsm_conf_garbage} hsm status",                                       1, ("softhsm2.conf", "not UTF-8", "hsm init")),
    ("--data-dir {softhsm_conf_no_tokendir} hsm init",                                     1, ("softhsm2.conf", "directories.tokendir")),
    ("--data-dir {softhsm_is_file} hsm status",                                            1, ("token directory", "softhsm")),
    ("--data-dir {pin_is_dir} hsm init",                                                   1, ("PIN file", "Is a directory")),
    ("--data-dir {pin_garbage} hsm init",                                                  1, ("PIN file", "not UTF-8")),
    ("hsm import vault {missing} --test-transport-key",                                    1, ("cannot import", "No such file")),
    # -- platform -------------------------------------------------------------------------------------------------------
    ("platform register-terminal --terminal-id T1 --public-key {missing}",                 2, ("cannot read the public key file",)),
    ("platform register-terminal --terminal-id T1 --public-key {garbage}",                 2, ("neither a PEM public key",)),
    ("platform reconcile --date 2026-02-30",                                               2, ("--date",)),
    ("platform terminals --database {garbage}",                                            1, ("platform database", "not a database")),
    ("--data-dir {pin_readable_by_all} platform key",                                      2, ("readable by others", "chmod 600")),
    ("platform key --pin-file {empty_dir}",                                                2, ("PIN file", "not a regular file")),
    ("--data-dir {platform_is_file} platform push cmd {cmd_json} --terminal-id T1",        2, ("PIN file", "Not a directory")),
    ("platform push fx {bad_json} --terminal-id T1",                                       2, ("not valid JSON",)),
    ("platform push cmd {truncated_json} --terminal-id T1",                                2, ("not valid JSON",)),
    ("platform push blacklist {garbage} --terminal-id T1",                                 2, ("not UTF-8",)),
    ("--data-dir {platform_home} platform push fx {cmd_json} --terminal-id T1",            2, ("fx payload does not match",)),
    ("--data-dir {platform_home} platform push cmd {cmd_json} --terminal-id T1 --mqtt-ca {garbage}", 2, ("--mqtt-", "CA file")),
    ("--data-dir {platform_home} platform push cmd {cmd_json} --terminal-id T1 --mqtt-port {closed_port}", 2, ("cannot publish to the broker", "--mqtt-port")),
    ("--data-dir {platform_home} platform serve --no-mqtt --http-port {busy_port}",         2, ("already in use", "--http-port")),
    ("platform serve --no-mqtt --http-port {busy_port} --https-cert {bad_pem} --https-key {bad_pem}",
                                                                                           2, ("--https-", "certificate and key")),
    ("platform serve --http-port {busy_port} --mqtt-ca {bad_pem}",                         2, ("--mqtt-", "CA file")),
    ("platform serve --no-mqtt --http-port {busy_port} --operator-token-file {garbage}",    2, ("--operator-token-file",)),
    ("platform serve --session-expiry 99999999999",                                        2, ("--session-expiry", "at most")),
    # -- card -----------------------------------------------------------------------------------------------------------
    ("card read --simulated nope",                                                         2, ("unknown card profile", "visa-credit")),
    ("card read --timeout nan",                                                            2, ("--timeout",)),
    ("card transact --simulated visa-credit --amount abc",                                 2, ("--amount", "not an amount")),
    ("card transact --simulated visa-credit --amount 12.00 --currency XXX",                2, ("XXX", "not accepted")),
    # -- psp ------------------------------------------------------------------------------------------------------------
    ("psp route --network visa --aid zz",                                                  2, ("--aid", "not hexadecimal")),
    ("psp echo --connector nope",                                                          2, ("no [[psp]] named 'nope'",)),
    # -- simulators -----------------------------------------------------------------------------------------------------
    ("sim psp --kind iso8583 --port {busy_port}",                                          2, ("already in use", "--port")),
    ("sim psp --kind stripe --port {busy_port}",                                           2, ("already in use", "--port")),
    ("sim psp --kind iso8583 --port {busy_port} --key {bad_pem}",                          2, ("private key", "--key")),
    ("sim psp --kind iso8583 --port {busy_port} --faults bogus=1",                         2, ("unknown fault",)),
    ("sim pinpad --pin abc",                                                               2, ("--pin",)),
    # -- sync -----------------------------------------------------------------------------------------------------------
    ("sync run --destinations bogus",                                                      2, ("--destinations",)),
    ("sync run --connect-timeout nan",                                                     2, ("--connect-timeout",)),
    ("sync eod --date garbage",                                                            2, ("--date",)),
    ("sync run --once",                                                                    2, ("does not exist", "hsm init")),
    ("--data-dir {empty_dir} sync run --once",                                             2, ("has no store", "hsm init")),
    ("db status",                                                                          2, ("does not exist", "--data-dir", "hsm init")),
    ("--data-dir {empty_dir} db verify-journal",                                           2, ("has no store", "hsm init")),
    ("--data-dir {empty_dir} sync status",                                                 2, ("has no store", "hsm init")),
]

# ``pinpad get-pin`` reads the PAN from standard input.
# args                                                                 stdin        status  words in stderr
PINPAD_CASES: list[tuple[str, str, int, tuple[str, ...]]] = [
    ("pinpad get-pin --amount 12.00 --port {missing}",                    "",          2, ("PAN on standard input",)),
    ("pinpad get-pin --amount 12.00 --port {missing}",                    PAN,         1, ("cannot open PIN pad port",)),
    ("pinpad get-pin --amount 12.00 --currency XXX --port {missing}",     PAN,         2, ("unknown currency",)),
    ("pinpad get-pin --amount 12.00 --baud 0 --port {missing}",           PAN,         2, ("--baud",)),
]

#: Prepared inputs that a refusal must leave byte for byte as they were.
UNTOUCHED = (
    "garbage_db/etika.db", "damaged_db/etika.db", "future_db/etika.db", "newer_db/etika.db",
    "pin_readable_by_all/platform/token-pin", "softhsm_conf_garbage/softhsm/softhsm2.conf",
    "pin_garbage/hsm-pin", "garbage",
)


@dataclass(frozen=True)
class Run:
    argv: list[str]
    status: int | None
    stderr: str


def _garbage(size: int, seed: int) -> bytes:
    data = bytes(random.Random(seed).randrange(256) for _ in range(size))
    # Never a valid UTF-8 or SQLite start, whatever the seed.
    return b"\xff\xfe" + data


def _profile(root: Path, name: str) -> Path:
    path = root / name
    shutil.copytree(DEFAULT_PROFILE, path)
    return path


def _store(path: Path) -> Path:
    """A real store (the current schema), made by the code under test."""
    from terminal.store import Store

    path.mkdir(parents=True)
    with Store.open(path / "etika.db"):
        pass
    return path


def _prepare(root: Path) -> dict[str, Path]:
    """Every ``{name}`` a row may use, under ``root``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    inputs: dict[str, Path] = {}

    def file(name: str, content: bytes | str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    inputs["garbage"] = file("garbage", _garbage(4096, 1))
    inputs["bad_pem"] = file("bad.pem", "not a pem\n")
    inputs["bad_json"] = file("bad.json", "{not json")
    inputs["truncated_json"] = file("truncated.json", '{"command": "sync_n')
    inputs["cmd_json"] = file("cmd.json", '{"command": "sync_now"}')
    inputs["missing"] = root / "does-not-exist"
    inputs["data_is_file"] = file("data-is-a-file", "x")

    inputs["garbage_db"] = root / "garbage_db"
    file("garbage_db/etika.db", _garbage(8192, 2))
    inputs["db_is_dir"] = root / "db_is_dir"
    (root / "db_is_dir" / "etika.db").mkdir(parents=True)

    # A store whose header and schema read fine but whose outbox pages are damaged: the
    # damage is found only when a command reaches those rows.
    damaged = _store(root / "damaged_db") / "etika.db"
    conn = sqlite3.connect(damaged)
    now = time.time()
    conn.executemany(
        "INSERT INTO outbox(message_id, destination, kind, idempotency_key, payload,"
        " next_attempt_at, created_at) VALUES (?, 'platform', 'alert', ?, ?, ?, ?)",
        [(f"m{i}", f"k{i}", '{"x": "' + "y" * 200 + '"}', now, now) for i in range(3000)],
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(damaged.read_bytes())
    noise = _garbage(4096 * 18, 3)
    data[-4096 * 20:-4096 * 2] = noise[: 4096 * 18]
    damaged.write_bytes(bytes(data))
    inputs["damaged_db"] = damaged.parent

    future = _store(root / "future_db") / "etika.db"
    conn = sqlite3.connect(future)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    inputs["future_db"] = future.parent
    newer = _store(root / "newer_db") / "etika.db"
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at)"
                 " VALUES (9999, '9999_later.sql', '2030-01-01')")
    conn.commit()
    conn.execute("PRAGMA user_version = 9999")
    conn.close()
    inputs["newer_db"] = newer.parent

    inputs["prof_garbage_aids"] = _profile(root, "prof_garbage_aids")
    (inputs["prof_garbage_aids"] / "aids.toml").write_bytes(_garbage(300, 4))
    inputs["prof_bad_toml"] = _profile(root, "prof_bad_toml")
    (inputs["prof_bad_toml"] / "terminal.toml").write_text("[terminal\nterminal_id = ")
    inputs["prof_no_sync"] = _profile(root, "prof_no_sync")
    (inputs["prof_no_sync"] / "sync.toml").unlink()
    inputs["prof_bad_p2pe"] = _profile(root, "prof_bad_p2pe")
    (inputs["prof_bad_p2pe"] / "p2pe" / "iso8583-test.pem").write_text("not a key\n")
    inputs["prof_rsa_platform_key"] = _profile(root, "prof_rsa_platform_key")
    rsa_pem = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (inputs["prof_rsa_platform_key"] / "platform.pem").write_bytes(rsa_pem)
    sync_toml = inputs["prof_rsa_platform_key"] / "sync.toml"
    sync_toml.write_text(sync_toml.read_text().replace(
        "[sync]\n", '[sync]\nplatform_public_key = "platform.pem"\n', 1))

    inputs["softhsm_conf_garbage"] = root / "softhsm_conf_garbage"
    file("softhsm_conf_garbage/softhsm/softhsm2.conf", _garbage(512, 5))
    inputs["softhsm_conf_no_tokendir"] = root / "softhsm_conf_no_tokendir"
    file("softhsm_conf_no_tokendir/softhsm/softhsm2.conf", "objectstore.backend = file\n")
    inputs["softhsm_is_file"] = root / "softhsm_is_file"
    file("softhsm_is_file/softhsm", "not a directory\n")
    inputs["pin_is_dir"] = root / "pin_is_dir"
    (root / "pin_is_dir" / "hsm-pin").mkdir(parents=True)
    inputs["pin_garbage"] = root / "pin_garbage"
    file("pin_garbage/hsm-pin", _garbage(16, 6))

    inputs["empty_dir"] = root / "empty_dir"  # a data dir that exists, without a store
    (root / "empty_dir").mkdir()
    inputs["platform_is_file"] = root / "platform_is_file"
    file("platform_is_file/platform", "not a directory\n")
    inputs["pin_readable_by_all"] = root / "pin_readable_by_all"
    file("pin_readable_by_all/platform/token-pin", "12345678\n").chmod(0o644)
    return inputs


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "SOFTHSM2_CONF" and not k.startswith("ETIKA_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _argv(args: str, inputs: dict[str, str], data_dir: Path) -> list[str]:
    words = shlex.split(args.format(**inputs))
    if "--data-dir" not in words:
        words = ["--data-dir", str(data_dir), *words]
    return [sys.executable, "-m", "terminal.cli.main", *words]


def _run(argv: list[str], stdin: str, env: dict[str, str]) -> Run:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                              cwd=REPO_ROOT, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return Run(argv, None, f"(no answer within 60 s)\n{err}")
    return Run(argv, done.returncode, done.stderr)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("bad-input")
    inputs = {name: str(path) for name, path in _prepare(root).items()}
    # Something listens on busy_port; nothing listens on closed_port (bound, so no one else
    # takes it, but not listening: a connection is refused).
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    inputs["busy_port"] = str(busy.getsockname()[1])
    # push and serve sign with the platform's key and refuse to start without one (only
    # `platform key` creates it): the rows that test what comes after get a platform home.
    home = root / "platform-home"
    key = subprocess.run([sys.executable, "-m", "terminal.cli.main", "--data-dir", str(home),
                          "platform", "key"], capture_output=True, text=True,
                         env=_environment(), cwd=REPO_ROOT, timeout=120, check=False)
    assert key.returncode == 0, key.stderr
    inputs["platform_home"] = str(home)
    inputs["closed_port"] = str(closed.getsockname()[1])
    try:
        yield root, inputs
    finally:
        busy.close()
        closed.close()


@dataclass(frozen=True)
class Outcome:
    runs: dict[tuple[str, str], Run]
    changed: list[str]  # prepared inputs (UNTOUCHED) whose bytes differ after the runs


@pytest.fixture(scope="module")
def outcome(prepared: tuple[Path, dict[str, str]]) -> Outcome:
    root, inputs = prepared
    before = {name: _sha256(root / name) for name in UNTOUCHED}
    env = _environment()
    jobs = [(args, PAN) for args, _, _ in CASES] + [(a, s) for a, s, _, _ in PINPAD_CASES]
    argvs = [_argv(args, inputs, root / "data" / str(i)) for i, (args, _) in enumerate(jobs)]
    # Interpreter starts are CPU-bound: a few at a time, not all at once.
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(_run, argvs, [stdin for _, stdin in jobs],
                                [env] * len(jobs)))
    changed = [name for name in UNTOUCHED if _sha256(root / name) != before[name]]
    return Outcome(dict(zip(jobs, results, strict=True)), changed)


def _check(run: Run, status: int, words: tuple[str, ...]) -> None:
    shown = f"{shlex.join(run.argv[3:])}\n--- stderr ---\n{run.stderr}"
    assert "Traceback" not in run.stderr, shown
    assert "internal error" not in run.stderr, shown
    assert run.status == status, shown
    for word in words:
        assert word in run.stderr, shown
    # The error line is ours or argparse's ("etika: error: …", "etika db: error: …"); a
    # broken profile lists its other problems on the lines after it.
    assert any(line.startswith("etika") and "error" in line
               for line in run.stderr.splitlines()), shown


@pytest.mark.parametrize(("args", "status", "words"), CASES, ids=[c[0] or "(none)" for c in CASES])
def test_bad_argument_gets_a_clear_error(outcome: Outcome, args: str, status: int,
                                         words: tuple[str, ...]) -> None:
    """A user mistake ends with its exit status and a message naming it, no traceback."""
    _check(outcome.runs[(args, PAN)], status, words)


@pytest.mark.parametrize(("args", "stdin", "status", "words"), PINPAD_CASES,
                         ids=[f"{c[0]} <{c[1].strip() or 'empty'}" for c in PINPAD_CASES])
def test_pinpad_bad_input_gets_a_clear_error(outcome: Outcome, args: str, stdin: str,
                                             status: int, words: tuple[str, ...]) -> None:
    """get-pin refuses a bad PAN on stdin, amount, currency or port in one line."""
    run = outcome.runs[(args, stdin)]
    _check(run, status, words)
    assert PAN not in run.stderr, "the PAN must never be echoed"


def test_refused_inputs_are_left_as_they_were(outcome: Outcome) -> None:
    """Refusing a damaged store, key, PIN or configuration file never changes it."""
    assert outcome.changed == []
