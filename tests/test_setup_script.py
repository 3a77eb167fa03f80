"""scripts/setup: names what is missing when it cannot install it; a second run changes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "setup"


def _shim(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


def test_not_root_names_missing_packages_and_the_command(tmp_path: Path) -> None:
    """Without root, setup lists the missing Debian packages, the apt-get line, and fails."""
    shims = tmp_path / "bin"
    shims.mkdir()
    _shim(shims, "dpkg-query", "exit 1")  # nothing is installed
    _shim(shims, "id", 'if [ "$1" = "-u" ]; then echo 1000; else echo user; fi')
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}",
           "ETIKA_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode != 0
    assert "missing Debian packages: pcscd vsmartcard-vpcd" in result.stderr
    assert "sudo apt-get install -y pcscd" in result.stderr
    assert not (tmp_path / "var").exists(), "nothing is prepared before the packages are there"


@pytest.mark.hsm
@pytest.mark.slow
def test_second_run_changes_nothing(tmp_path: Path) -> None:
    """Run twice on a new data dir: the second run only says it is ready."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["ETIKA_DATA_DIR"] = str(tmp_path / "var")
    # The machine-wide /usr/local/bin link may belong to another checkout (it is left alone
    # and named on every run): not this test's business.
    env["ETIKA_NO_PATH_LINK"] = "1"
    first = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=env,
                           timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    if os.geteuid() == 0:  # #16.15: as root, setup puts etika on PATH (or says whose it is)
        assert Path("/usr/local/bin/etika").exists() or "already exists" in first.stderr
    snapshot = {p: p.stat().st_mtime_ns for p in (tmp_path / "var").rglob("*")}
    second = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=env,
                            timeout=600, check=False)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines() == [
        line for line in second.stdout.strip().splitlines() if line.startswith("setup: ready")
    ], second.stdout
    changed = [p for p in (tmp_path / "var").rglob("*")
               if p.is_file() and snapshot.get(p) != p.stat().st_mtime_ns]
    changed = [p for p in changed if "logs" not in p.parts]  # the CLI's own log lines
    assert not changed, f"the second run rewrote {changed}"
