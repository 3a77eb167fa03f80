"""The simulated card on the real stack: a virtual ICC for vsmartcard's vpcd driver.

Debian's ``vsmartcard-vpcd`` registers the reader in ``/etc/reader.conf.d/vpcd``
(``DEVICENAME /dev/null:0x8C7B``, ``CHANNELID 0x8C7B``): pcscd loads
``/usr/lib/pcsc/drivers/serial/libifdvpcd.so``, which listens on TCP port 0x8C7B = 35963
for ``Virtual PCD 00 00`` and 35964 for ``Virtual PCD 00 01``. The card connects to it
(we use 127.0.0.1). Frames both ways are a 2-byte big-endian length then the payload:

* a 1-byte payload from vpcd is a control code: 0 power off, 1 power on, 2 reset,
  4 get ATR — only "get ATR" is answered (with the ATR);
* a longer payload is a command APDU, answered with the response APDU.

The card is "inserted" while the TCP connection is up and "removed" when it closes.
When vpcd drops the connection (pcscd restarted) the card reconnects with backoff.

vpcd serves one card per port; a second card's connection is still accepted by the
kernel (the listen backlog) but vpcd never speaks to it. A card whose first connection
hears nothing from vpcd within :data:`FIRST_FRAME_S` therefore gives up with
:class:`~simulators.card.errors.VpcdPortBusyError` naming the port, instead of claiming
to be inserted while no reader ever sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading

from simulators.card.card import EmvCard
from simulators.card.errors import VpcdPortBusyError

__all__ = ["FIRST_FRAME_S", "VPCD_PORT", "VpcdCard", "VpcdCardThread"]

log = logging.getLogger(__name__)

#: The port of ``Virtual PCD 00 00`` (reader.conf CHANNELID 0x8C7B); 00 01 is one more.
VPCD_PORT = 0x8C7B

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4

#: How long a newly connected card waits for vpcd's first frame (pcscd polls the reader
#: for a card several times a second) before deciding the reader is taken.
FIRST_FRAME_S = 5.0


class VpcdCard:
    """Connect ``card`` to vpcd and serve it until :meth:`stop` (or :meth:`remove`)."""

    def __init__(self, card: EmvCard, host: str = "127.0.0.1", port: int = VPCD_PORT,
                 *, first_frame_s: float = FIRST_FRAME_S) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.first_frame_s = first_frame_s
        self.connected = asyncio.Event()
        #: Set once vpcd has spoken to this card (the reader is ours).
        self.served = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._stopping = False
        self.commands = 0

    async def run(self, *, reconnect: bool = True) -> None:
        """Serve until stopped; with ``reconnect``, come back after vpcd drops us."""
        delay = 0.05
        while not self._stopping:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if not reconnect:
                    raise
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            _no_delay(writer)
            self._writer = writer
            log.info("virtual card connected to vpcd on port %d", self.port)
            try:
                header = None if self.served.is_set() else await self._first_frame(reader)
                self.connected.set()
                await self._serve(reader, writer, header)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                self.connected.clear()
                self._writer = None
                self.card.power_off()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if not reconnect:
                return
            await asyncio.sleep(0.05)

    async def _first_frame(self, reader: asyncio.StreamReader) -> bytes:
        """The header of vpcd's first frame; silence means another card holds the reader."""
        try:
            header = await asyncio.wait_for(reader.readexactly(2), self.first_frame_s)
        except TimeoutError:
            raise VpcdPortBusyError(
                f"vpcd at {self.host}:{self.port} accepted the card but never spoke to it "
                f"within {self.first_frame_s:g} s: that reader already has a card (another "
                f"`etika sim card` on port {self.port}?); stop it or use the other reader "
                f"(--port {35964 if self.port == VPCD_PORT else VPCD_PORT})",
                port=self.port,
            ) from None
        self.served.set()
        return header

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     header: bytes | None = None) -> None:
        """Answer vpcd's frames; ``header`` is a first frame's length already read."""
        while True:
            _quick_ack(writer)
            if header is None:
                header = await reader.readexactly(2)
            _quick_ack(writer)
            payload = await reader.readexactly(int.from_bytes(header, "big"))
            header = None
            if len(payload) == 1:
                code = payload[0]
                if code == _POWER_OFF:
                    self.card.power_off()
                elif code in (_POWER_ON, _RESET):
                    self.card.power_on()
                elif code == _GET_ATR:
                    await self._send(writer, self.card.atr)
                continue
            if not self.card.powered:
                self.card.power_on()  # vpcd may send an APDU right after ATR without power on
            self.commands += 1
            await self._send(writer, self.card.process(payload))

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, payload: bytes) -> None:
        writer.write(len(payload).to_bytes(2, "big") + payload)
        await writer.drain()

    def remove(self) -> None:
        """Pull the card out: close the connection and stay out."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()

    stop = remove


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """Small frames both ways: without TCP_NODELAY/QUICKACK, Nagle and delayed ACKs add
    ~40 ms to every APDU (vpcd writes the length and the payload separately)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _quick_ack(writer)


def _quick_ack(writer: asyncio.StreamWriter) -> None:
    # Linux leaves quick-ACK mode on its own; ask again before every read.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class VpcdCardThread:
    """A :class:`VpcdCard` on its own event loop in a daemon thread (for sync fixtures)."""

    def __init__(self, card: EmvCard, port: int = VPCD_PORT, host: str = "127.0.0.1") -> None:
        self.card = card
        self.port = port
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._vpcd: VpcdCard | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"vpcd-card-{port}", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._vpcd = VpcdCard(self.card, self.host, self.port)
        self._ready.set()
        self._loop.run_until_complete(self._vpcd.run())
        self._loop.close()

    def start(self, timeout: float = 10.0) -> VpcdCardThread:
        self._thread.start()
        self._ready.wait(timeout)
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        assert self._vpcd is not None
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self._vpcd.connected.wait(), timeout), self._loop
        )
        try:
            future.result(timeout + 1)
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._vpcd is not None and self._vpcd.connected.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """Remove the card (close the connection) and end the thread."""
        if self._vpcd is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._vpcd.stop)
        self._thread.join(timeout)
