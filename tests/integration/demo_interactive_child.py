"""The interactive demo driven by Pilot, in a process of its own (for
:mod:`tests.integration.test_demo_interactive`).

    python -m tests.integration.demo_interactive_child DATA_DIR

The demo opens the terminal's key store in its own process, and SoftHSM reads its
configuration once per process: a pytest worker that loaded SoftHSM for the session's token
would hand the demo that token instead of the one ``hsm init`` made in DATA_DIR. So the demo
runs here, in a fresh interpreter; the last line printed is a JSON object with what the
driver saw and the PIDs the demo started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import warnings
from pathlib import Path

from simulators.demo.fleet import Fleet
from simulators.demo.interactive import DemoCounterApp, run_interactive
from terminal.cli.context import CliContext
from ui.app import CounterApp
from ui.screens import PresentCardScreen, ResultScreen

warnings.filterwarnings("ignore", message=".*TripleDES.*")


def main(data_dir: Path) -> int:
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

    ctx = CliContext(profile_name="default", data_dir=data_dir)
    status = run_interactive(ctx, runner=lambda app: asyncio.run(drive(app)), on_fleet=note)
    print(json.dumps({"status": status, "seen": seen, "started": started}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
