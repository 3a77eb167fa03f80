"""A simulated PIN pad in the same process: real DUKPT blocks, no serial line.

For engine and EMV-flow tests that want genuine enciphered PIN blocks (so that the PSP
simulator can verify them) without a pty. It implements :class:`drivers.base.PinPad`
over the same :class:`~simulators.pinpad.device.PinPadDevice` the pty simulator uses,
and honours the cardholder faults ``cancel`` and ``timeout``.
"""

from __future__ import annotations

import asyncio

from drivers.base import EncryptedPin
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError, PinPadDeviceError
from drivers.pinpad.messages import (
    MAX_PART,
    IccKeyPartRequest,
    OfflinePinRequest,
    PinEntryRequest,
    PinResult,
)
from simulators.pinpad.device import PinPadDevice
from simulators.pinpad.faults import Faults

__all__ = ["SimulatedPinPad"]


class SimulatedPinPad:
    """Implements ``PinPad`` by calling the simulated device directly."""

    def __init__(self, device: PinPadDevice, faults: Faults | None = None) -> None:
        self.device = device
        self.faults = faults or Faults()
        self.port = "in-process"

    async def get_pin(
        self, pan: str, amount_minor: int, currency_numeric: int, timeout_s: float = 30.0
    ) -> EncryptedPin:
        request = PinEntryRequest(
            pan, amount_minor, currency_numeric, max(1, min(300, round(timeout_s)))
        )
        if self.faults.take("cancel"):
            raise PinEntryCancelledError("PIN entry on in-process was cancelled", port=self.port)
        if self.faults.take("timeout"):
            await asyncio.sleep(timeout_s)
            raise PinEntryTimeoutError("PIN entry on in-process timed out", port=self.port)
        answer = self.device.encipher_pin(request)
        if answer.result is not PinResult.OK or answer.pin_format is None:
            raise PinPadDeviceError(
                f"in-process PIN pad refused the entry ({answer.result.name})", port=self.port
            )
        return EncryptedPin(answer.ksn, answer.pin_block, answer.pin_format)

    async def encipher_pin_for_card(
        self,
        modulus: bytes,
        exponent: bytes,
        challenge: bytes,
        amount_minor: int,
        currency_numeric: int,
        timeout_s: float = 30.0,
    ) -> bytes:
        """Offline enciphered PIN through the same device steps as ``Z63``/``Z64``/``Z66``."""
        request = OfflinePinRequest(
            exponent, challenge, amount_minor, currency_numeric, max(1, min(300, round(timeout_s)))
        )
        chunks = [modulus[i : i + MAX_PART] for i in range(0, len(modulus), MAX_PART)]
        for number, chunk in enumerate(chunks, 1):
            self.device.icc_key_part(IccKeyPartRequest(number, len(chunks), chunk))
        if self.faults.take("cancel"):
            raise PinEntryCancelledError("PIN entry on in-process was cancelled", port=self.port)
        if self.faults.take("timeout"):
            await asyncio.sleep(timeout_s)
            raise PinEntryTimeoutError("PIN entry on in-process timed out", port=self.port)
        answer = self.device.encipher_offline_pin(request)
        if answer.result is not PinResult.OK:
            raise PinPadDeviceError(
                f"in-process PIN pad refused the entry ({answer.result.name})", port=self.port
            )
        return self.device.offline_block

    async def display(self, text: str) -> None:
        self.device.display_text = text

    async def cancel(self) -> None:
        """The next entry ends as cancelled (entries here finish at once)."""
        self.faults.cancel += 1

    async def ping(self) -> dict[str, str]:
        return dict(self.device.status().fields)
