"""The PIN pad simulator on a real pseudo-terminal.

It opens a pty pair, puts the slave in raw mode and serves the link protocol of
``drivers/PROTOCOL.md`` on the master side; the driver opens the slave path with pyserial
exactly as it would open ``/dev/ttyUSB0``. Cardholder behaviour and line faults come from
:class:`~simulators.pinpad.faults.Faults`.

Usage::

    async with PinPadSimulator(PinPadDevice.from_bdk(bdk, ksn, pin="1234")) as sim:
        pad = SerialPinPad(sim.slave_path)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tty
from dataclasses import dataclass

from drivers.pinpad.frame import (
    ACK,
    EOT,
    NAK,
    BadFrame,
    Control,
    Frame,
    FrameDecoder,
    LinkEvent,
    encode_frame,
)
from drivers.pinpad.messages import (
    BlockPartRequest,
    CancelRequest,
    DisplayRequest,
    IccKeyPartRequest,
    LoadKeyRequest,
    OfflinePinRequest,
    OfflinePinResponse,
    PinEntryRequest,
    PinEntryResponse,
    PinResult,
    StatusRequest,
    decode_request,
)
from simulators.pinpad.device import PinPadDevice
from simulators.pinpad.faults import Faults

__all__ = ["PinPadSimulator"]

log = logging.getLogger(__name__)

# Bytes the noise fault may send: anything but the protocol's control bytes.
_NOISE = bytes(b for b in range(256) if b not in (0x02, 0x03, 0x04, 0x06, 0x15))


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """An answer ready to go, posted by a PIN entry task to the link loop."""

    message: bytes


class PinPadSimulator:
    """Serves one simulated PIN pad on a pty until :meth:`stop` (or a hang-up fault)."""

    def __init__(
        self,
        device: PinPadDevice,
        faults: Faults | None = None,
        *,
        ack_timeout: float = 1.0,
        tries: int = 3,
        keypress_delay: float = 0.05,
    ) -> None:
        self.device = device
        self.faults = faults or Faults()
        self.ack_timeout = ack_timeout
        self.tries = tries
        self.keypress_delay = keypress_delay
        self.slave_path = ""
        self.received: list[bytes] = []  # command codes it acted on, for tests
        self.frames_seen = 0  # every well-formed packet, including ignored retransmissions
        self.answers_sent = 0  # answer packets written, retransmissions included
        self._master: int | None = None
        self._slave: int | None = None
        self._decoder = FrameDecoder()
        self._queue: asyncio.Queue[LinkEvent | _Outgoing] = asyncio.Queue()
        self._link_task: asyncio.Task[None] | None = None
        self._entry_task: asyncio.Task[None] | None = None
        self._entry_message: bytes | None = None
        self._pending: bytes | None = None
        self._pending_tries = 0
        self.closed = asyncio.Event()

    async def __aenter__(self) -> PinPadSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        """Open the pty pair and start serving; return the slave path."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline before the driver configures it
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._on_readable)
        self._link_task = asyncio.create_task(self._link_loop(), name="pinpad-sim-link")
        log.info("pinpad simulator listening on %s", self.slave_path)
        return self.slave_path

    async def stop(self) -> None:
        """Stop serving and close both ends of the pty."""
        for task in (self._entry_task, self._link_task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})
            if task is not None and not task.cancelled() and task.exception() is not None:
                log.error("pinpad simulator task failed", exc_info=task.exception())
        self._hang_up()
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    # --- the wire -----------------------------------------------------------------------

    def _hang_up(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        self.closed.set()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            # EIO on the master means nobody holds the slave; we keep it open, so this
            # only happens while closing.
            return
        for event in self._decoder.feed(data):
            self._queue.put_nowait(event)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except OSError:
            log.warning("pinpad simulator: write failed, line gone")

    def _send_control(self, byte: int) -> None:
        self._write(bytes([byte]))

    def _send_answer(self, message: bytes) -> None:
        self.answers_sent += 1
        frame = bytearray(encode_frame(message))
        if self.faults.take("bad_lrc"):
            frame[-1] ^= 0xFF
        if self.faults.noise:
            frame[:0] = bytes(random.choice(_NOISE) for _ in range(random.randint(1, 8)))
        self._write(bytes(frame))

    # --- the link state machine ---------------------------------------------------------

    async def _link_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            # asyncio.timeout, not wait_for: on 3.11 wait_for with a zero timeout turns our
            # own cancellation (stop()) into TimeoutError and the loop would never end.
            try:
                async with asyncio.timeout(timeout):
                    event = await self._queue.get()
            except TimeoutError:
                deadline = self._retransmit(loop.time())
                continue
            if isinstance(event, _Outgoing):
                await self._slow()
                self._pending, self._pending_tries = event.message, 1
                self._send_answer(event.message)
                deadline = loop.time() + self.ack_timeout
            elif isinstance(event, Control):
                if event is Control.ACK and self._pending is not None:
                    self._pending, deadline = None, None
                    self._send_control(EOT)
                elif event is Control.NAK and self._pending is not None:
                    deadline = self._retransmit(loop.time())
            elif isinstance(event, BadFrame):
                if not self.faults.silent:
                    self._send_control(NAK)
            elif isinstance(event, Frame):
                await self._on_frame(event.message)

    def _retransmit(self, now: float) -> float | None:
        if self._pending is None:
            return None
        if self._pending_tries >= self.tries:
            log.warning("pinpad simulator: answer not acknowledged after %d tries", self.tries)
            self._pending = None
            self._send_control(EOT)
            return None
        self._pending_tries += 1
        self._send_answer(self._pending)
        return now + self.ack_timeout

    async def _slow(self) -> None:
        if self.faults.slow:
            await asyncio.sleep(self.faults.slow)

    async def _on_frame(self, message: bytes) -> None:
        self.frames_seen += 1
        if self.faults.silent or self.faults.take("mute"):
            return
        if self.faults.take("nak"):
            self._send_control(NAK)
            return
        entry_running = self._entry_task is not None and not self._entry_task.done()
        if entry_running and message == self._entry_message:
            self._send_control(ACK)  # a retransmission of the request we are serving
            return
        self.received.append(message[:3])
        await self._slow()
        try:
            request = decode_request(message)
        except ValueError:
            self._send_control(ACK)
            if message.startswith(b"Z62"):
                self._queue.put_nowait(_Outgoing(PinEntryResponse(PinResult.BAD_REQUEST).encode()))
            elif message.startswith(b"Z64"):
                bad = OfflinePinResponse(PinResult.BAD_REQUEST).encode()
                self._queue.put_nowait(_Outgoing(bad))
            else:
                self._send_control(EOT)  # unknown requests are acknowledged and ignored
            return
        if isinstance(request, (PinEntryRequest, OfflinePinRequest)) and self.faults.hangup:
            log.info("pinpad simulator: hanging up (fault)")
            self._hang_up()
            return
        self._send_control(ACK)
        if isinstance(request, DisplayRequest):
            self.device.display_text = request.text
            self._send_control(EOT)
        elif isinstance(request, StatusRequest):
            self._queue.put_nowait(_Outgoing(self.device.status().encode()))
        elif isinstance(request, LoadKeyRequest):
            self._queue.put_nowait(_Outgoing(self.device.load_key(request).encode()))
        elif isinstance(request, CancelRequest):
            self._send_control(EOT)
            if entry_running and self._entry_task is not None:
                self._entry_task.cancel()
        elif isinstance(request, IccKeyPartRequest):
            self.device.icc_key_part(request)
            self._send_control(EOT)
        elif isinstance(request, BlockPartRequest):
            part = self.device.block_part(request)
            if part is None:
                self._send_control(EOT)  # nothing to send: the host times out and says so
            else:
                self._queue.put_nowait(_Outgoing(part.encode()))
        elif isinstance(request, OfflinePinRequest):
            if entry_running:
                bad = OfflinePinResponse(PinResult.BAD_REQUEST).encode()
                self._queue.put_nowait(_Outgoing(bad))
                return
            self._entry_message = message
            self._entry_task = asyncio.create_task(
                self._offline_cardholder(request), name="pinpad-sim-cardholder"
            )
        elif isinstance(request, PinEntryRequest):
            if entry_running:
                self._queue.put_nowait(_Outgoing(PinEntryResponse(PinResult.BAD_REQUEST).encode()))
                return
            self._entry_message = message
            self._entry_task = asyncio.create_task(
                self._cardholder(request), name="pinpad-sim-cardholder"
            )

    async def _cardholder(self, request: PinEntryRequest) -> None:
        """The person at the keypad: types the PIN, presses CANCEL, or walks away."""
        self.device.display_text = f"AMOUNT {request.amount_minor} {request.currency_numeric:03d}"
        try:
            if self.faults.take("cancel"):
                await asyncio.sleep(self.keypress_delay)
                answer = PinEntryResponse(PinResult.CANCELLED)
            elif self.faults.take("timeout"):
                await asyncio.sleep(request.timeout_s)
                answer = PinEntryResponse(PinResult.TIMEOUT)
            else:
                await asyncio.sleep(self.keypress_delay * len(self.device.pin))
                answer = self.device.encipher_pin(request)
        except asyncio.CancelledError:
            self._queue.put_nowait(_Outgoing(PinEntryResponse(PinResult.CANCELLED).encode()))
            raise
        self._queue.put_nowait(_Outgoing(answer.encode()))

    async def _offline_cardholder(self, request: OfflinePinRequest) -> None:
        """The cardholder for an offline PIN entry: same behaviours, ``73`` answers."""
        self.device.display_text = f"AMOUNT {request.amount_minor} {request.currency_numeric:03d}"
        try:
            if self.faults.take("cancel"):
                await asyncio.sleep(self.keypress_delay)
                answer = OfflinePinResponse(PinResult.CANCELLED)
            elif self.faults.take("timeout"):
                await asyncio.sleep(request.timeout_s)
                answer = OfflinePinResponse(PinResult.TIMEOUT)
            else:
                await asyncio.sleep(self.keypress_delay * len(self.device.pin))
                answer = self.device.encipher_offline_pin(request)
        except asyncio.CancelledError:
            self._queue.put_nowait(_Outgoing(OfflinePinResponse(PinResult.CANCELLED).encode()))
            raise
        self._queue.put_nowait(_Outgoing(answer.encode()))
