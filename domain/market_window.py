"""The recent market events of each symbol, kept for what-if previews (event time only).

:class:`MarketWindow` keeps, per symbol, the events of the last ``window_seconds`` of that
symbol's event time, at most ``max_events`` of them (the oldest go first) and at most
``max_symbols`` symbols (the least recently seen is forgotten). Events without a symbol (BTC
dominance, on-chain flows) are not kept: a preview replays per-symbol market data. An event
older than the newest kept one of its symbol is still kept in arrival order (the live run
loop sees it in that order too); a future-dated event only shortens what its symbol keeps.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterable

from domain.market import MarketEvent
from domain.signal import Signal


class MarketWindow:
    """Bounded per-symbol ring buffers of recent market events (see the module doc)."""

    def __init__(
        self, window_seconds: float = 900.0, max_events: int = 20_000, max_symbols: int = 100
    ) -> None:
        if not window_seconds > 0 or max_events < 1 or max_symbols < 1:
            raise ValueError("window_seconds, max_events and max_symbols must be positive")
        self.window_ms = round(window_seconds * 1000)
        self.max_events = max_events
        self.max_symbols = max_symbols
        self._events: OrderedDict[str, deque[MarketEvent]] = OrderedDict()
        self.forgotten_symbols = 0

    def add(self, event: MarketEvent) -> None:
        symbol = getattr(event, "symbol", None)
        if symbol is None:
            return
        events = self._events.get(symbol)
        if events is None:
            if len(self._events) >= self.max_symbols:
                self._events.popitem(last=False)
                self.forgotten_symbols += 1
            events = self._events[symbol] = deque(maxlen=self.max_events)
        else:
            self._events.move_to_end(symbol)
        events.append(event)
        horizon = event.event_time_ms - self.window_ms
        while events[0].event_time_ms < horizon:
            events.popleft()

    on_event = add
    """The run loop's tap: every event it processes."""

    def on_published(self, signal: Signal) -> None:
        """Signals are not kept (a preview computes its own)."""

    def symbols(self) -> list[str]:
        return list(self._events)

    def __len__(self) -> int:
        return sum(len(events) for events in self._events.values())

    def events(self, symbols: Iterable[str] | None = None) -> list[MarketEvent]:
        """A copy of the kept events of ``symbols`` (None: all), merged in event-time order
        (a symbol's own order is kept)."""
        wanted = self._events if symbols is None else {s: self._events.get(s) for s in symbols}
        copies = [list(events) for events in wanted.values() if events]
        if len(copies) == 1:
            return copies[0]
        return list(heapq.merge(*copies, key=lambda event: event.event_time_ms))
