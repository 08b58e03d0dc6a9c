"""In-memory :class:`application.ports.SignalBudget`: the per-minute window shared by the
runtimes that hold the same instance (unit tests of several "processes" in one).

Like the NATS budget: every take yields to the event loop once, and ``available = False``
makes it raise :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from application.ports import StoreUnavailableError
from domain.governance import SLOT_HORIZON_MS, Slot, take_slot


class InMemorySignalBudget:
    """One window (:func:`domain.governance.take_slot`), read and written without yielding
    in between, so a take is atomic."""

    def __init__(self, horizon_ms: int = SLOT_HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self.available = True
        self.window: list[Slot] = []
        self.stats: Counter[str] = Counter(taken=0, refused=0)

    async def take(self, time_ms: int, cap: int, signal_id: str = "") -> bool:
        await asyncio.sleep(0)
        if not self.available:
            raise StoreUnavailableError("in-memory signal budget is unavailable")
        window = take_slot(self.window, time_ms, cap, self.horizon_ms, signal_id)
        if window is None:
            self.stats["refused"] += 1
            return False
        self.window = window
        self.stats["taken"] += 1
        return True
