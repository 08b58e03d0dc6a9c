"""Cooldown: no repeat of the same action on the same symbol within the interval (event time)."""

from __future__ import annotations

from domain.signal import Action


class CooldownGate:
    """Remembers the event time of the last emitted (strategy, symbol, action).

    An event older than the last emission (out of order) counts as inside the cooldown.
    Keyed by symbol first, so that forgetting a symbol (the engine's symbol bound) is one
    dictionary removal.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, dict[tuple[str, Action], int]] = {}

    def admit(
        self, strategy_id: str, symbol: str, action: Action, event_time_ms: int, cooldown_ms: int
    ) -> bool:
        """True (and recorded) if a signal may be emitted now; False if suppressed."""
        per_symbol = self._last.get(symbol)
        if per_symbol is None:
            per_symbol = self._last[symbol] = {}
        key = (strategy_id, action)
        last = per_symbol.get(key)
        if last is not None and (event_time_ms - last < cooldown_ms or event_time_ms < last):
            return False
        per_symbol[key] = event_time_ms
        return True

    def blocks(
        self, strategy_id: str, symbol: str, action: Action, event_time_ms: int, cooldown_ms: int
    ) -> bool:
        """True if :meth:`admit` would suppress this signal now; records nothing."""
        per_symbol = self._last.get(symbol)
        if per_symbol is None:
            return False
        last = per_symbol.get((strategy_id, action))
        return last is not None and (event_time_ms - last < cooldown_ms or event_time_ms < last)

    def forget_symbol(self, symbol: str) -> None:
        self._last.pop(symbol, None)

    @property
    def symbols(self) -> int:
        return len(self._last)
