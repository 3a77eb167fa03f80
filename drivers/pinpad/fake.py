"""An in-process, scripted PIN pad for engine tests (like httpcore's mock backend).

It does no cryptography: it replays what it is given — :class:`~drivers.base.EncryptedPin`
values or exceptions to raise — and records what it was asked (PANs masked). Tests that
need real DUKPT blocks use the simulator's ``SimulatedPinPad`` instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.base import EncryptedPin
from drivers.errors import PinEntryCancelled, PinPadNoAnswer

__all__ = ["FakePinPad", "PinRequestRecord"]


@dataclass(frozen=True, slots=True)
class PinRequestRecord:
    masked_pan: str
    amount_minor: int
    currency_numeric: int
    timeout_s: float


class FakePinPad:
    """Implements :class:`drivers.base.PinPad` from a script of outcomes."""

    def __init__(self, outcomes: Iterable[EncryptedPin | BaseException] = (), port: str = "fake"):
        self.port = port
        self.outcomes: deque[EncryptedPin | BaseException] = deque(outcomes)
        self.requests: list[PinRequestRecord] = []
        self.displayed: list[str] = []
        self.cancelled = 0

    async def get_pin(
        self, pan: str, amount_minor: int, currency_numeric: int, timeout_s: float = 30.0
    ) -> EncryptedPin:
        self.requests.append(
            PinRequestRecord(f"{pan[:6]}…{pan[-4:]}", amount_minor, currency_numeric, timeout_s)
        )
        if self.cancelled:
            self.cancelled = 0
            raise PinEntryCancelled("PIN entry on fake was cancelled", port=self.port)
        if not self.outcomes:
            raise PinPadNoAnswer("fake PIN pad has no scripted outcome left", port=self.port)
        outcome = self.outcomes.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def display(self, text: str) -> None:
        self.displayed.append(text)

    async def cancel(self) -> None:
        self.cancelled += 1

    async def ping(self) -> dict[str, str]:
        return {"model": "FAKE", "scheme": "none"}
