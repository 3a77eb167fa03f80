"""Pilot tests of the live reader state in the status bar and of the diagnostics screen
(PSP breakers, readers): over the in-memory services, over the terminal's services with a
scripted reader probe, and once over the real pcscd + vpcd."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from hsm import KeyStore
from hsm.fake import SoftwareKeyStore
from terminal.profile import load_profile
from terminal.services import TerminalServices
from terminal.services.fake import ScriptedReaderProbe, SoftwareSigningKeys
from terminal.store.token_map import StoreTokenRegistry
from tests.terminal.test_services_breakers import trip_cih, unanswering_router
from ui.app import CounterApp, build_app
from ui.fake import FIXED_NOW, FakeCounterServices
from ui.screens.diagnostics import DiagnosticsScreen
from ui.services import TerminalCounterServices

from .conftest import SIZE, counter_app

PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"
CONTACT, CONTACTLESS = "Virtual PCD 00 00", "Virtual PCD 00 01"


def status_bar(app: CounterApp) -> str:
    return str(app.screen.query_one("#status-bar", Static).render())


async def until(pilot: Pilot[None], done: Callable[[], bool], rounds: int = 400) -> None:
    """Let the workers' messages flow until ``done()`` (no clock involved)."""
    for _ in range(rounds):
        await pilot.pause()
        if done():
            return
    raise AssertionError("the screen never showed what the test waited for")


def diagnostics_rows(app: CounterApp) -> list[tuple[str, ...]]:
    table = app.screen.query_one(DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


async def test_status_bar_follows_the_reader_probe() -> None:
    """Waiting with empty readers, "carte insérée" once a card is in, red "aucun lecteur"
    when the readers are unplugged; each from a probe the app runs in a worker."""
    fake = FakeCounterServices()
    app = counter_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "lecteur ✓ en attente" in status_bar(app))
        waiting = status_bar(app)
        fake.reader_probe.insert(CONTACT)
        app.probe_readers()
        await until(pilot, lambda: "lecteur ✓ carte insérée" in status_bar(app))
        card_in = status_bar(app)
        fake.reader_probe.unplug(CONTACT)
        fake.reader_probe.unplug(CONTACTLESS)
        app.probe_readers()
        await until(pilot, lambda: "lecteur ✗ aucun lecteur" in status_bar(app))
        none = status_bar(app)
    assert "en attente" in waiting and "carte insérée" not in waiting
    assert "carte insérée" in card_in and "aucun lecteur" not in card_in
    assert "aucun lecteur" in none and "carte insérée" not in none


async def test_reader_is_polled_on_its_own_interval() -> None:
    """With the status refresh off, the reader interval alone keeps probing."""
    fake = FakeCounterServices()
    app = build_app(fake, clock=lambda: FIXED_NOW, status_every_s=0, reader_every_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: fake.reader_probe.probes >= 3, rounds=2000)
        fake.reader_probe.insert(CONTACTLESS)
        await until(pilot, lambda: "carte insérée" in status_bar(app), rounds=2000)
        shown = status_bar(app)
    assert fake.reader_probe.probes >= 3
    assert "lecteur ✓ carte insérée" in shown


async def test_fake_diagnostics_show_each_breaker_state() -> None:
    """Closed, open with its retry time, and half-open are each a row of their own."""
    app = counter_app(FakeCounterServices(), locale="en")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f9")
        await until(pilot, lambda: isinstance(app.screen, DiagnosticsScreen)
                    and app.screen.query_one(DataTable).row_count > 0)
        psps = {row[2]: row[3] for row in diagnostics_rows(app) if row[1] == "psp"}
    assert psps == {"cih": "breaker closed", "attijariwafa": "breaker open · retry in 12 s",
                    "bmce": "breaker half-open · the next payment probes it"}


class _Keys(SoftwareKeyStore):
    def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def terminal_counter(data_dir: Path, probe: ScriptedReaderProbe | None = None
                           ) -> AsyncIterator[tuple[TerminalServices, TerminalCounterServices]]:
    services = TerminalServices(
        load_profile(PROFILE), data_dir, signing_keys=SoftwareSigningKeys(),
        key_store_factory=lambda store: cast(KeyStore, _Keys(StoreTokenRegistry(store))),
        router_factory=unanswering_router, reader_probe=probe)
    try:
        yield services, TerminalCounterServices(services)
    finally:
        await services.aclose()
        services.close()


async def test_diagnostics_show_an_open_psp_breaker_and_the_readers(data_dir: Path) -> None:
    """The terminal's acquirer failed (its breaker opened): F9 lists it open with the time
    to retry, the profile's other PSPs closed, and each reader with what it holds."""
    probe = ScriptedReaderProbe(CONTACT, CONTACTLESS)
    probe.insert(CONTACTLESS)
    async with terminal_counter(data_dir, probe) as (services, counter):
        await trip_cih(services)
        app = build_app(counter, locale="en", status_every_s=0, reader_every_s=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("f9")
            await until(pilot, lambda: isinstance(app.screen, DiagnosticsScreen)
                        and app.screen.query_one(DataTable).row_count > 0)
            rows = diagnostics_rows(app)
    psp = {row[2]: (row[0], row[3]) for row in rows if row[1] == "psp"}
    mark, value = psp["cih"]
    assert "✗" in mark and "breaker open · retry in" in value, psp
    assert all(v.endswith("breaker closed") for name, (_m, v) in psp.items() if name != "cih")
    readers = {row[2]: row[3] for row in rows if row[1] == "reader"}
    assert readers == {CONTACT: "waiting", CONTACTLESS: "card in"}


@pytest.mark.hardware
async def test_status_bar_shows_a_card_put_in_a_vpcd_reader(
        data_dir: Path, vpcd_card: Callable[..., object]) -> None:
    """Over pcscd (no reader injected): the status bar says waiting, then card in once a
    simulated card connects to vpcd's contact reader."""
    async with terminal_counter(data_dir) as (_services, counter):
        app = build_app(counter, status_every_s=0, reader_every_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "lecteur ✓ en attente" in status_bar(app),
                        rounds=20000)
            before = status_bar(app)
            vpcd_card("visa-credit")
            await until(pilot, lambda: "lecteur ✓ carte insérée" in status_bar(app),
                        rounds=20000)
            after = status_bar(app)
    assert "en attente" in before and "carte insérée" in after
