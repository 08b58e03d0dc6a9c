"""A clock of seconds that a test moves by hand, where code takes ``time.monotonic``."""

from __future__ import annotations


class ManualSeconds:
    """Returns ``now`` (seconds) when called; time moves only when the test sets ``now`` or
    calls :meth:`advance`."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
