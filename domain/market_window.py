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
import marshal
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import fields
from operator import attrgetter, itemgetter
from typing import Any

from domain.market import DepthSnapshot, MarketEvent, Ticker, Trade, VenueQuote
from domain.signal import Signal

_PACKED_KINDS: tuple[type[Any], ...] = (DepthSnapshot, Trade, Ticker, VenueQuote)
_PACKERS: dict[type[Any], tuple[int, Callable[[Any], tuple[Any, ...]]]] = {
    kind: (index, attrgetter(*(field.name for field in fields(kind))))
    for index, kind in enumerate(_PACKED_KINDS)
}
_UNPACKED = -1
_Kept = tuple[int, int, Any]
"""(event time, index in ``_PACKED_KINDS`` or ``_UNPACKED``, marshalled field values or the
event itself)."""


def _unpack(kept: _Kept) -> MarketEvent:
    _, kind, values = kept
    if kind == _UNPACKED:
        event: MarketEvent = values
        return event
    unpacked: MarketEvent = _PACKED_KINDS[kind](*marshal.loads(values))
    return unpacked


class MarketWindow:
    """Bounded per-symbol ring buffers of recent market events (see the module doc).

    The events of the usual kinds are kept as their field values marshalled to bytes and
    rebuilt by :meth:`events`. As objects, a full window (up to ``max_symbols`` ×
    ``max_events``, a million events) would be tens of millions of objects — a depth
    snapshot alone is 40-odd tuples — that stay alive for the window's length, so the
    garbage collector walks them in full collections (pauses of 0.1 s and more in the run
    loop) and they take ~5 KB per snapshot; marshalled, they are one bytes object of ~0.8 KB
    that the collector does not track.
    """

    def __init__(
        self, window_seconds: float = 900.0, max_events: int = 20_000, max_symbols: int = 100
    ) -> None:
        if not window_seconds > 0 or max_events < 1 or max_symbols < 1:
            raise ValueError("window_seconds, max_events and max_symbols must be positive")
        self.window_ms = round(window_seconds * 1000)
        self.max_events = max_events
        self.max_symbols = max_symbols
        self._events: OrderedDict[str, deque[_Kept]] = OrderedDict()
        self.forgotten_symbols = 0

    def add(self, event: MarketEvent) -> None:
        packer = _PACKERS.get(event.__class__)
        if packer is not None:
            symbol: str = event.symbol  # type: ignore[union-attr]
            kept: _Kept = (event.event_time_ms, packer[0], marshal.dumps(packer[1](event)))
        else:
            symbol = getattr(event, "symbol", None)  # type: ignore[assignment]
            if symbol is None:
                return
            kept = (event.event_time_ms, _UNPACKED, event)
        events = self._events.get(symbol)
        if events is None:
            if len(self._events) >= self.max_symbols:
                self._events.popitem(last=False)
                self.forgotten_symbols += 1
            events = self._events[symbol] = deque(maxlen=self.max_events)
        else:
            self._events.move_to_end(symbol)
        events.append(kept)
        horizon = kept[0] - self.window_ms
        while events[0][0] < horizon:
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
        blocks = [events for events in wanted.values() if events]
        merged = blocks[0] if len(blocks) == 1 else heapq.merge(*blocks, key=itemgetter(0))
        return [_unpack(kept) for kept in merged]
