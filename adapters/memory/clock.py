"""A settable ``Clock`` for tests and the backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEFAULT_FIXED_TIME = datetime(2024, 1, 1, tzinfo=UTC)


class FixedClock:
    """Returns ``now`` until told otherwise; time moves only by :meth:`advance` / :meth:`set`.

    Naive datetimes are taken as UTC; ``now()`` is always timezone-aware UTC.
    """

    def __init__(self, now: datetime = DEFAULT_FIXED_TIME) -> None:
        self._now = _utc(now)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float = 1.0) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock does not go backwards: {step}")
        self._now += step
        return self._now

    def set(self, now: datetime) -> None:
        self._now = _utc(now)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
