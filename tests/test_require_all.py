"""ETIKA_REQUIRE_ALL=1 (set by .ci/run): a test whose pcscd, Mosquitto or PostgreSQL is
missing fails, naming what is missing; without it such a test skips (issue #10 item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.require import REQUIRE_ALL, component_missing

REPO = Path(__file__).resolve().parents[1]

# One test per component, each reaching it through its fixture.
_NEEDS = [
    "tests/integration/test_pcsc_card.py::test_empty_reader",
    "tests/integration/test_sync_mqtt.py::test_tls_with_client_certificates",
    "tests/edge_sync/platform/test_errors.py::test_every_psycopg_error_in_a_batch_is_mapped",
]


def _run_without_components(tmp_path: Path, require_all: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ALL}
    env.update(
        ETIKA_TEST_PCSCD=str(tmp_path / "no-pcscd"),
        ETIKA_TEST_MOSQUITTO=str(tmp_path / "no-mosquitto"),
        ETIKA_TEST_POSTGRES="postgresql://127.0.0.1:1/test",  # port 1: nothing listens
    )
    if require_all:
        env[REQUIRE_ALL] = "1"
    return subprocess.run(
        # On a pytest-xdist worker, as `make test` runs (one: each worker starts the whole
        # plugin set, and the fixtures decide the same way in each).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", "-n", "1",
         *_NEEDS],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )


@pytest.mark.slow
def test_missing_components_fail_the_run_under_require_all(tmp_path: Path) -> None:
    """With ETIKA_REQUIRE_ALL=1 and pcscd, Mosquitto and PostgreSQL missing, each test that
    needs one fails and the output names the missing component."""
    run = _run_without_components(tmp_path, require_all=True)
    assert run.returncode == 1, run.stdout
    assert "3 errors" in run.stdout, run.stdout  # fixtures fail: an error at setup
    for named in ("no-pcscd", "no-mosquitto", "127.0.0.1:1"):
        assert named in run.stdout, run.stdout


@pytest.mark.slow
def test_missing_components_skip_without_require_all(tmp_path: Path) -> None:
    """Without ETIKA_REQUIRE_ALL the same tests skip, saying why, and the run passes."""
    run = _run_without_components(tmp_path, require_all=False)
    assert run.returncode == 0, run.stdout
    assert "3 skipped" in run.stdout, run.stdout


def test_component_missing_fails_only_under_require_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """component_missing() skips by default and fails when ETIKA_REQUIRE_ALL=1."""
    monkeypatch.delenv(REQUIRE_ALL, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no broker"):
        component_missing("no broker")
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="no broker"):
        component_missing("no broker")


def test_ci_sets_require_all() -> None:
    """.ci/run exports ETIKA_REQUIRE_ALL=1 before running the suite."""
    script = (REPO / ".ci" / "run").read_text()
    assert "export ETIKA_REQUIRE_ALL=1" in script
    assert script.index("export ETIKA_REQUIRE_ALL=1") < script.index("make test")
