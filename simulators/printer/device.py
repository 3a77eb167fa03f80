"""The printer itself: receipts kept as text, status answers, off and out of paper."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulators.printer.decoder import Cut, EscPosDecoder, StatusRequest, Text

__all__ = ["PrinterDevice"]

#: Real-time status bytes (Epson ESC/POS ``DLE EOT``): fixed bits 0x12, bit 3 offline,
#: bits 5-6 paper end. python-escpos reads 0x12 as "paper adequate" and 0x72 as "no paper".
ONLINE = 0x12
OFFLINE = 0x1A
PAPER_OK = 0x12
PAPER_OUT = 0x72


@dataclass
class PrinterDevice:
    """Kept receipts in :attr:`receipts`; with ``out_dir`` each is also a numbered file."""

    out_dir: Path | None = None
    powered: bool = True
    paper: bool = True
    receipts: list[str] = field(default_factory=list)
    _decoder: EscPosDecoder = field(default_factory=EscPosDecoder)
    _current: list[str] = field(default_factory=list)

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the line; return what the printer answers (status bytes)."""
        if not self.powered:
            return b""  # a printer that is off hears nothing and says nothing
        answer = bytearray()
        for event in self._decoder.feed(data):
            if isinstance(event, StatusRequest):
                if event.kind == 4:
                    answer.append(PAPER_OK if self.paper else PAPER_OUT)
                else:
                    answer.append(ONLINE)
            elif isinstance(event, Text):
                if self.paper:
                    self._current.append(event.text)
            elif isinstance(event, Cut):
                self._finish()
        return bytes(answer)

    def _finish(self) -> None:
        text = "".join(self._current).rstrip("\n")
        self._current = []
        if not text:
            return
        self.receipts.append(text)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"receipt-{len(self.receipts):04d}.txt"
            path.write_text(text + "\n", encoding="utf-8")
