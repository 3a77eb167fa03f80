"""``etika demo`` with its UI, driven by Pilot: simulators started by PID, a card from the
shelf plugged into vpcd and read over pcscd, the sale approved through the acquirer and the
PIN pad, the receipt printed on the simulated printer, the sale synced to the platform,
every process stopped at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from simulators.demo.fleet import Fleet
from simulators.demo.interactive import DemoCounterApp, run_interactive
from simulators.demo.processes import etika_env
from terminal.cli.context import CliContext
from tests.fixtures.pcsc import Pcscd
from ui.app import CounterApp
from ui.screens import PresentCardScreen, ResultScreen

warnings.filterwarnings("ignore", message=".*TripleDES.*")

pytestmark = [pytest.mark.network, pytest.mark.hardware]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_sale_from_the_shelf_is_approved_and_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], pcscd: Pcscd) -> None:
    """750 MAD with the shelf's Visa, plugged into vpcd and read over pcscd (online PIN on
    the pty PIN pad): ACCEPTÉ, the simulated printer kept the receipt, the fleet's outbox
    worker carried the sale to the platform; the demo stops every process it started, by
    PID, on exit."""
    seen: dict[str, str] = {}
    started: list[int] = []

    async def drive(app: CounterApp) -> None:
        assert isinstance(app, DemoCounterApp)
        seen["over_pcsc"] = str(app.shelf.over_pcsc)
        async with app.run_test(size=(120, 34)) as pilot:
            for _ in range(5):
                await pilot.pause()
            await pilot.press("7", "5", "0", "enter")
            for _ in range(200):
                await pilot.pause()
                if isinstance(app.screen, PresentCardScreen):
                    break
            await pilot.press("1")
            for _ in range(6000):
                await pilot.pause(0.01)
                screen = app.screen
                if not isinstance(screen, ResultScreen) or not screen.query("#verdict"):
                    continue  # the result is not composed yet
                status = str(screen.query_one("#print-status").render())
                if status.count("imprimé") >= 2:
                    seen["print-status"] = status
                    break
                if "ACCEPTÉ" not in str(screen.query_one("#verdict").render()):
                    break  # not approved: the assertions below say what it was
            seen["verdict"] = str(app.screen.query_one("#verdict").render())
            for widget in app.screen.query("#reason"):
                seen["reason"] = str(widget.render())
            # The fleet's outbox worker carries the sale to the platform (through the broker).
            for _ in range(600):
                seen["platform_rows"] = str(await asyncio.to_thread(platform_rows))
                if seen["platform_rows"] != "0":
                    break
                await pilot.pause(0.1)

    fleets: list[Fleet] = []

    def note(fleet: Fleet) -> None:
        started.extend(fleet.processes.pids)
        fleets.append(fleet)

    def platform_rows() -> int:
        database = fleets[0].platform_db
        if not database.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            try:
                return int(db.execute("SELECT count(*) FROM platform_transactions")
                           .fetchone()[0])
            except sqlite3.OperationalError:  # the platform is still migrating
                return 0

    data_dir = tmp_path / "data"
    init = subprocess.run([sys.executable, "-m", "terminal.cli.main", "--data-dir",
                           str(data_dir), "hsm", "init"], capture_output=True, text=True,
                          env=etika_env(), timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    ctx = CliContext(profile_name="default", data_dir=data_dir)
    assert run_interactive(ctx, runner=lambda app: asyncio.run(drive(app)),
                           on_fleet=note) == 0
    assert seen["over_pcsc"] == "True"
    assert "ACCEPTÉ" in seen["verdict"], seen
    assert seen["platform_rows"] == "1", seen
    assert started and [pid for pid in started if _alive(pid)] == []
    assert "print-status" in seen and "non imprimé" not in seen["print-status"], seen
    out = capsys.readouterr().out
    assert "2 receipt(s) printed" in out
    assert "750,00" in out or "750.00" in out
