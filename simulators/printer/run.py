"""``etika sim printer``: serve the printer until stopped; the first line is the port path.

SIGUSR1 toggles "out of paper", SIGUSR2 toggles "switched off", so a demo or a person can
change the printer while the counter runs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from etika_errors import EtikaError
from simulators.printer.device import PrinterDevice
from simulators.printer.server import PrinterSimulator

__all__ = ["PrinterFaultSpecError", "parse_faults", "serve"]

FAULTS = ("paper-out", "off")


class PrinterFaultSpecError(EtikaError, ValueError):
    """``--faults`` names a fault the printer simulator does not know."""

    exit_code = 2


def parse_faults(spec: str | None) -> set[str]:
    found = {f.strip() for f in (spec or "").split(",") if f.strip()}
    unknown = found - set(FAULTS)
    if unknown:
        raise PrinterFaultSpecError(f"unknown printer fault(s) {', '.join(sorted(unknown))}: "
                         f"expected {', '.join(FAULTS)}")
    return found


async def _serve(device: PrinterDevice) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def toggle_paper() -> None:
        device.paper = not device.paper

    def toggle_power() -> None:
        device.powered = not device.powered

    loop.add_signal_handler(signal.SIGUSR1, toggle_paper)
    loop.add_signal_handler(signal.SIGUSR2, toggle_power)
    async with PrinterSimulator(device) as sim:
        print(sim.slave_path, flush=True)
        print(f"receipt printer simulator on {sim.slave_path} (ESC/POS); receipts in "
              f"{device.out_dir or 'memory'}; SIGUSR1 paper, SIGUSR2 power; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        await stop.wait()


def serve(out_dir: Path | None, faults: set[str]) -> int:
    device = PrinterDevice(out_dir=out_dir, paper="paper-out" not in faults,
                           powered="off" not in faults)
    asyncio.run(_serve(device))
    return 0
