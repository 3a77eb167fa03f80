"""A stand-in for pyscard's ``smartcard.scard`` module that plays pcscd's behaviour.

It keeps pyscard's constants and return shapes (``(hresult, ...)`` tuples, unsigned
codes) and models what the PC/SC reader driver must survive: pcscd stopping and coming
back (old contexts become invalid), readers unplugged and replugged, cards pulled out
mid-exchange (a bare ``SCARD_E_NOT_TRANSACTED``, as vpcd reports it).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from smartcard import scard as real

S_OK = 0
E_NO_SERVICE = real.SCARD_E_NO_SERVICE & 0xFFFFFFFF
E_INVALID_HANDLE = real.SCARD_E_INVALID_HANDLE & 0xFFFFFFFF
E_NO_READERS = real.SCARD_E_NO_READERS_AVAILABLE & 0xFFFFFFFF
E_UNKNOWN_READER = real.SCARD_E_UNKNOWN_READER & 0xFFFFFFFF
E_NO_SMARTCARD = real.SCARD_E_NO_SMARTCARD & 0xFFFFFFFF
E_TIMEOUT = real.SCARD_E_TIMEOUT & 0xFFFFFFFF
E_NOT_TRANSACTED = real.SCARD_E_NOT_TRANSACTED & 0xFFFFFFFF
E_READER_UNAVAILABLE = real.SCARD_E_READER_UNAVAILABLE & 0xFFFFFFFF
W_REMOVED_CARD = real.SCARD_W_REMOVED_CARD & 0xFFFFFFFF
E_CANCELLED = real.SCARD_E_CANCELLED & 0xFFFFFFFF
PNP = "\\\\?PnP?\\Notification"


@dataclass
class FakeCard:
    atr: bytes
    answer: Callable[[bytes], bytes]


@dataclass
class FakePcscd:
    """The daemon's world: readers, the cards in them, and whether it runs."""

    running: bool = True
    generation: int = 0
    readers: dict[str, FakeCard | None] = field(default_factory=dict)
    card_events: dict[str, int] = field(default_factory=dict)
    transmitted: list[bytes] = field(default_factory=list)


