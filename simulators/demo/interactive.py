"""``etika demo`` on a TTY: the counter UI with every other side simulated and a card shelf.

Started by PID and stopped on exit: two PIN pads on ptys (the cardholder types 1234, or a
wrong PIN), the receipt printer on a pty (receipts kept as text in the work directory),
the profile's ISO 8583 acquirers on free loopback ports, and the PoP back end. Cards are
simulated in-process: on the "present card" screen a digit key puts one on the reader
(the shelf, listed on screen). Not started here: the platform and a broker (the outbox
fills and the status bar shows it; ``etika demo --headless`` drains to a platform).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.printer import EscposSerialPrinter
from drivers.reader_errors import ReaderTimeoutError
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.demo.processes import ETIKA, DemoError, Processes, free_port, wait_for_port
from terminal.cli.context import CliContext
from ui.app import CounterApp
from ui.services import TerminalCounterServices

__all__ = ["SHELF", "ShelfCard", "ShelfReader", "run_interactive"]


@dataclass(frozen=True)
class ShelfCard:
    key: str
    label: str
    profile: str
    interface: str = "contact"
    wrong_pin: bool = False


SHELF = (
    ShelfCard("1", "Visa credit", "visa-credit"),
    ShelfCard("2", "Mastercard debit (CDA)", "mastercard-debit"),
    ShelfCard("3", "co-badged domestic", "domestic-visa"),
    ShelfCard("4", "expired Visa", "visa-expired"),
    ShelfCard("5", "Visa, wrong PIN", "visa-credit", wrong_pin=True),
    ShelfCard("6", "Visa contactless (F6 first)", "visa-credit", "contactless"),
)


class ShelfReader:
    """A reader whose card is whichever the cashier takes from the shelf."""

    def __init__(self) -> None:
        self._inserted = asyncio.Event()
        self._card: SimulatedCardReader | None = None
        self.shelf_card: ShelfCard | None = None

    def present(self, card: ShelfCard) -> None:
        self.shelf_card = card
        self._card = in_process_reader(card.profile, card.interface)
        self._inserted.set()

    async def list_readers(self) -> list[str]:
        return ["Etika demo shelf"]

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        try:
            await asyncio.wait_for(self._inserted.wait(), timeout)
        except TimeoutError:
            raise ReaderTimeoutError("no card was taken from the shelf in time",
                                     reader="Etika demo shelf") from None
        self._inserted.clear()  # one card per sale
        assert self._card is not None
        return await self._card.wait_for_card(None, timeout)

    async def connect(self, reader: str) -> Any:
        assert self._card is not None
        return await self._card.connect(reader)

    def events(self) -> Any:
        assert self._card is not None
        return self._card.events()


class DemoCounterApp(CounterApp):
    """The counter plus the shelf keys (digits, on the "present card" screen)."""

    def __init__(self, services: TerminalCounterServices, shelf: ShelfReader) -> None:
        super().__init__(services)
        self.shelf = shelf

    def on_key(self, event: Any) -> None:
        from ui.screens.present_card import PresentCardScreen

        if not isinstance(self.screen, PresentCardScreen):
            return
        card = next((c for c in SHELF if c.key == event.key), None)
        if card is not None:
            self.shelf.present(card)
            self.notify(f"{card.key} · {card.label}", title="shelf")

    def on_mount(self) -> None:
        self.notify("  ".join(f"[{c.key}] {c.label}" for c in SHELF),
                    title="card shelf: on the card screen, press", timeout=30)


def _first_pty(processes: Processes, what: str, command: list[str]) -> str:
    process = processes.start(what, command)
    line = processes.first_line(process, what)
    match = re.search(r"/dev/pts/\d+", line)
    if match is None:
        raise DemoError(f"{what} did not start: {line!r}")
    return match.group(0)


def _register_with_pop(pop_url: str, services: Any) -> None:
    """Give the PoP back end this terminal's signing key (a real one is provisioned)."""
    import httpx

    keys = services.signing_keys()
    version = keys.signing_key_version
    answer = httpx.post(f"{pop_url}/v1/admin/terminals", timeout=10, json={
        "terminal_id": services.profile.terminal.terminal_id, "key_version": version,
        "public_key_pem": keys.public_key_pem(version).decode()})
    if answer.status_code != 200:
        raise DemoError(f"the PoP back end refused the terminal's key: {answer.text[:200]}")


def run_interactive(ctx: CliContext,
                    runner: Callable[[CounterApp], object] = lambda app: app.run()) -> int:
    """Start the simulators, run the counter (``runner``: a test drives it with Pilot),
    stop everything by PID."""
    processes = Processes()
    with tempfile.TemporaryDirectory(prefix="etika-demo-") as tmp:
        work = Path(tmp)
        profile_dir = work / "profile"
        shutil.copytree(ctx.profile_dir, profile_dir)
        try:
            routing = profile_dir / "routing.toml"
            text = routing.read_text()
            for old in sorted(set(re.findall(r"^port = (\d+)$", text, flags=re.MULTILINE))):
                port = free_port()
                text = re.sub(rf"^port = {old}$", f"port = {port}", text, flags=re.MULTILINE)
                process = processes.start(f"acquirer :{port}", [
                    *ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port)])
                wait_for_port(port, process, f"the ISO 8583 acquirer on port {port}")
            routing.write_text(text)
            good_pin = _first_pty(processes, "PIN pad", [*ETIKA, "sim", "pinpad", "--pin", "1234"])
            bad_pin = _first_pty(processes, "PIN pad (wrong PIN)",
                                 [*ETIKA, "sim", "pinpad", "--pin", "9999"])
            printer_port = _first_pty(processes, "printer", [
                *ETIKA, "sim", "printer", "--out", str(work / "receipts")])
            pop = processes.start("PoP back end", [
                *ETIKA, "sim", "pop", "--port", "0", "--data-dir", str(work / "pop"),
                "--confirm-delay-ms", "200"])
            url = re.search(r"https?://[0-9.]+:[0-9]+", processes.first_line(pop, "PoP"))
            if url is not None:
                sync = profile_dir / "sync.toml"
                sync.write_text(re.sub(r'^pop_url = .*$', f'pop_url = "{url.group(0)}"',
                                       sync.read_text(), flags=re.MULTILINE))
            shelf = ShelfReader()
            # The profile copy (its ports moved), the data dir and services of the command.
            demo_ctx = dataclasses.replace(ctx, profile_name=str(profile_dir), _profile=None)
            profile = demo_ctx.profile()
            with demo_ctx.services(card_reader=shelf) as services:
                if url is not None:
                    _register_with_pop(url.group(0), services)

                def pinpad() -> str:
                    card = shelf.shelf_card
                    return bad_pin if card is not None and card.wrong_pin else good_pin

                printer = EscposSerialPrinter(printer_port, profile.printer.baud)
                counter = TerminalCounterServices(services, pinpad_port=pinpad,
                                                  printer=printer)
                try:
                    runner(DemoCounterApp(counter, shelf))
                finally:
                    printer.close()
            receipts = sorted((work / "receipts").glob("*.txt"))
            print(f"etika demo: {len(receipts)} receipt(s) printed; every simulator stopped")
            for receipt in receipts[-2:]:
                print(receipt.read_text(encoding="utf-8"))
        finally:
            processes.stop_all()
    return 0
