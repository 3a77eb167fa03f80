"""The circuit breaker: closed → open after N failures in the window → half-open probe."""

from __future__ import annotations

import pytest

from edge_sync.connectors import BreakerSettings, BreakerState, CircuitBreaker
from edge_sync.connectors.errors import CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("cih", BreakerSettings(failures=3, window_s=10, reset_s=5),
                          clock=clock)


def test_opens_after_failures_within_window() -> None:
    """Three failures within ten seconds open it; calls are then refused with the wait."""
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.before_call()
        b.record_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.before_call()
    assert info.value.fields["connector"] == "cih"


def test_failures_spread_out_do_not_open() -> None:
    """Failures further apart than the window never add up."""
    clock = Clock()
    b = breaker(clock)
    for _ in range(5):
        b.record_failure()
        clock.now += 6
    assert b.state is BreakerState.CLOSED


def test_success_resets_the_count() -> None:
    """A success in between clears the failures seen so far."""
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("probe_succeeds", "after"),
    [
        (True,             BreakerState.CLOSED),
        (False,            BreakerState.OPEN),
    ],
)
def test_half_open_lets_one_probe(probe_succeeds: bool, after: BreakerState) -> None:
    """After reset_s one probe goes through, a second is refused; its result decides."""
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 5
    assert b.state is BreakerState.HALF_OPEN
    b.before_call()
    with pytest.raises(CircuitOpenError):
        b.before_call()
    if probe_succeeds:
        b.record_success()
    else:
        b.record_failure()
    assert b.state is after


def test_settings_are_validated() -> None:
    """Nonsense settings are a caller mistake."""
    with pytest.raises(ValueError, match="failures"):
        BreakerSettings(failures=0)


def test_retry_in_counts_down_while_open_and_is_zero_otherwise() -> None:
    """Closed: 0; opened at t=1 with reset 5: 5 s to wait, 2 s at t=4; half-open: 0."""
    clock = Clock()
    b = breaker(clock)
    assert b.retry_in_s == 0.0
    clock.now = 1.0
    for _ in range(3):
        b.record_failure()
    assert b.retry_in_s == 5.0
    clock.now = 4.0
    assert b.retry_in_s == 2.0
    clock.now = 6.0
    assert b.state is BreakerState.HALF_OPEN and b.retry_in_s == 0.0
