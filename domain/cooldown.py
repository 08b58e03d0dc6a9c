"""Cooldown: no repeat of the same action on the same symbol within the interval (event time)."""

from __future__ import annotations

from domain.signal import Action


class CooldownGate:
    """Remembers the event time of the last emitted (strategy, symbol, action).

    An event older than the last emission (out of order) counts as inside the cooldown.
    Memory is bounded by the number of distinct (strategy, symbol, action) triples.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, Action], int] = {}

    def admit(
        self, strategy_id: str, symbol: str, action: Action, event_time_ms: int, cooldown_ms: int
    ) -> bool:
        """True (and recorded) if a signal may be emitted now; False if suppressed."""
        key = (strategy_id, symbol, action)
        last = self._last.get(key)
        if last is not None and (event_time_ms - last < cooldown_ms or event_time_ms < last):
            return False
        self._last[key] = event_time_ms
        return True

    def blocks(
        self, strategy_id: str, symbol: str, action: Action, event_time_ms: int, cooldown_ms: int
    ) -> bool:
        """True if :meth:`admit` would suppress this signal now; records nothing."""
        last = self._last.get((strategy_id, symbol, action))
        return last is not None and (event_time_ms - last < cooldown_ms or event_time_ms < last)

    def forget_symbol(self, symbol: str) -> None:
        for key in [k for k in self._last if k[1] == symbol]:
            del self._last[key]
