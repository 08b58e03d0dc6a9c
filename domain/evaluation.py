"""Backtest evaluation: forward returns and hit rate of signals (pure).

The reference price is the last trade price (or, before any trade, the depth mid) at or
before a time. A signal's forward return at horizon ``h`` is the signed relative move of
that reference price from the signal's event time ``t`` to ``t + h``: positive when the
market moved in the signal's direction. Horizons that reach past the end of the data are
left undefined (``None``) rather than guessed, and hit rates count only defined returns.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.signal import Action, Signal

DEFAULT_HORIZONS_S: tuple[int, ...] = (1, 10, 60, 300)


class PriceSeries:
    """Reference prices by event time for one symbol, appended in event order."""

    __slots__ = ("_prices", "_times")

    def __init__(self) -> None:
        self._times: list[int] = []
        self._prices: list[float] = []

    def add(self, event_time_ms: int, price: float) -> None:
        times = self._times
        if times:
            last = times[-1]
            if event_time_ms <= last:
                if event_time_ms == last:
                    self._prices[-1] = price
                return  # out of order: the series only moves forward
        times.append(event_time_ms)
        self._prices.append(price)

    def observe(self, event: MarketEvent) -> None:
        """Take the reference price from trades, and from depth mids until a trade is seen."""
        if isinstance(event, Trade):
            self.add(event.event_time_ms, event.price)
        elif isinstance(event, DepthSnapshot) and not self._times:
            mid = event.mid
            if mid is not None:
                self.add(event.event_time_ms, mid)

    def price_at(self, event_time_ms: int) -> float | None:
        index = bisect_right(self._times, event_time_ms) - 1
        return self._prices[index] if index >= 0 else None

    @property
    def end_ms(self) -> int | None:
        return self._times[-1] if self._times else None

    def points(self) -> tuple[Sequence[int], Sequence[float]]:
        return self._times, self._prices


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    signal: Signal
    entry_price: float
    returns: tuple[float | None, ...]  # one per horizon, signed by the signal's direction


def forward_returns(
    signals: Iterable[Signal],
    series_by_symbol: dict[str, PriceSeries],
    horizons_s: Sequence[int] = DEFAULT_HORIZONS_S,
) -> list[SignalOutcome]:
    outcomes = []
    for signal in signals:
        series = series_by_symbol.get(signal.symbol)
        entry = series.price_at(signal.event_time_ms) if series is not None else None
        if series is None or entry is None:
            entry = signal.current_price
        end = series.end_ms if series is not None else None
        direction = 1.0 if signal.action is Action.BUY else -1.0
        returns: list[float | None] = []
        for horizon in horizons_s:
            target = signal.event_time_ms + horizon * 1000
            later = series.price_at(target) if series is not None else None
            if end is None or target > end or later is None:
                returns.append(None)
            else:
                returns.append(direction * (later - entry) / entry)
        outcomes.append(SignalOutcome(signal, entry, tuple(returns)))
    return outcomes


@dataclass(frozen=True, slots=True)
class HorizonStats:
    horizon_s: int
    evaluated: int
    hits: int
    mean_return: float | None

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.evaluated if self.evaluated else None


def horizon_stats(
    outcomes: Sequence[SignalOutcome], horizons_s: Sequence[int] = DEFAULT_HORIZONS_S
) -> list[HorizonStats]:
    """Per horizon: how many signals could be evaluated, how many moved their way, mean return."""
    stats = []
    for index, horizon in enumerate(horizons_s):
        values = [r for o in outcomes if (r := o.returns[index]) is not None]
        hits = sum(1 for r in values if r > 0.0)
        mean = sum(values) / len(values) if values else None
        stats.append(HorizonStats(horizon, len(values), hits, mean))
    return stats
