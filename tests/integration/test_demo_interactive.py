"""``etika demo`` with its UI, driven by Pilot: simulators started by PID, a card from the
shelf plugged into vpcd and read over pcscd, the sale approved through the acquirer and the
PIN pad, the receipt printed on the simulated printer, the sale synced to the platform,
every process stopped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from simulators.demo.processes import etika_env
from tests.fixtures.pcsc import Pcscd

warnings.filterwarnings("ignore", message=".*TripleDES.*")

pytestmark = [pytest.mark.network, pytest.mark.hardware]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_sale_from_the_shelf_is_approved_and_printed(
        tmp_path: Path, pcscd: Pcscd) -> None:
    """750 MAD with the shelf's Visa, plugged into vpcd and read over pcscd (online PIN on
    the pty PIN pad): ACCEPTÉ, the simulated printer kept the receipt, the fleet's outbox
    worker carried the sale to the platform; the demo stops every process it started, by
    PID, on exit. The demo runs in a process of its own
    (:mod:`tests.integration.demo_interactive_child`): SoftHSM reads its configuration once
    per process, and this worker's may already be the session token's."""
    data_dir = tmp_path / "data"
    init = subprocess.run([sys.executable, "-m", "terminal.cli.main", "--data-dir",
                           str(data_dir), "hsm", "init"], capture_output=True, text=True,
                          env=etika_env(), timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    child = subprocess.run([sys.executable, "-m", "tests.integration.demo_interactive_child",
                            str(data_dir)], capture_output=True, text=True, env=etika_env(),
                           timeout=600, check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    out, _, last = child.stdout.rstrip().rpartition("\n")
    report = json.loads(last)
    seen, started = report["seen"], report["started"]
    assert report["status"] == 0, report
    assert seen["over_pcsc"] == "True"
    assert "ACCEPTÉ" in seen["verdict"], seen
    assert seen["platform_rows"] == "1", seen
    assert started and [pid for pid in started if _alive(pid)] == []
    assert "print-status" in seen and "non imprimé" not in seen["print-status"], seen
    assert "2 receipt(s) printed" in out
    assert "750,00" in out or "750.00" in out
