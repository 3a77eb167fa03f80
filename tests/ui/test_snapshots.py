"""Snapshots of the counter's main screens (pytest-textual-snapshot; the SVGs are kept in
``__snapshots__`` and copied to ``docs/screenshots`` for the README)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from ui.fake import FakeCounterServices, ScriptedSale

from .conftest import SIZE, counter_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def _pause(pilot: Pilot[None], n: int = 30) -> None:
    for _ in range(n):
        await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor would make the picture flicker
    await pilot.pause()


def test_sale_screen(snap_compare: Any) -> None:
    """The sale screen: amount, currencies, FX line, keypad, status bar, shortcuts."""
    async def before(pilot: Pilot[None]) -> None:
        await _pause(pilot, 5)
        await pilot.press("f2", "1", "2", "5", ",", "5", "0")
        await _pause(pilot)

    assert snap_compare(counter_app(FakeCounterServices()), terminal_size=SIZE,
                        run_before=before)


def test_result_approved(snap_compare: Any) -> None:
    """The approved result with its customer receipt."""
    async def before(pilot: Pilot[None]) -> None:
        await _pause(pilot, 5)
        await pilot.press("1", "2", "5", ",", "5", "0", "enter")
        await _pause(pilot, 60)

    assert snap_compare(counter_app(FakeCounterServices(sales=[ScriptedSale()])),
                        terminal_size=SIZE, run_before=before)


def test_result_declined(snap_compare: Any) -> None:
    """A decline with its reason in words and a printer out of paper."""
    fake = FakeCounterServices(sales=[ScriptedSale(state="financial_declined",
                                                   reason="code PIN erroné")],
                               printer_fault="plus de papier")

    async def before(pilot: Pilot[None]) -> None:
        await _pause(pilot, 5)
        await pilot.press("4", "0", "enter")
        await _pause(pilot, 60)

    assert snap_compare(counter_app(fake), terminal_size=SIZE, run_before=before)


def test_history(snap_compare: Any) -> None:
    """The history with three payments."""
    fake = FakeCounterServices(sales=[
        ScriptedSale(), ScriptedSale(masked_pan="541333******4111", network="MASTERCARD",
                                     offline=True),
        ScriptedSale(state="financial_declined", reason="refusé")])

    async def before(pilot: Pilot[None]) -> None:
        await _pause(pilot, 5)
        for amount in ("10", "250", "99"):
            await pilot.press(*amount, "enter")
            await _pause(pilot, 40)
            await pilot.press("enter")
            await _pause(pilot, 10)
        await pilot.press("f3")
        await _pause(pilot, 40)

    assert snap_compare(counter_app(fake), terminal_size=SIZE, run_before=before)


def test_diagnostics(snap_compare: Any) -> None:
    """The diagnostics screen."""
    async def before(pilot: Pilot[None]) -> None:
        await _pause(pilot, 5)
        await pilot.press("f9")
        await _pause(pilot, 40)

    assert snap_compare(counter_app(FakeCounterServices()), terminal_size=SIZE,
                        run_before=before)
