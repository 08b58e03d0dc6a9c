"""Circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from adapters.nats.circuit_breaker import BreakerState, CircuitBreaker
from tests.clock import ManualSeconds

pytestmark = pytest.mark.unit


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call, so mypy does not narrow the property across calls."""
    return breaker.state


def make(clock: ManualSeconds, **kwargs: int | float) -> CircuitBreaker:
    params: dict[str, int | float] = {"failure_threshold": 3, "reset_timeout": 10.0}
    params.update(kwargs)
    return CircuitBreaker(
        failure_threshold=int(params["failure_threshold"]),
        reset_timeout=float(params["reset_timeout"]),
        half_open_max_calls=int(params.get("half_open_max_calls", 1)),
        success_threshold=int(params.get("success_threshold", 1)),
        clock=clock,
    )


def opened(clock: ManualSeconds, **kwargs: int | float) -> CircuitBreaker:
    """A breaker (:func:`make`) opened by three consecutive failures at ``clock``'s time."""
    breaker = make(clock, **kwargs)
    for _ in range(3):
        breaker.record_failure()
    return breaker


def test_starts_closed_and_allows_requests() -> None:
    breaker = make(ManualSeconds())
    assert state(breaker) is BreakerState.CLOSED
    assert int(breaker.state) == 0
    assert breaker.allow_request()
    assert breaker.retry_after() == 0.0


def test_opens_after_consecutive_failures_only() -> None:
    breaker = make(ManualSeconds())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the consecutive count
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert int(breaker.state) == 1
    assert not breaker.allow_request()
    assert breaker.times_opened == 1


def test_half_open_after_timeout_then_closes_on_success() -> None:
    clock = ManualSeconds()
    breaker = opened(clock)
    clock.advance(4.0)
    assert breaker.retry_after() == pytest.approx(6.0)
    assert not breaker.allow_request()
    clock.advance(6.0)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert int(breaker.state) == 2
    assert breaker.allow_request()
    # Only one trial call at a time in half-open.
    assert not breaker.allow_request()
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow_request()


def test_half_open_failure_reopens_and_restarts_timeout() -> None:
    clock = ManualSeconds()
    breaker = opened(clock)
    clock.advance(10.0)
    assert breaker.allow_request()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.advance(9.9)
    assert state(breaker) is BreakerState.OPEN
    clock.advance(0.1)
    assert state(breaker) is BreakerState.HALF_OPEN


def test_success_threshold_and_parallel_trials() -> None:
    clock = ManualSeconds()
    breaker = opened(clock, half_open_max_calls=2, success_threshold=2)
    clock.advance(10.0)
    assert breaker.allow_request()
    assert breaker.allow_request()
    assert not breaker.allow_request()
    breaker.record_success()
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED


def test_failure_while_open_restarts_timeout() -> None:
    clock = ManualSeconds()
    breaker = opened(clock)
    clock.advance(8.0)
    breaker.record_failure()
    clock.advance(8.0)
    assert state(breaker) is BreakerState.OPEN
    clock.advance(2.0)
    assert state(breaker) is BreakerState.HALF_OPEN


def test_probe_now_and_reset() -> None:
    breaker = opened(ManualSeconds())
    breaker.probe_now()
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow_request()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    breaker.reset()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow_request()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"reset_timeout": -1.0},
        {"half_open_max_calls": 0},
        {"success_threshold": 0},
    ],
)
def test_rejects_bad_thresholds(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make(ManualSeconds(), **kwargs)
