"""``etika sim printer``: an ESC/POS receipt printer on a pseudo-terminal.

It decodes what the terminal sends (python-escpos's output: init, code page, text, feed,
cut), keeps each receipt as text, and answers the real-time status requests; it can be
switched off or run out of paper (``--faults``, or SIGUSR1/SIGUSR2 while it runs).
"""

from simulators.printer.decoder import EscPosDecoder
from simulators.printer.device import PrinterDevice
from simulators.printer.server import PrinterSimulator

__all__ = ["EscPosDecoder", "PrinterDevice", "PrinterSimulator"]