class FakeScard:
    """Module-like object: ``PcscReader(api=FakeScard(world))``."""

    def __init__(self, world: FakePcscd) -> None:
        for name in dir(real):
            if name.startswith("SCARD_") and isinstance(getattr(real, name), int):
                setattr(self, name, getattr(real, name))
        self.world = world
        self._ids = itertools.count(1)
        self._contexts: dict[int, int] = {}  # context -> daemon generation it belongs to
        self._cards: dict[int, tuple[int, str, int]] = {}  # card -> (context, reader, events)
        self._changed = threading.Condition()
        self.established = 0

    # -- world changes (tests call these) -------------------------------------------------

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def stop_daemon(self) -> None:
        self.world.running = False
        self._notify()

    def start_daemon(self) -> None:
        self.world.running = True
        self.world.generation += 1  # contexts of the old daemon are unknown to the new one
        self._notify()

    def plug(self, reader: str) -> None:
        self.world.readers[reader] = None
        self._notify()

    def unplug(self, reader: str) -> None:
        self.world.readers.pop(reader, None)
        self._notify()

    def insert(self, reader: str, card: FakeCard) -> None:
        self.world.readers[reader] = card
        self.world.card_events[reader] = self.world.card_events.get(reader, 0) + 1
        self._notify()

    def remove(self, reader: str) -> None:
        self.world.readers[reader] = None
        self.world.card_events[reader] = self.world.card_events.get(reader, 0) + 1
        self._notify()

    # -- the pyscard functions the driver uses ---------------------------------------------

    def _context_ok(self, context: int) -> int:
        if not self.world.running:
            return E_NO_SERVICE
        if self._contexts.get(context) != self.world.generation:
            return E_INVALID_HANDLE
        return S_OK

    def SCardEstablishContext(self, scope: int) -> tuple[int, int]:
        if not self.world.running:
            return E_NO_SERVICE, 0
        handle = next(self._ids)
        self._contexts[handle] = self.world.generation
        self.established += 1
        return S_OK, handle

    def SCardReleaseContext(self, context: int) -> int:
        self._contexts.pop(context, None)
        return S_OK

    def SCardCancel(self, context: int) -> int:
        self._notify()
        return S_OK

    def SCardListReaders(self, context: int, groups: list[str]) -> tuple[int, list[str]]:
        status = self._context_ok(context)
        if status:
            return status, []
        if not self.world.readers:
            return E_NO_READERS, []
        return S_OK, list(self.world.readers)

    def _state(self, reader: str) -> tuple[int, list[int]]:
        if reader not in self.world.readers:
            return self.SCARD_STATE_UNKNOWN, []
        card = self.world.readers[reader]
        events = self.world.card_events.get(reader, 0) << 16
        if card is None:
            return self.SCARD_STATE_EMPTY | events, []
        return self.SCARD_STATE_PRESENT | events, list(card.atr)

    def SCardGetStatusChange(
        self, context: int, timeout_ms: int, states: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        def snapshot() -> list[tuple[str, int, list[int]]]:
            result = []
            for reader, current in states:
                if reader == PNP:
                    result.append((reader, len(self.world.readers) << 16, []))
                    continue
                state, atr = self._state(reader)
                if state != current:
                    state |= self.SCARD_STATE_CHANGED
                result.append((reader, state, atr))
            return result

        with self._changed:
            status = self._context_ok(context)
            if status:
                return status, []
            new = snapshot()
            if any(state & self.SCARD_STATE_CHANGED for _, state, _ in new):
                return S_OK, new
            if any(r == PNP and s != c for (r, c), (_, s, _) in zip(states, new, strict=True)):
                return S_OK, new
            self._changed.wait(timeout_ms / 1000)
            status = self._context_ok(context)
            if status:
                return status, []
            new = snapshot()
            changed = any(state & self.SCARD_STATE_CHANGED for _, state, _ in new)
            return (S_OK if changed else E_TIMEOUT), new

    def SCardConnect(
        self, context: int, reader: str, share: int, protocols: int
    ) -> tuple[int, int, int]:
        status = self._context_ok(context)
        if status:
            return status, 0, 0
        if reader not in self.world.readers:
            return E_UNKNOWN_READER, 0, 0
        if self.world.readers[reader] is None:
            return E_NO_SMARTCARD, 0, 0
        handle = next(self._ids)
        self._cards[handle] = (context, reader, self.world.card_events.get(reader, 0))
        return S_OK, handle, self.SCARD_PROTOCOL_T0

    def _card(self, handle: int) -> tuple[int, FakeCard | None, str]:
        context, reader, events = self._cards.get(handle, (0, "", -1))
        status = self._context_ok(context)
        if status:
            return status, None, reader
        if reader not in self.world.readers:
            return E_READER_UNAVAILABLE, None, reader
        card = self.world.readers[reader]
        if card is None or self.world.card_events.get(reader, 0) != events:
            return W_REMOVED_CARD, None, reader
        return S_OK, card, reader

    def SCardStatus(self, handle: int) -> tuple[int, str, int, int, list[int]]:
        status, card, reader = self._card(handle)
        if status or card is None:
            return status, reader, 0, 0, []
        return S_OK, reader, 0x0004 | 0x0010 | 0x0040, self.SCARD_PROTOCOL_T0, list(card.atr)

    def SCardTransmit(self, handle: int, protocol: int, apdu: list[int]) -> tuple[int, list[int]]:
        status, card, _reader = self._card(handle)
        if status == W_REMOVED_CARD:
            return E_NOT_TRANSACTED, []  # what vpcd gives when the card's socket is gone
        if status or card is None:
            return status, []
        self.world.transmitted.append(bytes(apdu))
        return S_OK, list(card.answer(bytes(apdu)))

    def SCardDisconnect(self, handle: int, disposition: int) -> int:
        status, _card, _reader = self._card(handle)
        self._cards.pop(handle, None)
        return status
