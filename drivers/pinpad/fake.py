"""An in-process, scripted PIN pad for engine tests (like httpcore's mock backend).

It does no cryptography: it replays what it is given — :class:`~drivers.base.EncryptedPin`
values, exceptions to raise, or :data:`CARDHOLDER_WAITS` (nobody types: the entry runs until
:meth:`FakePinPad.cancel` or its ``timeout_s``, as on a real pad) — and records what it was
asked (PANs masked). Like the serial pad, ``cancel()`` aborts the entry in progress and is a
no-op when the pad is idle. Tests that need real DUKPT blocks use the simulator's
``SimulatedPinPad`` instead.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from drivers.base import EncryptedPin
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError, PinPadNoAnswerError
from drivers.pinpad.messages import DisplayRequest

__all__ = ["CARDHOLDER_WAITS", "FakePinPad", "PinRequestRecord"]


class _Waits(enum.Enum):
    CARDHOLDER_WAITS = "cardholder waits"


#: A scripted outcome: the cardholder types nothing; the entry ends on cancel() or timeout.
CARDHOLDER_WAITS = _Waits.CARDHOLDER_WAITS


@dataclass(frozen=True, slots=True)
class PinRequestRecord:
    masked_pan: str
    amount_minor: int
    currency_numeric: int
    timeout_s: float


class FakePinPad:
    """Implements :class:`drivers.base.PinPad` from a script of outcomes."""

    def __init__(
        self, outcomes: Iterable[EncryptedPin | BaseException | _Waits] = (), port: str = "fake"
    ):
        self.port = port
        self.outcomes: deque[EncryptedPin | BaseException | _Waits] = deque(outcomes)
        self.requests: list[PinRequestRecord] = []
        self.displayed: list[str] = []
        #: How many times cancel() was called (whether or not an entry was running).
        self.cancelled = 0
        self._entry_cancelled: asyncio.Event | None = None

    async def get_pin(
        self, pan: str, amount_minor: int, currency_numeric: int, timeout_s: float = 30.0
    ) -> EncryptedPin:
        self.requests.append(
            PinRequestRecord(f"{pan[:6]}…{pan[-4:]}", amount_minor, currency_numeric, timeout_s)
        )
        if not self.outcomes:
            raise PinPadNoAnswerError("fake PIN pad has no scripted outcome left", port=self.port)
        outcome = self.outcomes.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is CARDHOLDER_WAITS:
            await self._wait_for_cardholder(timeout_s)
        return outcome

    async def _wait_for_cardholder(self, timeout_s: float) -> NoReturn:
        # The serial pad rounds the entry timeout to whole seconds, 1 to 300.
        cancelled = self._entry_cancelled = asyncio.Event()
        try:
            async with asyncio.timeout(max(1, min(300, round(timeout_s)))):
                await cancelled.wait()
        except TimeoutError:
            raise PinEntryTimeoutError(
                "the cardholder did not enter a PIN in time on fake; ask again", port=self.port
            ) from None
        finally:
            self._entry_cancelled = None
        raise PinEntryCancelledError("PIN entry on fake was cancelled", port=self.port)

    async def display(self, text: str) -> None:
        DisplayRequest(text)  # the serial pad's limits: 32 printable ASCII characters
        self.displayed.append(text)

    async def cancel(self) -> None:
        self.cancelled += 1
        if self._entry_cancelled is not None:
            self._entry_cancelled.set()

    async def ping(self) -> dict[str, str]:
        return {"model": "FAKE", "scheme": "none"}
