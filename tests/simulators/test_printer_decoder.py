"""The printer simulator reads python-escpos's bytes back into the receipt's text."""

from __future__ import annotations

import pytest
from escpos.printer import Dummy

from simulators.printer.decoder import Cut, EscPosDecoder, StatusRequest, Text
from simulators.printer.device import PrinterDevice
from simulators.printer.run import PrinterFaultSpecError, parse_faults


def escpos_bytes(text: str) -> bytes:
    printer = Dummy()
    printer.hw("INIT")
    printer.magic.force_encoding("CP858")
    for line in text.splitlines():
        printer.textln(line)
    printer.cut()
    return bytes(printer.output)


def test_accents_and_euro_survive_code_page_cp858() -> None:
    """French text sent in CP858 (ESC t 19) decodes back exactly, euro sign included."""
    device = PrinterDevice()
    device.feed(escpos_bytes("ÉPICERIE ATLAS\nVENTE   12,50 €\nCODE VÉRIFIÉ"))
    assert device.receipts == ["ÉPICERIE ATLAS\nVENTE   12,50 €\nCODE VÉRIFIÉ"]


def test_a_command_split_across_reads_is_waited_for() -> None:
    """Bytes arriving one at a time give the same events as one block (serial lines)."""
    data = escpos_bytes("A\nB") + b"\x10\x04\x04"
    decoder = EscPosDecoder()
    events = [e for byte in data for e in decoder.feed(bytes([byte]))]
    assert [e for e in events if not isinstance(e, Text)] == [Cut(), StatusRequest(4)]
    assert "".join(e.text for e in events if isinstance(e, Text)).strip() == "A\nB"


@pytest.mark.parametrize(("paper", "powered", "request_", "answer"), [
    (True,  True,  b"\x10\x04\x01", b"\x12"),
    (True,  True,  b"\x10\x04\x04", b"\x12"),
    (False, True,  b"\x10\x04\x04", b"\x72"),
    (True,  False, b"\x10\x04\x01", b""),
])
def test_status_answers(paper: bool, powered: bool, request_: bytes, answer: bytes) -> None:
    """DLE EOT is answered as Epson printers do; a printer that is off stays silent."""
    assert PrinterDevice(paper=paper, powered=powered).feed(request_) == answer


def test_no_paper_keeps_no_receipt_and_each_cut_is_one_file(tmp_path: object) -> None:
    """Out of paper nothing is kept; with paper each cut writes the next numbered file."""
    from pathlib import Path

    out = Path(str(tmp_path))
    device = PrinterDevice(out_dir=out, paper=False)
    device.feed(escpos_bytes("LOST"))
    device.paper = True
    device.feed(escpos_bytes("ONE"))
    device.feed(escpos_bytes("TWO"))
    assert device.receipts == ["ONE", "TWO"]
    assert (out / "receipt-0002.txt").read_text() == "TWO\n"


def test_unknown_fault_is_refused() -> None:
    """A fault name the printer does not know is the simulator's own usage error."""
    with pytest.raises(PrinterFaultSpecError, match="unknown printer fault"):
        parse_faults("paper-out,jam")
