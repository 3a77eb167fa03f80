"""The etika command: exit statuses and one-line errors, never a traceback for a mistake."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.cli.main import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture
def with_pki(tmp_path: Path) -> Path:
    """The data dir (ETIKA_DATA_DIR) with the test PKI the default profile's [sync] names."""
    from edge_sync.pki import ensure_test_pki

    ensure_test_pki(tmp_path / "var" / "pki")
    return tmp_path / "var"


def test_config_check_ok(with_pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default profile checks ok with exit 0."""
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_config_check_lists_errors_and_exits_2(
    tmp_path: Path, default_profile_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken profile prints each problem as file:key: reason and exits 2."""
    broken = tmp_path / "broken"
    shutil.copytree(default_profile_dir, broken)
    aids = broken / "aids.toml"
    aids.write_text(aids.read_text().replace('tac_denial = "0010000000"', 'tac_denial = "zz"', 1))
    assert main(["config", "check", str(broken)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{broken}/aids.toml:aid[0].tac_denial: must be an even number of "
                   "hexadecimal digits"]


def test_profile_option_and_environment(
    tmp_path: Path, default_profile_dir: Path, monkeypatch: pytest.MonkeyPatch, with_pki: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--profile takes a directory; ETIKA_PROFILE is read when no option is given."""
    assert main(["--profile", str(default_profile_dir), "config", "check"]) == 0
    monkeypatch.setenv("ETIKA_PROFILE", "no-such-profile")
    assert main(["config", "check"]) == 2
    assert "no such profile directory" in capsys.readouterr().out


def test_db_status_json_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """db status --json reports schema and tables; verify-journal passes on a new store."""
    data_dir = tmp_path / "data"
    assert main(["--data-dir", str(data_dir), "db", "init"]) == 0
    assert "created the store" in capsys.readouterr().out
    assert main(["--data-dir", str(data_dir), "db", "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema_version"] >= 1 and "payments" in report["tables"]
    assert main(["--data-dir", str(data_dir), "db", "verify-journal"]) == 0
    assert (data_dir / "logs").is_dir()


@pytest.mark.parametrize(
    ("args",                            "words"),
    [
        (["nosuchcommand"],                 "invalid choice"),
        (["db", "status", "--bogus"],       "unrecognized arguments"),
        (["config"],                        "required"),
    ],
)
def test_wrong_arguments_give_usage_not_traceback(args: list[str], words: str) -> None:
    """A wrong argument is a usage error with exit 2 and no traceback."""
    result = run(*args)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    """A data dir that is a file gives one clear line, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("--data-dir", str(blocker), "db", "status")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "--data-dir" in result.stderr
