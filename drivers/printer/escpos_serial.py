"""An ESC/POS receipt printer on a serial port, through python-escpos.

Before each receipt the printer is asked its state (``DLE EOT 1`` online, ``DLE EOT 4``
paper sensor, ESC/POS "real-time status"): a printer that does not answer is off, an empty
roll is refused, and nothing is sent either way. Text goes out in code page CP858 (Latin-1
with the euro sign, ``ESC t 19``) so French receipts print their accents. pyserial runs in
a thread: its reads block for up to the timeout. Every pyserial and python-escpos error is
mapped to a :class:`~drivers.printer.errors.PrinterError` at this edge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from drivers.printer.base import PaperLevel, PrinterState
from drivers.printer.errors import (
    PrinterError,
    PrinterOfflineError,
    PrinterOutOfPaperError,
    PrinterPortError,
)

__all__ = ["ENCODING", "EscposDevice", "EscposSerialPrinter", "SerialPort"]

ENCODING = "CP858"


class SerialPort(Protocol):
    """pyserial's ``Serial``, as python-escpos holds it (``printer.device``)."""

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def reset_input_buffer(self) -> None: ...


class _Encoder(Protocol):
    def force_encoding(self, encoding: str, /) -> None: ...


class EscposDevice(Protocol):
    """What this driver uses of python-escpos's ``Serial`` printer (the library ships no
    type hints); an ``opener`` returns it, a test's stand-in too."""

    @property
    def device(self) -> SerialPort: ...

    @property
    def magic(self) -> _Encoder: ...

    def hw(self, hw: str, /) -> None: ...

    def textln(self, txt: str = "", /) -> None: ...

    def cut(self) -> None: ...

    def close(self) -> None: ...


def _open_escpos(port: str, baud: int, timeout_s: float) -> EscposDevice:
    from escpos.printer import Serial

    printer = Serial(devfile=port, baudrate=baud, timeout=timeout_s, dsrdtr=False)
    printer.open()
    return printer


class EscposSerialPrinter:
    """:class:`~drivers.printer.base.ReceiptPrinter` over python-escpos's ``Serial``."""

    def __init__(self, port: str, baud: int = 19200, *, timeout_s: float = 0.5,
                 opener: Callable[[str, int, float], EscposDevice] = _open_escpos) -> None:
        self.port = port
        self.baud = baud
        self.timeout_s = timeout_s
        self._opener = opener
        self._printer: EscposDevice | None = None
        self._lock = asyncio.Lock()

    def _device(self) -> EscposDevice:
        if self._printer is None:
            try:
                self._printer = self._opener(self.port, self.baud, self.timeout_s)
            except Exception as exc:  # python-escpos wraps pyserial's errors in its own
                raise PrinterPortError(f"cannot open the receipt printer on {self.port}: "
                                       f"{exc}".splitlines()[0], port=self.port) from exc
        return self._printer

    def _drop(self) -> None:
        printer, self._printer = self._printer, None
        if printer is not None:
            try:
                printer.close()
            except Exception:  # noqa: S110 - already failing; the port is reopened next time
                pass

    def _ask(self, device: SerialPort, request: bytes) -> int | None:
        """One real-time status byte, or None when the printer says nothing. (python-escpos's
        own ``is_online`` reads 16 bytes and so always waits the whole timeout.)"""
        device.write(request)
        device.flush()
        answer = device.read(1)
        return answer[0] if answer else None

    def _status(self) -> PrinterState:
        from escpos.constants import (
            RT_MASK_LOWPAPER,
            RT_MASK_NOPAPER,
            RT_MASK_ONLINE,
            RT_STATUS_ONLINE,
            RT_STATUS_PAPER,
        )

        printer = self._device()
        try:
            device = printer.device
            device.reset_input_buffer()
            online_byte = self._ask(device, RT_STATUS_ONLINE)
            if online_byte is None or online_byte & RT_MASK_ONLINE:
                return PrinterState(False, PaperLevel.OK)
            paper_byte = self._ask(device, RT_STATUS_PAPER)
        except Exception as exc:  # pyserial / python-escpos errors
            self._drop()
            raise PrinterOfflineError(f"the receipt printer on {self.port} went away: {exc}",
                                 port=self.port) from exc
        if paper_byte is None:
            return PrinterState(False, PaperLevel.OK)
        if paper_byte & RT_MASK_NOPAPER == RT_MASK_NOPAPER:
            return PrinterState(True, PaperLevel.OUT)
        if paper_byte & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER:
            return PrinterState(True, PaperLevel.LOW)
        return PrinterState(True, PaperLevel.OK)

    def _print(self, text: str) -> None:
        state = self._status()
        if not state.online:
            raise PrinterOfflineError(f"the receipt printer on {self.port} does not answer: is it "
                                 "switched on, its cover closed?", port=self.port)
        if state.paper == PaperLevel.OUT:
            raise PrinterOutOfPaperError(f"the receipt printer on {self.port} is out of paper: "
                                    "change the roll and reprint from the history",
                                    port=self.port)
        printer = self._device()
        try:
            printer.hw("INIT")
            printer.magic.force_encoding(ENCODING)
            for line in text.splitlines():
                printer.textln(line)
            printer.cut()
            printer.device.flush()
        except Exception as exc:
            self._drop()
            raise PrinterError(f"printing on {self.port} failed: {exc}",
                               port=self.port) from exc

    async def status(self) -> PrinterState:
        async with self._lock:
            return await asyncio.to_thread(self._status)

    async def print_text(self, text: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._print, text)

    def close(self) -> None:
        """Close the port now (from synchronous code, once nothing prints any more)."""
        self._drop()

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._drop)
