"""``etika demo`` with its UI, driven by Pilot: simulators started by PID, a card from the
shelf, the sale approved through the acquirer and the PIN pad, the receipt printed on the
simulated printer, everything stopped at the end."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any, cast

import pytest

from hsm import KeyStore
from hsm.fake import SoftwareKeyStore
from simulators.demo.interactive import run_interactive
from terminal.cli.context import CliContext
from terminal.services import TerminalServices
from terminal.store.token_map import StoreTokenRegistry
from ui.app import CounterApp
from ui.screens import PresentCardScreen, ResultScreen

warnings.filterwarnings("ignore", message=".*TripleDES.*")

class _Keys(SoftwareKeyStore):
    """In-memory card keys (no token in a test's data dir), closable like the token."""

    def close(self) -> None:
        return None


pytestmark = [pytest.mark.network, pytest.mark.hardware]


def test_demo_sale_from_the_shelf_is_approved_and_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """750 MAD with the shelf's Visa (online PIN on the pty PIN pad): ACCEPTÉ, and the
    simulated printer kept the receipt; the demo stops its processes on exit."""
    seen: dict[str, str] = {}

    async def drive(app: CounterApp) -> None:
        async with app.run_test(size=(120, 34)) as pilot:
            for _ in range(5):
                await pilot.pause()
            await pilot.press("7", "5", "0", "enter")
            for _ in range(200):
                await pilot.pause()
                if isinstance(app.screen, PresentCardScreen):
                    break
            await pilot.press("1")
            for _ in range(3000):
                await pilot.pause(0.01)
                if isinstance(app.screen, ResultScreen) and "print-status" in seen:
                    break
                if isinstance(app.screen, ResultScreen):
                    status = str(app.screen.query_one("#print-status").render())
                    if status.count("imprimé") >= 2:
                        seen["print-status"] = status
            seen["verdict"] = str(app.screen.query_one("#verdict").render())
            for widget in app.screen.query("#reason"):
                seen["reason"] = str(widget.render())

    def services(ctx: CliContext, **injected: Any) -> TerminalServices:
        return TerminalServices(ctx.profile(), ctx.data_dir, key_store_factory=lambda store:
                                cast(KeyStore, _Keys(StoreTokenRegistry(store))), **injected)

    ctx = CliContext(profile_name="default", data_dir=tmp_path / "data",
                     services_factory=services)
    assert run_interactive(ctx, runner=lambda app: asyncio.run(drive(app))) == 0
    assert "ACCEPTÉ" in seen["verdict"], seen
    assert "non imprimé" not in seen.get("print-status", "")
    out = capsys.readouterr().out
    assert "2 receipt(s) printed" in out
    assert "750,00" in out or "750.00" in out
