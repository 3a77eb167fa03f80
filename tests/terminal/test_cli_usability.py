"""What a newcomer hit with the CLI (issue #16): each behaviour pinned here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.cli.main import main

REPO = Path(__file__).resolve().parents[2]
PAN = "4761739001010010"  # a public EMV test card number


def _etika(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terminal.cli.main", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO)


def test_closed_stdout_ends_the_command_quietly() -> None:
    """#16.5: output to a pipe whose reader has gone exits 0 with nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    try:
        done = _etika("psp", "route", "--network", "visa", stdout=write_end)
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert done.stderr == ""


def test_help_into_a_closed_pipe_is_quiet() -> None:
    """#16.5: even `etika --help` into a closed pipe leaves no BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = _etika("--help", stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.returncode == 0


@pytest.mark.parametrize("command", [["db", "status"], ["sync", "status"],
                                     ["db", "verify-journal"], ["sync", "requeue-dead"]])
def test_mistyped_data_dir_is_refused_and_not_created(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.6: a data dir without a store is refused (exit 2) naming the init step, and the
    mistyped directory is not created."""
    typo = tmp_path / "vra"
    assert main(["--data-dir", str(typo), *command]) == 2
    err = capsys.readouterr().err
    assert str(typo) in err and "hsm init" in err
    assert not typo.exists()


def test_db_init_creates_the_store_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    """#16.6: `db init` creates the data dir and its store; a second run changes nothing."""
    where = tmp_path / "new"
    assert main(["--data-dir", str(where), "db", "init"]) == 0
    assert (where / "etika.db").is_file()
    assert main(["--data-dir", str(where), "db", "init"]) == 0
    assert "already exists" in capsys.readouterr().out
    assert main(["--data-dir", str(where), "db", "status"]) == 0


@pytest.mark.parametrize("argv", [
    ["card", "read", PAN],
    ["card", "read", "--json", PAN[:4] + " " + PAN[4:8] + " " + PAN[8:12] + " " + PAN[12:]],
    ["psp", "route", "--network", PAN],
    ["--profile", "default", PAN],
    ["hsm", "rotate", PAN],
    ["hsm", "public-key", "--version", PAN + "x"],
])
def test_usage_errors_never_echo_a_card_number(argv: list[str]) -> None:
    """#16.8: a PAN typed as an argument is not repeated in the usage error."""
    done = _etika(*argv)
    assert done.returncode == 2, done.stderr
    digits = "".join(c for c in done.stderr if c.isdigit())
    assert PAN not in digits and PAN[:12] not in done.stderr.replace(" ", "")
    assert "card number removed" in done.stderr


@pytest.mark.parametrize(("remove", "named"), [
    ("pki/ca.pem",       "sync.ca_file"),
    ("pki/terminal.pem", "sync.cert_file"),
    ("pki/terminal.key", "sync.key_file"),
])
def test_config_check_names_a_missing_tls_file(
    tmp_path: Path, remove: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.7: config check fails (exit 2) when a TLS file the profile names is missing."""
    from edge_sync.pki import ensure_test_pki

    data = tmp_path / "data"
    ensure_test_pki(data / "pki")
    assert main(["--data-dir", str(data), "config", "check"]) == 0
    (data / remove).unlink()
    assert main(["--data-dir", str(data), "config", "check"]) == 2
    out = capsys.readouterr().out
    assert named in out and str(data / remove) in out


def test_config_check_refuses_a_key_that_does_not_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.7: a terminal certificate with another certificate's key is named, not ok."""
    from edge_sync.pki import ensure_test_pki

    data = tmp_path / "data"
    ensure_test_pki(data / "pki")
    (data / "pki" / "terminal.key").write_bytes((data / "pki" / "broker.key").read_bytes())
    assert main(["--data-dir", str(data), "config", "check"]) == 2
    assert "cannot be loaded together" in capsys.readouterr().out


def test_config_check_names_a_missing_pkcs11_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.7: the PKCS#11 module the profile (or ETIKA_PKCS11_MODULE) names must exist."""
    from edge_sync.pki import ensure_test_pki

    data = tmp_path / "data"
    ensure_test_pki(data / "pki")
    monkeypatch.setenv("ETIKA_PKCS11_MODULE", str(tmp_path / "nope.so"))
    assert main(["--data-dir", str(data), "config", "check"]) == 2
    assert "nope.so" in capsys.readouterr().out


def test_no_pcscd_is_reported_at_once_with_how_to_start_it(tmp_path: Path) -> None:
    """#16.3: with no PC/SC service, `card read` says pcscd is not running and how to start
    it, instead of "no card was presented" after the whole timeout."""
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(tmp_path / "var"),
         "card", "read", "--timeout", "30"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 1, done.stderr
    assert "pcscd) is not running" in done.stderr and "systemctl start" in done.stderr
    assert "no card was presented" not in done.stderr


def test_sync_status_drops_an_error_older_than_the_last_success(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """#16.10: `sync status` shows a destination's error only while no later delivery
    succeeded; an old one is not shown after later successes."""
    import json

    from terminal.store import Store
    from terminal.store.outbox import SqliteOutbox

    with Store.open(data_dir / "etika.db") as store:
        outbox = SqliteOutbox(store)
        outbox.note_result("platform", ok=False, now=100.0, error="broker unreachable")
        assert main(["--data-dir", str(data_dir), "sync", "status", "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["destinations"]
        assert row["last_error"] == "broker unreachable"
        outbox.note_result("platform", ok=True, now=200.0)
    assert main(["--data-dir", str(data_dir), "sync", "status", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["destinations"]
    assert row["last_error"] is None and row["last_success"] is not None


def test_a_mistyped_profile_name_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    """#16.10: `--profile defualt` is answered with "did you mean 'default'?" (exit 2)."""
    assert main(["--profile", "defualt", "config", "check"]) == 2
    assert "did you mean 'default'?" in capsys.readouterr().out


def test_reader_errors_do_not_say_on_on() -> None:
    """#16.10: a failure powering the card on in a named reader reads "... on in reader",
    not "on on reader" (the sharing-violation message)."""
    from smartcard import scard

    from drivers.pcsc_errors import error_for_hresult

    error = error_for_hresult(scard.SCARD_E_SHARING_VIOLATION,
                              operation="powering the card on", reader="Virtual PCD 00 00")
    assert "on on" not in str(error)
    assert "powering the card on in reader 'Virtual PCD 00 00'" in str(error)
