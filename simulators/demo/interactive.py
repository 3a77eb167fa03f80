"""``etika demo`` on a TTY: the counter UI with every other side simulated and a card shelf.

:class:`~simulators.demo.fleet.Fleet` starts, on loopback and by PID: the profile's
acquirers (ISO 8583 and REST), two PIN pads on ptys (the cardholder types 1234, or a wrong
PIN), the receipt printer on a pty (receipts kept as text), the PoP back end, the platform
on SQLite behind Mosquitto (HTTPS when Mosquitto is not installed) and the terminal's
outbox worker (``etika sync run``) draining to them; and pcscd with vpcd's readers. On the
"present card" screen a digit key takes a card from the shelf: with pcscd it is plugged
into a vpcd reader (``etika sim card``) and read over PC/SC; where pcscd cannot run, it is
simulated in-process, and the counter says so. Everything is stopped on exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.events import Key

from drivers.base import CardEvent, CardSession, ResponseApdu
from drivers.printer import EscposSerialPrinter
from drivers.reader_errors import ReaderTimeoutError
from simulators.card.reader import SimulatedCardReader, in_process_reader
from simulators.demo.fleet import Fleet
from terminal.cli.context import CliContext
from terminal.services.cards import PcscReaderProbe, ReaderState, ReaderStatus
from ui.app import CounterApp
from ui.services import TerminalCounterServices

if TYPE_CHECKING:
    from drivers.pcsc import PcscReader

__all__ = ["SHELF", "ShelfCard", "ShelfReader", "VpcdShelf", "run_interactive"]


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


class _RemovedOnClose:
    """A card session (:class:`~drivers.base.CardSession`) that takes the card off the
    reader when the sale closes it."""

    def __init__(self, session: CardSession,
                 on_close: Callable[[], Awaitable[None] | None]) -> None:
        self._session = session
        self._on_close = on_close

    @property
    def reader(self) -> str:
        return self._session.reader

    @property
    def atr(self) -> bytes:
        return self._session.atr

    async def transmit(self, apdu: bytes) -> ResponseApdu:
        return await self._session.transmit(apdu)

    async def close(self) -> None:
        try:
            await self._session.close()
        finally:
            result = self._on_close()
            if result is not None:
                await result


class ShelfReader:
    """In-process cards (no pcscd here): the reader holds whichever card the cashier takes
    from the shelf, for one sale."""

    name = "Etika demo shelf (in-process)"
    over_pcsc = False

    def __init__(self) -> None:
        self._inserted = asyncio.Event()
        self._card: SimulatedCardReader | None = None
        self._in = False
        self.shelf_card: ShelfCard | None = None

    async def present(self, card: ShelfCard) -> None:
        self.shelf_card = card
        self._card = in_process_reader(card.profile, card.interface)
        self._in = True
        self._inserted.set()

    async def probe(self) -> list[ReaderStatus]:
        return [ReaderStatus(ReaderState.CARD_IN if self._in else ReaderState.WAITING,
                             self.name)]

    async def list_readers(self) -> list[str]:
        return [self.name]

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        try:
            await asyncio.wait_for(self._inserted.wait(), timeout)
        except TimeoutError:
            raise ReaderTimeoutError("no card was taken from the shelf in time",
                                     reader=self.name) from None
        self._inserted.clear()  # one card per sale
        if self._card is None:
            raise ReaderTimeoutError("the shelf holds no card", reader=self.name)
        return await self._card.wait_for_card(None, timeout)

    async def connect(self, reader: str) -> CardSession:
        if self._card is None:
            raise ReaderTimeoutError("the shelf holds no card", reader=self.name)
        session = await self._card.connect(reader)
        return _RemovedOnClose(session, self._take_out)

    def _take_out(self) -> None:
        self._in = False

    def events(self) -> AsyncIterator[CardEvent]:
        if self._card is None:
            raise ReaderTimeoutError("the shelf holds no card", reader=self.name)
        return self._card.events()


class VpcdShelf:
    """Cards over PC/SC: a shelf card is plugged into a vpcd reader (``etika sim card``,
    a process of the fleet) and the terminal reads it through pcscd like a real card; the
    card is pulled out when the sale closes its session."""

    over_pcsc = True

    def __init__(self, fleet: Fleet, reader: PcscReader | None = None) -> None:
        from drivers.pcsc import PcscReader

        self._fleet = fleet
        self._reader = reader or PcscReader()
        self._probe = PcscReaderProbe()
        self._card: subprocess.Popen[str] | None = None
        self.shelf_card: ShelfCard | None = None

    async def present(self, card: ShelfCard) -> None:
        """Pull out the card in the reader (if any), plug in ``card``; waits for pcscd to
        see it, in a thread (the counter keeps answering)."""
        await self.take_out()
        self.shelf_card = card
        self._card = await asyncio.to_thread(
            self._fleet.card, card.profile, contactless=card.interface == "contactless")

    async def take_out(self) -> None:
        card, self._card = self._card, None
        if card is not None:
            await asyncio.to_thread(self._fleet.remove_card, card)

    async def probe(self) -> list[ReaderStatus]:
        return await self._probe.probe()

    async def list_readers(self) -> list[str]:
        readers: list[str] = await self._reader.list_readers()
        return readers

    async def wait_for_card(self, reader: str | None = None, timeout: float | None = None) -> str:
        name: str = await self._reader.wait_for_card(reader, timeout)
        return name

    async def connect(self, reader: str) -> CardSession:
        return _RemovedOnClose(await self._reader.connect(reader), self.take_out)

    def events(self) -> AsyncIterator[CardEvent]:
        return self._reader.events()

    async def aclose(self) -> None:
        await self.take_out()
        await self._reader.aclose()


class DemoCounterApp(CounterApp):
    """The counter plus the shelf keys (digits, on the "present card" screen)."""

    def __init__(self, services: TerminalCounterServices, shelf: ShelfReader | VpcdShelf,
                 *, platform_link: str | None = None) -> None:
        super().__init__(services)
        self.shelf = shelf
        self.platform_link = platform_link

    def on_key(self, event: Key) -> None:
        from ui.screens.present_card import PresentCardScreen

        if not isinstance(self.screen, PresentCardScreen):
            return
        card = next((c for c in SHELF if c.key == event.key), None)
        if card is not None:
            self.notify(f"{card.key} · {card.label}", title="shelf")
            self.run_worker(self.shelf.present(card), group="shelf", exclusive=True,
                            exit_on_error=False)

    def on_mount(self) -> None:
        super().on_mount()
        cards = ("cards over pcscd + vpcd (Virtual PCD 00 00 contact, 00 01 contactless)"
                 if self.shelf.over_pcsc
                 else "pcscd cannot run here: the shelf's cards are simulated in-process")
        link = f" · platform over {self.platform_link}" if self.platform_link else ""
        self.notify(cards + link, title="etika demo", timeout=30)
        self.notify("  ".join(f"[{c.key}] {c.label}" for c in SHELF),
                    title="card shelf: on the card screen, press", timeout=30)


def run_interactive(ctx: CliContext,
                    runner: Callable[[CounterApp], object] = lambda app: app.run(),
                    *, on_fleet: Callable[[Fleet], None] | None = None) -> int:
    """Start the fleet, run the counter (``runner``: a test drives it with Pilot), stop
    everything by PID (``on_fleet`` sees the fleet once started: a test notes its PIDs)."""
    with tempfile.TemporaryDirectory(prefix="etika-demo-") as tmp:
        work = Path(tmp)
        fleet = Fleet(work, ctx.profile_dir)
        try:
            fleet.acquirers()
            good_pin = fleet.pinpad("1234")
            bad_pin = fleet.pinpad("9999")
            printer_port = fleet.printer(work / "receipts")
            fleet.pop()
            over_pcsc = fleet.pcscd()
            terminal_id = ctx.profile().terminal.terminal_id
            with ctx.services() as keyed:  # the token's key, for the PoP and the platform
                keys = keyed.signing_keys()
                version = keys.signing_key_version
                public_pem = keys.public_key_pem(version)
            fleet.register_with_pop(terminal_id, version, public_pem)
            link = fleet.platform(terminal_id, public_pem)
            fleet.sync(ctx.data_dir)
            if on_fleet is not None:
                on_fleet(fleet)
            shelf: ShelfReader | VpcdShelf = VpcdShelf(fleet) if over_pcsc else ShelfReader()
            # The profile copy (its links moved to the fleet), the data dir of the command.
            demo_ctx = dataclasses.replace(ctx, profile_name=str(fleet.profile_dir),
                                           _profile=None)
            profile = demo_ctx.profile()
            with demo_ctx.services(card_reader=shelf) as services:

                def pinpad() -> str:
                    card = shelf.shelf_card
                    return bad_pin if card is not None and card.wrong_pin else good_pin

                printer = EscposSerialPrinter(printer_port, profile.printer.baud)
                counter = TerminalCounterServices(services, pinpad_port=pinpad,
                                                  printer=printer)
                try:
                    runner(DemoCounterApp(counter, shelf, platform_link=link))
                finally:
                    printer.close()
                    if isinstance(shelf, VpcdShelf):
                        asyncio.run(shelf.aclose())
            receipts = sorted((work / "receipts").glob("*.txt"))
            print(f"etika demo: {len(receipts)} receipt(s) printed; every simulator stopped")
            for receipt in receipts[-2:]:
                print(receipt.read_text(encoding="utf-8"))
        finally:
            fleet.stop()
    return 0
