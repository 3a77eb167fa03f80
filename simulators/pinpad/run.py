"""``etika sim pinpad``: build the simulated PIN pad from options and serve until stopped.

The first line on standard output is the pty slave path (so scripts can read it); the
process serves until SIGINT or SIGTERM, or until a ``hangup`` fault hangs the line up,
and exits 0 in every case.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

from simulators.pinpad.device import (
    DEFAULT_AES_BDK,
    DEFAULT_AES_KSN,
    DEFAULT_PIN,
    DEFAULT_TDES_BDK,
    DEFAULT_TDES_KSN,
    PinPadDevice,
)
from simulators.pinpad.errors import SimulatorSetupError
from simulators.pinpad.faults import Faults, parse_faults
from simulators.pinpad.server import PinPadSimulator

__all__ = ["build_device", "serve"]


def _hex(value: str, what: str, lengths: tuple[int, ...]) -> bytes:
    try:
        data = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise SimulatorSetupError(f"{what} must be hexadecimal") from None
    if len(data) not in lengths:
        sizes = " or ".join(str(n) for n in lengths)
        raise SimulatorSetupError(f"{what} must be {sizes} bytes, got {len(data)}")
    return data


def build_device(
    bdk: str | None, ksn: str | None, pin: str | None, scheme: str = "tdes"
) -> PinPadDevice:
    """The PIN pad for ``--bdk/--ksn/--pin`` (test keys only), or the documented defaults."""
    if (bdk is None) != (ksn is None):
        raise SimulatorSetupError("give --bdk and --ksn together (or neither for the test keys)")
    if bdk is not None and ksn is not None:
        ksn_bytes = _hex(ksn, "--ksn", (10, 12))
        bdk_bytes = _hex(bdk, "--bdk", (16,) if len(ksn_bytes) == 10 else (16, 24, 32))
    elif scheme == "aes":
        bdk_bytes, ksn_bytes = DEFAULT_AES_BDK, DEFAULT_AES_KSN
    else:
        bdk_bytes, ksn_bytes = DEFAULT_TDES_BDK, DEFAULT_TDES_KSN
    pin = DEFAULT_PIN if pin is None else pin
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise SimulatorSetupError("--pin must be 4 to 12 digits")
    return PinPadDevice.from_bdk(bdk_bytes, ksn_bytes, pin=pin)


async def _serve(device: PinPadDevice, faults: Faults, announce: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PinPadSimulator(device, faults) as sim:
        announce(sim.slave_path)
        closed = asyncio.create_task(sim.closed.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (closed, stopped):
            task.cancel()


def serve(device: PinPadDevice, fault_spec: str | None) -> int:
    """Run the simulator in the foreground; print the slave path first."""
    faults = parse_faults(fault_spec)

    def announce(path: str) -> None:
        print(path, flush=True)
        assert device.originator is not None
        scheme = "AES DUKPT, format 4" if device.originator.is_aes else "TDES DUKPT, format 0"
        print(
            f"PIN pad simulator on {path} ({scheme}, KSN {device.originator.ksn.hex().upper()}); "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    asyncio.run(_serve(device, faults, announce))
    return 0
