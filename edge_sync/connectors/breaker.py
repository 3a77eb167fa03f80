"""A circuit breaker per connector: stop calling a PSP that keeps failing, probe it later.

States (the classic pattern, as in Nygard's *Release It!*):

* **closed** — calls go through; failures (no connection, no answer, unreadable answer,
  "retry" codes) are counted within a sliding ``window_s``; ``failures`` of them open it;
* **open** — calls are refused at once with :class:`CircuitOpenError` until ``reset_s`` passed;
* **half-open** — one probe call is let through; success closes the breaker, failure opens
  it again for another ``reset_s``.

Declines are answers, not failures: a PSP that declines is healthy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from edge_sync.connectors.errors import CircuitOpenError

__all__ = ["BreakerSettings", "BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5
    window_s: float = 30.0
    reset_s: float = 15.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.reset_s <= 0:
            raise ValueError("a breaker needs failures >= 1, window_s > 0 and reset_s > 0")


class CircuitBreaker:
    def __init__(self, name: str, settings: BreakerSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.settings.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets its probe call through (0 unless open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.settings.reset_s - self._clock())

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return
        retry_in = self.retry_in_s
        raise CircuitOpenError(
            f"{self.name}: circuit open after {self.settings.failures} failures within "
            f"{self.settings.window_s:g} s; next probe in {retry_in:.1f} s",
            connector=self.name, retry_in_s=round(retry_in, 3),
        )

    def record_success(self) -> None:
        self._failures.clear()
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        now = self._clock()
        if self._probe_in_flight or self._opened_at is not None:
            self._opened_at = now  # the probe failed: open for another period
            self._probe_in_flight = False
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.settings.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.settings.failures:
            self._opened_at = now
            self._failures.clear()
