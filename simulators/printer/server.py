"""The printer on a pseudo-terminal: the terminal opens the slave path as a serial port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

from simulators.printer.device import PrinterDevice

__all__ = ["PrinterSimulator"]


class PrinterSimulator:
    """``async with PrinterSimulator(device) as sim: sim.slave_path``."""

    def __init__(self, device: PrinterDevice) -> None:
        self.device = device
        self.slave_path = ""
        self._master: int | None = None
        self._slave: int | None = None

    async def __aenter__(self) -> PrinterSimulator:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            # What the terminal wrote just before we stop is in the pty's buffer and the
            # event loop has not handed it to us yet (likely on a loaded machine): a real
            # printer would still print it, so decode it before closing.
            self._drain()
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def _drain(self) -> None:
        while self._master is not None and self._read_once():
            pass

    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """Feed one read's bytes to the device; False when nothing was waiting."""
        if self._master is None:
            return False
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return False
        if not data:
            return False
        answer = self.device.feed(data)
        if answer:
            with contextlib.suppress(OSError):
                os.write(self._master, answer)
        return True
