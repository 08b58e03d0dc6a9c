"""MarketWindow (kept for previews) against the plain version it optimises.

The window stores the usual event kinds as tuples of field values (no objects for the
garbage collector to walk); :class:`PlainWindow` keeps the event objects themselves. For any
sequence of events, both must give back equal events in the same order.
"""

from __future__ import annotations

import gc
import heapq
from collections import OrderedDict, deque

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import market
from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.market_window import MarketWindow


class PlainWindow:
    """The simple version: per-symbol deques of the event objects."""

    def __init__(self, window_seconds: float, max_events: int, max_symbols: int) -> None:
        self.window_ms = round(window_seconds * 1000)
        self.max_events = max_events
        self.max_symbols = max_symbols
        self._events: OrderedDict[str, deque[MarketEvent]] = OrderedDict()

    def add(self, event: MarketEvent) -> None:
        symbol = getattr(event, "symbol", None)
        if symbol is None:
            return
        events = self._events.get(symbol)
        if events is None:
            if len(self._events) >= self.max_symbols:
                self._events.popitem(last=False)
            events = self._events[symbol] = deque(maxlen=self.max_events)
        else:
            self._events.move_to_end(symbol)
        events.append(event)
        while events[0].event_time_ms < event.event_time_ms - self.window_ms:
            events.popleft()

    def events(self, symbols: list[str] | None = None) -> list[MarketEvent]:
        wanted = self._events if symbols is None else {s: self._events.get(s) for s in symbols}
        blocks = [list(events) for events in wanted.values() if events]
        return list(heapq.merge(*blocks, key=lambda event: event.event_time_ms))


SYMBOLS = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"])
TIMES = st.integers(min_value=0, max_value=20_000)
PRICES = st.floats(min_value=1.0, max_value=1e5)
LEVELS = st.lists(st.tuples(PRICES, st.floats(min_value=0.0, max_value=1e3)), max_size=3)


def _depth(symbol: str, time_ms: int, bids: list[tuple[float, float]]) -> DepthSnapshot:
    ordered = sorted(bids, reverse=True)
    best_ask = (ordered[0][0] if ordered else 1.0) * 2
    asks = [(best_ask + index, qty) for index, (_, qty) in enumerate(ordered)]
    return DepthSnapshot(symbol, time_ms, tuple(ordered), tuple(asks))


EVENTS = st.one_of(
    st.builds(_depth, SYMBOLS, TIMES, LEVELS),
    st.builds(Trade, SYMBOLS, TIMES, st.integers(0, 10**9), PRICES, PRICES, st.booleans()),
    st.builds(
        market.Ticker, SYMBOLS, TIMES, PRICES, *[st.just(1.0)] * 2, *[PRICES] * 6, st.just(2.0)
    ),
    st.builds(market.VenueQuote, st.just("okx"), SYMBOLS, TIMES, st.just(1.0), PRICES),
    st.builds(market.DominanceObservation, TIMES, st.floats(0.0, 100.0)),
    st.builds(market.ExchangeFlow, st.just("BTC"), TIMES, PRICES, PRICES, st.integers(1, 3600)),
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(EVENTS, max_size=60),
    window_seconds=st.sampled_from([0.5, 5.0, 900.0]),
    max_events=st.integers(1, 8),
    max_symbols=st.integers(1, 4),
    asked=st.one_of(st.none(), st.lists(SYMBOLS, max_size=3, unique=True)),
)
def test_the_window_gives_back_what_the_plain_version_keeps(
    events: list[MarketEvent],
    window_seconds: float,
    max_events: int,
    max_symbols: int,
    asked: list[str] | None,
) -> None:
    window = MarketWindow(window_seconds, max_events, max_symbols)
    plain = PlainWindow(window_seconds, max_events, max_symbols)
    for event in events:
        window.on_event(event)
        plain.add(event)
    assert window.events(asked) == plain.events(asked)
    assert window.symbols() == list(plain._events)
    assert len(window) == len(plain.events())


def test_kept_events_are_not_tracked_by_the_garbage_collector() -> None:
    window = MarketWindow(900.0, 1_000, 10)
    for index in range(200):
        window.on_event(_depth("BTCUSDT", index, [(100.0 - level, 1.0) for level in range(20)]))
        window.on_event(Trade("BTCUSDT", index, index, 100.0, 1.0, False))
    # The collector untracks a tuple whose items are untracked when it meets it; the outer
    # tuple can come before its field tuple in that walk, so it goes at the next collection.
    gc.collect()
    gc.collect()
    kept = window._events["BTCUSDT"]
    assert len(kept) == 400
    assert not any(gc.is_tracked(item) for item in kept)
    rebuilt = window.events()
    assert rebuilt[0] == _depth("BTCUSDT", 0, [(100.0 - level, 1.0) for level in range(20)])
    assert rebuilt[1] == Trade("BTCUSDT", 0, 0, 100.0, 1.0, False)
