"""The wall clock (``application.ports.Clock``) for the running service."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """``now()`` is the current time, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
