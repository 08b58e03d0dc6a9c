"""A small circuit breaker (closed → open → half-open), pure logic with an injected clock.

- **closed**: requests flow; ``failure_threshold`` consecutive failures open the circuit.
- **open**: requests are refused until ``reset_timeout`` seconds have passed since it opened,
  then the breaker turns half-open.
- **half-open**: up to ``half_open_max_calls`` trial requests at a time; ``success_threshold``
  successes close it again, any failure re-opens it (and restarts the timeout).

``state`` is an :class:`IntEnum` (0 closed, 1 open, 2 half-open) so it can be exported as a
metrics gauge directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Counts consecutive failures of an operation and stops calling it while it keeps failing.

    Usage: ``if breaker.allow_request(): ...try...; breaker.record_success() / record_failure()``.
    Every ``allow_request()`` that returned True must be followed by exactly one ``record_*``.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0, got {reset_timeout}")
        if half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be >= 1, got {half_open_max_calls}")
        if success_threshold < 1:
            raise ValueError(f"success_threshold must be >= 1, got {success_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self.success_threshold = success_threshold
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._half_open_successes = 0
        self._half_open_in_flight = 0
        self._opened_at = 0.0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose timeout has elapsed reports half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._to_half_open()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow_request(self) -> bool:
        """True if a call may be attempted now (in half-open: reserves one trial slot)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._half_open_in_flight < self.half_open_max_calls:
            self._half_open_in_flight += 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 if not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    def record_success(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._half_open_in_flight = max(0, self._half_open_in_flight - 1)
            self._half_open_successes += 1
            if self._half_open_successes >= self.success_threshold:
                self._to_closed()
            return
        self._failures = 0

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._to_open()
            return
        if self._state is BreakerState.OPEN:
            # A failure reported while open (e.g. the dependency is known to be away): keep the
            # circuit open and restart its timeout.
            self._opened_at = self._clock()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._to_open()

    def probe_now(self) -> None:
        """Let a trial call through right away (e.g. the connection just came back)."""
        if self._state is BreakerState.OPEN:
            self._to_half_open()

    def reset(self) -> None:
        self._to_closed()

    def _to_open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._half_open_in_flight = 0
        self._half_open_successes = 0
        self.times_opened += 1

    def _to_half_open(self) -> None:
        self._state = BreakerState.HALF_OPEN
        self._half_open_in_flight = 0
        self._half_open_successes = 0

    def _to_closed(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._half_open_in_flight = 0
        self._half_open_successes = 0
