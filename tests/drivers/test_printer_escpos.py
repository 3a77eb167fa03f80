"""The ESC/POS driver against the printer simulator on a real pseudo-terminal."""

from __future__ import annotations

import pytest
import serial

from drivers.printer import (
    EscposSerialPrinter,
    PaperLevel,
    PrinterOfflineError,
    PrinterOutOfPaperError,
    PrinterPortError,
)
from simulators.printer import PrinterDevice, PrinterSimulator

pytestmark = pytest.mark.hardware


async def test_receipt_reaches_the_printer_as_text() -> None:
    """A French receipt prints through python-escpos over the pty and is kept as text."""
    device = PrinterDevice()
    async with PrinterSimulator(device) as sim:
        printer = EscposSerialPrinter(sim.slave_path)
        try:
            assert (await printer.status()).ready
            await printer.print_text("BOULANGERIE ATLAS\nVENTE      125,50 MAD\nCODE VÉRIFIÉ")
        finally:
            await printer.aclose()
    assert device.receipts == ["BOULANGERIE ATLAS\nVENTE      125,50 MAD\nCODE VÉRIFIÉ"]


async def test_out_of_paper_is_refused_before_sending() -> None:
    """An empty roll is reported as such and nothing is printed."""
    device = PrinterDevice(paper=False)
    async with PrinterSimulator(device) as sim:
        printer = EscposSerialPrinter(sim.slave_path)
        try:
            assert (await printer.status()).paper == PaperLevel.OUT
            with pytest.raises(PrinterOutOfPaperError, match="out of paper"):
                await printer.print_text("LOST")
        finally:
            await printer.aclose()
    assert device.receipts == []


async def test_switched_off_printer_is_offline() -> None:
    """A printer that does not answer its status is off; printing says so."""
    device = PrinterDevice(powered=False)
    async with PrinterSimulator(device) as sim:
        printer = EscposSerialPrinter(sim.slave_path, timeout_s=0.2)
        try:
            assert not (await printer.status()).online
            with pytest.raises(PrinterOfflineError, match="does not answer"):
                await printer.print_text("LOST")
        finally:
            await printer.aclose()


@pytest.mark.parametrize("error", [
    serial.SerialException("could not open port /dev/nope"),
    OSError(2, "No such file or directory"),
    ValueError("bad baud rate"),
])
async def test_every_open_error_is_a_port_error(error: Exception) -> None:
    """pyserial's and python-escpos's errors at open become PrinterPortError, port named."""
    def opener(port: str, baud: int, timeout: float) -> object:
        raise error

    printer = EscposSerialPrinter("/dev/nope", opener=opener)
    with pytest.raises(PrinterPortError) as caught:
        await printer.status()
    assert caught.value.fields["port"] == "/dev/nope"


async def test_missing_port_through_python_escpos_is_a_port_error() -> None:
    """A port that does not exist is reported through python-escpos as a PrinterPortError."""
    printer = EscposSerialPrinter("/dev/etika-no-such-printer")
    with pytest.raises(PrinterPortError, match="cannot open"):
        await printer.status()
