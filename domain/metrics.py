"""Market metrics from order-book depth: pressure, liquidity, spread, support/resistance.

Pure domain: standard library only, no I/O and no clock. Every time in here is an exchange
event time (epoch milliseconds) taken from the snapshots themselves, so the live service and
a backtest fed the same messages answer every query identically.

Notation for one :class:`~domain.market.DepthSnapshot` (all levels it carries, typically 20):

* ``B`` = Σ bid quantities, ``A`` = Σ ask quantities (base units).
* imbalance ``= (B − A) / (B + A)`` in [−1, 1].
* buy pressure ``= B / (B + A) · 100``, sell pressure ``= A / (B + A) · 100`` (both 0..100).
* net pressure ``= buy − sell = imbalance · 100`` in [−100, 100].
* interpretation: ``bullish`` if net > 20, ``bearish`` if net < −20, else ``neutral``.

When ``B + A == 0`` (empty book or only zero-quantity levels) there is no evidence either way:
imbalance and net are 0, buy and sell pressure 50, interpretation ``neutral``. Prices that
need a side (best bid/ask, mid, spread, VWAP, support/resistance) are ``None`` when the side
is empty or carries no quantity.

:class:`MarketMetricsBook` keeps, per symbol, the latest snapshot and a bounded pressure
history (event time ``t``, ``B``, ``A``). Its hot path :meth:`MarketMetricsBook.on_depth`
only stores; everything else is computed when queried.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from domain.market import DepthSnapshot, Level
from domain.state import integer, items, row, symbol_entries

BULLISH_THRESHOLD = 20.0
"""Net pressure strictly above this is bullish; strictly below its negative, bearish."""

DEFAULT_HISTORY_SECONDS = 3600
DEFAULT_MAX_SYMBOLS = 5000
HISTORY_POINTS_PER_SECOND = 20
"""Default history length cap per symbol = ``history_seconds · 20`` (2× the 10/s depth rate)."""
DEFAULT_MAX_POINTS = 300
"""Default cap on the points a :class:`PressureSeries` returns (the summary uses all)."""

_COMPACT_MIN = 1024
_qty = itemgetter(1)
_symbol_of = attrgetter("symbol")
_Item = TypeVar("_Item")


class Interpretation(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


def interpret(net_pressure: float) -> Interpretation:
    """``bullish`` if net > 20, ``bearish`` if net < −20, else ``neutral``."""
    if net_pressure > BULLISH_THRESHOLD:
        return Interpretation.BULLISH
    if net_pressure < -BULLISH_THRESHOLD:
        return Interpretation.BEARISH
    return Interpretation.NEUTRAL


class Timeframe(StrEnum):
    """Pressure-history windows, measured back from the symbol's latest event time."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"

    @property
    def seconds(self) -> int:
        return _TIMEFRAME_SECONDS[self]


_TIMEFRAME_SECONDS = {Timeframe.M1: 60, Timeframe.M5: 300, Timeframe.M15: 900, Timeframe.H1: 3600}


def pressures(bid_volume: float, ask_volume: float) -> tuple[float, float, float]:
    """``(buy, sell, net)`` pressure from side volumes; ``(50, 50, 0)`` when both are 0.

    buy ``= B/(B+A)·100``, sell ``= A/(B+A)·100``, net ``= buy − sell``. If ``B + A``
    overflows to infinity the volumes are scaled down first (an infinite side counts as 1
    against 0), so the result is always finite.
    """
    total = bid_volume + ask_volume
    if total <= 0.0:
        return 50.0, 50.0, 0.0
    if total == math.inf:  # only by float overflow; never on a real book
        if bid_volume == math.inf or ask_volume == math.inf:
            bid_volume = float(bid_volume == math.inf)
            ask_volume = float(ask_volume == math.inf)
        else:
            bid_volume, ask_volume = bid_volume / 4.0, ask_volume / 4.0
        total = bid_volume + ask_volume
    buy = bid_volume / total * 100.0
    sell = ask_volume / total * 100.0
    return buy, sell, buy - sell


def _json_float(value: float | None) -> float | None:
    """Floats for JSON: non-finite values (only reachable by overflow) become ``None``."""
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class SideDepth:
    """Bid and ask volume (base units) over the best ``n`` levels of each side."""

    bid: float
    ask: float

    @property
    def total(self) -> float:
        return self.bid + self.ask

    def as_dict(self) -> dict[str, Any]:
        return {
            "bid": _json_float(self.bid),
            "ask": _json_float(self.ask),
            "total": _json_float(self.total),
        }


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One book level: ``price`` and ``quantity``."""

    price: float
    quantity: float

    def as_dict(self) -> dict[str, Any]:
        return {"price": self.price, "quantity": self.quantity}


def _strongest(levels: tuple[Level, ...]) -> PriceLevel | None:
    """The level with the largest quantity (ties: the one nearest the touch); None if all 0."""
    if not levels:
        return None
    price, qty = max(levels, key=_qty)
    return PriceLevel(price, qty) if qty > 0.0 else None


def _notional(levels: tuple[Level, ...]) -> float:
    return sum(price * qty for price, qty in levels)


@dataclass(frozen=True, slots=True)
class DepthMetrics:
    """Everything the metrics API reports about one depth snapshot.

    Formulas (``B``/``A`` = bid/ask volume over all levels of the snapshot):

    * ``imbalance = (B − A)/(B + A)``; ``bid_ask_ratio = B/A`` (None if ``A == 0``).
    * ``buy_pressure = B/(B+A)·100``, ``sell_pressure = A/(B+A)·100``,
      ``net_pressure = buy − sell``; all-zero book → 50/50/0.
    * ``depth_top5``/``depth_top10``: Σ qty over the best 5/10 levels per side.
    * ``total_liquidity = B + A`` (base units);
      ``total_liquidity_quote = Σ price·qty`` over both sides (quote units, e.g. USDT).
    * ``mid = (best_bid + best_ask)/2``; ``spread = best_ask − best_bid``;
      ``spread_bps = spread / mid · 10 000``.
    * ``vwap_bid = Σ p·q / Σ q`` over the bids (None if ``Σ q == 0``); same for asks.
    * ``strongest_support`` / ``strongest_resistance``: the bid / ask level with the largest
      quantity (ties → nearest the touch; None if the side has no quantity).
    * ``interpretation``: bullish if net > 20, bearish if net < −20, else neutral.
    """

    symbol: str
    event_time_ms: int
    bid_volume: float
    ask_volume: float
    bid_levels: int
    ask_levels: int
    imbalance: float
    bid_ask_ratio: float | None
    buy_pressure: float
    sell_pressure: float
    net_pressure: float
    interpretation: Interpretation
    depth_top5: SideDepth
    depth_top10: SideDepth
    total_liquidity: float
    total_liquidity_quote: float
    best_bid: float | None
    best_ask: float | None
    mid: float | None
    spread: float | None
    spread_bps: float | None
    vwap_bid: float | None
    vwap_ask: float | None
    strongest_support: PriceLevel | None
    strongest_resistance: PriceLevel | None

    @classmethod
    def of(cls, snapshot: DepthSnapshot) -> DepthMetrics:
        bids, asks = snapshot.bids, snapshot.asks
        bid_volume = sum(map(_qty, bids))
        ask_volume = sum(map(_qty, asks))
        buy, sell, net = pressures(bid_volume, ask_volume)
        bid_notional = _notional(bids)
        ask_notional = _notional(asks)
        best_bid = snapshot.best_bid
        best_ask = snapshot.best_ask
        mid = spread = spread_bps = None
        if best_bid is not None and best_ask is not None:
            mid = (best_bid + best_ask) / 2.0
            spread = best_ask - best_bid
            spread_bps = spread / mid * 10_000.0
        return cls(
            symbol=snapshot.symbol,
            event_time_ms=snapshot.event_time_ms,
            bid_volume=bid_volume,
            ask_volume=ask_volume,
            bid_levels=len(bids),
            ask_levels=len(asks),
            imbalance=net / 100.0,
            bid_ask_ratio=bid_volume / ask_volume if ask_volume > 0.0 else None,
            buy_pressure=buy,
            sell_pressure=sell,
            net_pressure=net,
            interpretation=interpret(net),
            depth_top5=SideDepth(sum(map(_qty, bids[:5])), sum(map(_qty, asks[:5]))),
            depth_top10=SideDepth(sum(map(_qty, bids[:10])), sum(map(_qty, asks[:10]))),
            total_liquidity=bid_volume + ask_volume,
            total_liquidity_quote=bid_notional + ask_notional,
            best_bid=best_bid,
            best_ask=best_ask,
            mid=mid,
            spread=spread,
            spread_bps=spread_bps,
            vwap_bid=bid_notional / bid_volume if bid_volume > 0.0 else None,
            vwap_ask=ask_notional / ask_volume if ask_volume > 0.0 else None,
            strongest_support=_strongest(bids),
            strongest_resistance=_strongest(asks),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, grouped as in the reference API (``pressure``, ``liquidity``, ...)."""
        support, resistance = self.strongest_support, self.strongest_resistance
        return {
            "symbol": self.symbol,
            "event_time_ms": self.event_time_ms,
            "imbalance": {
                "bid_volume": _json_float(self.bid_volume),
                "ask_volume": _json_float(self.ask_volume),
                "bid_ask_ratio": _json_float(self.bid_ask_ratio),
                "imbalance": self.imbalance,
                "imbalance_percent": self.imbalance * 100.0,
            },
            "pressure": {
                "buy_pressure": self.buy_pressure,
                "sell_pressure": self.sell_pressure,
                "net_pressure": self.net_pressure,
                "interpretation": self.interpretation.value,
            },
            "liquidity": {
                "total_liquidity": _json_float(self.total_liquidity),
                "total_liquidity_quote": _json_float(self.total_liquidity_quote),
                "depth_top5": self.depth_top5.as_dict(),
                "depth_top10": self.depth_top10.as_dict(),
                "vwap_bid": _json_float(self.vwap_bid),
                "vwap_ask": _json_float(self.vwap_ask),
            },
            "spread": {
                "best_bid": self.best_bid,
                "best_ask": self.best_ask,
                "mid": self.mid,
                "spread": self.spread,
                "spread_bps": self.spread_bps,
            },
            "levels": {
                "bid_levels": self.bid_levels,
                "ask_levels": self.ask_levels,
                "strongest_support": support.as_dict() if support else None,
                "strongest_resistance": resistance.as_dict() if resistance else None,
            },
        }


@dataclass(frozen=True, slots=True)
class PressurePoint:
    """Pressure at one event time (or the mean over a downsampling bucket ending there)."""

    event_time_ms: int
    buy_pressure: float
    sell_pressure: float
    net_pressure: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_time_ms": self.event_time_ms,
            "buy_pressure": self.buy_pressure,
            "sell_pressure": self.sell_pressure,
            "net_pressure": self.net_pressure,
        }


@dataclass(frozen=True, slots=True)
class PressureSummary:
    """Statistics over every history point in the window (not just the returned ones).

    * ``avg/min/max_net_pressure``, ``avg_buy/sell_pressure``: plain over the ``count`` points.
    * ``trend``: :func:`interpret` of the average net pressure (bullish if avg net > 20,
      bearish if < −20, else neutral) — the same rule as a single snapshot's interpretation.
    * ``trend_strength = (magnitude + consistency) / 2`` in [0, 1], where for a bullish
      (bearish) trend ``magnitude = min(1, |avg net| / 100)`` and ``consistency`` = share of
      points with net > 0 (net < 0); for a neutral trend ``magnitude = 1 − |avg net| / 20``
      (how centred the average is) and ``consistency`` = share of points with |net| ≤ 20.
    * ``slope_per_minute``: least-squares slope of net pressure against event time, in
      net-pressure points per minute (0 with fewer than two distinct times). Informational;
      it does not decide ``trend``.
    """

    count: int
    avg_net_pressure: float
    min_net_pressure: float
    max_net_pressure: float
    avg_buy_pressure: float
    avg_sell_pressure: float
    trend: Interpretation
    trend_strength: float
    slope_per_minute: float
    first_time_ms: int
    last_time_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "avg_pressure": self.avg_net_pressure,
            "avg_net_pressure": self.avg_net_pressure,
            "min_net_pressure": self.min_net_pressure,
            "max_net_pressure": self.max_net_pressure,
            "avg_buy_pressure": self.avg_buy_pressure,
            "avg_sell_pressure": self.avg_sell_pressure,
            "trend": self.trend.value,
            "trend_strength": self.trend_strength,
            "slope_per_minute": self.slope_per_minute,
            "first_time_ms": self.first_time_ms,
            "last_time_ms": self.last_time_ms,
            "span_seconds": (self.last_time_ms - self.first_time_ms) / 1000.0,
        }


def trend_strength(trend: Interpretation, avg_net: float, nets: list[float]) -> float:
    """``(magnitude + consistency) / 2``; see :class:`PressureSummary` for the two terms."""
    if not nets:
        return 0.0
    if trend is Interpretation.BULLISH:
        magnitude = min(1.0, abs(avg_net) / 100.0)
        on_side = sum(1 for net in nets if net > 0.0)
    elif trend is Interpretation.BEARISH:
        magnitude = min(1.0, abs(avg_net) / 100.0)
        on_side = sum(1 for net in nets if net < 0.0)
    else:
        magnitude = max(0.0, 1.0 - abs(avg_net) / BULLISH_THRESHOLD)
        on_side = sum(1 for net in nets if abs(net) <= BULLISH_THRESHOLD)
    return (magnitude + on_side / len(nets)) / 2.0


def _slope_per_minute(times: list[int], nets: list[float]) -> float:
    n = len(times)
    if n < 2:
        return 0.0
    t0 = times[0]
    xs = [(t - t0) / 60_000.0 for t in times]
    mean_x = sum(xs) / n
    mean_y = sum(nets) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0.0:
        return 0.0
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, nets, strict=True))
    return sxy / sxx


def summarize(times: list[int], buys: list[float], sells: list[float]) -> PressureSummary:
    """The :class:`PressureSummary` of a non-empty, time-ordered series."""
    n = len(times)
    if n == 0:
        raise ValueError("cannot summarize an empty pressure series")
    nets = [b - s for b, s in zip(buys, sells, strict=True)]
    avg_net = sum(nets) / n
    trend = interpret(avg_net)
    return PressureSummary(
        count=n,
        avg_net_pressure=avg_net,
        min_net_pressure=min(nets),
        max_net_pressure=max(nets),
        avg_buy_pressure=sum(buys) / n,
        avg_sell_pressure=sum(sells) / n,
        trend=trend,
        trend_strength=trend_strength(trend, avg_net, nets),
        slope_per_minute=_slope_per_minute(times, nets),
        first_time_ms=times[0],
        last_time_ms=times[-1],
    )


def downsample(
    times: list[int], buys: list[float], sells: list[float], max_points: int
) -> tuple[PressurePoint, ...]:
    """At most ``max_points`` points: ``n`` points are cut into ``k = max_points`` consecutive
    buckets of (almost) equal count, ``[i·n//k, (i+1)·n//k)``; each becomes one point with the
    bucket's mean pressures stamped with its last event time (so the latest time survives).
    With ``n ≤ max_points`` the points are returned unchanged."""
    n = len(times)
    if n <= max_points:
        return tuple(
            PressurePoint(t, b, s, b - s) for t, b, s in zip(times, buys, sells, strict=True)
        )
    points = []
    for i in range(max_points):
        lo, hi = i * n // max_points, (i + 1) * n // max_points
        size = hi - lo
        buy = sum(buys[lo:hi]) / size
        sell = sum(sells[lo:hi]) / size
        points.append(PressurePoint(times[hi - 1], buy, sell, buy - sell))
    return tuple(points)


@dataclass(frozen=True, slots=True)
class PressureSeries:
    """The pressure history of one symbol over ``timeframe`` back from its latest event."""

    symbol: str
    timeframe: Timeframe
    window_start_ms: int
    window_end_ms: int
    summary: PressureSummary
    points: tuple[PressurePoint, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe.value,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "summary": self.summary.as_dict(),
            "points": [point.as_dict() for point in self.points],
        }


@dataclass(frozen=True, slots=True)
class SymbolPressure:
    symbol: str
    net_pressure: float

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "net_pressure": self.net_pressure}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SymbolPressure | None:
        """What :meth:`as_dict` gave (None stays None)."""
        if not data:
            return None
        return cls(str(data["symbol"]), float(data["net_pressure"]))


def _most_bullish(candidates: Iterable[SymbolPressure]) -> SymbolPressure | None:
    """The highest net pressure (ties → alphabetical first)."""
    return min(candidates, key=lambda p: (-p.net_pressure, p.symbol), default=None)


def _most_bearish(candidates: Iterable[SymbolPressure]) -> SymbolPressure | None:
    """The lowest net pressure (ties → alphabetical first)."""
    return min(candidates, key=lambda p: (p.net_pressure, p.symbol), default=None)


@dataclass(frozen=True, slots=True)
class MarketSummary:
    """Market sentiment across every tracked symbol's latest snapshot.

    ``avg_net_pressure`` is the unweighted mean of the symbols' net pressures (None with no
    symbols); ``sentiment`` is :func:`interpret` of it. ``most_bullish`` is the
    highest net pressure among the bullish symbols, ``most_bearish`` the lowest among the
    bearish ones (ties → alphabetical first); None when no symbol is on that side, so one
    symbol is never named both.
    """

    symbols: int
    bullish_symbols: int
    bearish_symbols: int
    neutral_symbols: int
    avg_net_pressure: float | None
    sentiment: Interpretation | None
    most_bullish: SymbolPressure | None
    most_bearish: SymbolPressure | None
    latest_event_time_ms: int | None

    @classmethod
    def of(cls, metrics: DepthMetrics) -> MarketSummary:
        """The summary of a market of one symbol."""
        side = metrics.interpretation
        extreme = SymbolPressure(metrics.symbol, metrics.net_pressure)
        return cls(
            symbols=1,
            bullish_symbols=int(side is Interpretation.BULLISH),
            bearish_symbols=int(side is Interpretation.BEARISH),
            neutral_symbols=int(side is Interpretation.NEUTRAL),
            avg_net_pressure=metrics.net_pressure,
            sentiment=side,
            most_bullish=extreme if side is Interpretation.BULLISH else None,
            most_bearish=extreme if side is Interpretation.BEARISH else None,
            latest_event_time_ms=metrics.event_time_ms,
        )

    @classmethod
    def combine(cls, parts: Iterable[MarketSummary]) -> MarketSummary:
        """The summary of the union of disjoint markets from theirs (each worker's, or each
        symbol's): counts add, the average is weighted by symbols, the extremes are the
        extremes of theirs, the latest event time the latest of theirs."""
        symbols = bullish = bearish = neutral = 0
        weighted = 0.0
        tops: list[SymbolPressure] = []
        bottoms: list[SymbolPressure] = []
        latest: list[int] = []
        for part in parts:
            symbols += part.symbols
            bullish += part.bullish_symbols
            bearish += part.bearish_symbols
            neutral += part.neutral_symbols
            if part.symbols and part.avg_net_pressure is not None:
                weighted += part.avg_net_pressure * part.symbols
            if part.most_bullish is not None:
                tops.append(part.most_bullish)
            if part.most_bearish is not None:
                bottoms.append(part.most_bearish)
            if part.latest_event_time_ms is not None:
                latest.append(part.latest_event_time_ms)
        avg = weighted / symbols if symbols else None
        return cls(
            symbols=symbols,
            bullish_symbols=bullish,
            bearish_symbols=bearish,
            neutral_symbols=neutral,
            avg_net_pressure=avg,
            sentiment=None if avg is None else interpret(avg),
            most_bullish=_most_bullish(tops),
            most_bearish=_most_bearish(bottoms),
            latest_event_time_ms=max(latest, default=None),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarketSummary:
        """What :meth:`as_dict` gave (e.g. another worker's answer)."""
        sentiment = data.get("market_sentiment") or {}
        avg = sentiment.get("avg_net_pressure")
        latest = data.get("latest_event_time_ms")
        return cls(
            symbols=int(data.get("symbols", 0)),
            bullish_symbols=int(sentiment.get("bullish_symbols", 0)),
            bearish_symbols=int(sentiment.get("bearish_symbols", 0)),
            neutral_symbols=int(sentiment.get("neutral_symbols", 0)),
            avg_net_pressure=None if avg is None else float(avg),
            sentiment=None if avg is None else interpret(float(avg)),
            most_bullish=SymbolPressure.from_dict(data.get("most_bullish")),
            most_bearish=SymbolPressure.from_dict(data.get("most_bearish")),
            latest_event_time_ms=None if latest is None else int(latest),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "market_sentiment": {
                "bullish_symbols": self.bullish_symbols,
                "bearish_symbols": self.bearish_symbols,
                "neutral_symbols": self.neutral_symbols,
                "avg_net_pressure": self.avg_net_pressure,
                "sentiment": self.sentiment.value if self.sentiment else None,
            },
            "symbols": self.symbols,
            "most_bullish": self.most_bullish.as_dict() if self.most_bullish else None,
            "most_bearish": self.most_bearish.as_dict() if self.most_bearish else None,
            "latest_event_time_ms": self.latest_event_time_ms,
        }


class SortField(StrEnum):
    """Fields :meth:`MarketMetricsBook.all` can sort by."""

    SYMBOL = "symbol"
    NET_PRESSURE = "net_pressure"
    SPREAD_BPS = "spread_bps"
    TOTAL_LIQUIDITY = "total_liquidity"
    TOTAL_LIQUIDITY_QUOTE = "total_liquidity_quote"
    IMBALANCE = "imbalance"

    def value_in(self, item: Mapping[str, Any]) -> Any:
        """The field's value in a :meth:`DepthMetrics.as_dict` item (None if absent)."""
        value: Any = item
        for key in _SORT_PATHS[self]:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


_SORT_PATHS = {
    SortField.SYMBOL: ("symbol",),
    SortField.NET_PRESSURE: ("pressure", "net_pressure"),
    SortField.SPREAD_BPS: ("spread", "spread_bps"),
    SortField.TOTAL_LIQUIDITY: ("liquidity", "total_liquidity"),
    SortField.TOTAL_LIQUIDITY_QUOTE: ("liquidity", "total_liquidity_quote"),
    SortField.IMBALANCE: ("imbalance", "imbalance"),
}


def in_page_order(
    items: Iterable[_Item],
    sort_by: SortField,
    descending: bool,
    symbol_of: Callable[[_Item], str],
    value_of: Callable[[_Item], Any],
) -> list[_Item]:
    """The order of :meth:`MarketMetricsBook.all`: by ``value_of`` (``descending`` flips it),
    ties by symbol ascending, ``None`` values always last; by symbol alone for
    :attr:`SortField.SYMBOL`."""
    ordered = sorted(items, key=symbol_of)
    if sort_by is SortField.SYMBOL:
        if descending:
            ordered.reverse()
        return ordered
    keyed = [(value_of(item), item) for item in ordered]
    present = [(value, item) for value, item in keyed if value is not None]
    # stable sort keeps the symbol order among equal values in both directions
    present.sort(key=lambda pair: -pair[0] if descending else pair[0])
    return [item for _, item in present] + [item for value, item in keyed if value is None]


@dataclass(frozen=True, slots=True)
class MetricsPage:
    """One page of :meth:`MarketMetricsBook.all`; ``total`` counts all matches."""

    total: int
    offset: int
    limit: int
    items: tuple[DepthMetrics, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "count": len(self.items),
            "items": [item.as_dict() for item in self.items],
        }


class _SymbolState:
    """Latest snapshot plus the pressure history as three parallel arrays.

    Live entries are ``[start:]``; trimming only advances ``start`` and the dead prefix is
    deleted once it is at least half the arrays (amortised O(1), 24 bytes per entry).
    """

    __slots__ = ("asks", "bids", "cached", "latest_time", "snapshot", "start", "times")

    def __init__(self, snapshot: DepthSnapshot) -> None:
        self.snapshot = snapshot
        self.latest_time = snapshot.event_time_ms
        self.times: array[int] = array("q")
        self.bids: array[float] = array("d")
        self.asks: array[float] = array("d")
        self.start = 0
        self.cached: DepthMetrics | None = None


class MarketMetricsBook:
    """Latest depth and a bounded pressure history per symbol; metrics computed on query.

    Bounds (all by event time or count, never wall time):

    * history per symbol: entries older than ``latest − history_seconds`` are dropped, and
      at most ``max_history`` entries are kept (default ``history_seconds · 20``);
    * symbols: at most ``max_symbols``; a new symbol beyond that evicts the least recently
      updated one (updated = an accepted, non-stale snapshot) and counts in
      ``evicted_symbols``.

    A snapshot older than its symbol's latest is ignored and counted in ``stale_events``; one
    with the same event time replaces the latest and is added to the history.
    """

    __slots__ = (
        "_horizon_ms",
        "_max_history",
        "_newest",
        "_states",
        "evicted_symbols",
        "history_seconds",
        "max_symbols",
        "stale_events",
    )

    def __init__(
        self,
        history_seconds: int = DEFAULT_HISTORY_SECONDS,
        max_symbols: int = DEFAULT_MAX_SYMBOLS,
        max_history: int | None = None,
    ) -> None:
        if history_seconds <= 0:
            raise ValueError(f"history_seconds must be > 0, got {history_seconds}")
        if max_symbols <= 0:
            raise ValueError(f"max_symbols must be > 0, got {max_symbols}")
        if max_history is None:
            max_history = history_seconds * HISTORY_POINTS_PER_SECOND
        if max_history <= 0:
            raise ValueError(f"max_history must be > 0, got {max_history}")
        self.history_seconds = history_seconds
        self.max_symbols = max_symbols
        self._max_history = max_history
        self._horizon_ms = history_seconds * 1000
        self._states: OrderedDict[str, _SymbolState] = OrderedDict()
        self._newest: str | None = None  # the last key of _states (the latest updated symbol)
        self.stale_events = 0
        self.evicted_symbols = 0

    # -- hot path ---------------------------------------------------------------------

    def on_depth(self, snapshot: DepthSnapshot) -> bool:
        """Record a snapshot; False if it was stale (older than the symbol's latest)."""
        symbol = snapshot.symbol
        t = snapshot.event_time_ms
        states = self._states
        state = states.get(symbol)
        if state is None:
            if len(states) >= self.max_symbols:
                states.popitem(last=False)
                self.evicted_symbols += 1
            state = states[symbol] = _SymbolState(snapshot)
            self._newest = symbol
        elif t < state.latest_time:
            self.stale_events += 1
            return False
        else:
            if symbol != self._newest:  # moving the last key to the end is a no-op
                states.move_to_end(symbol)
                self._newest = symbol
            state.snapshot = snapshot
            state.latest_time = t
            state.cached = None
        times = state.times
        times.append(t)
        state.bids.append(sum(map(_qty, snapshot.bids)))
        state.asks.append(sum(map(_qty, snapshot.asks)))
        start = state.start
        if times[start] < t - self._horizon_ms or len(times) - start > self._max_history:
            self._trim(state, t - self._horizon_ms)
        return True

    def _trim(self, state: _SymbolState, cutoff_ms: int) -> None:
        times = state.times
        start = max(bisect_left(times, cutoff_ms, state.start), len(times) - self._max_history)
        if start >= _COMPACT_MIN and 2 * start >= len(times):
            del times[:start]
            del state.bids[:start]
            del state.asks[:start]
            start = 0
        state.start = start

    # -- state snapshots ----------------------------------------------------------------

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]:
        """The latest snapshot and live pressure history of the symbols ``owns`` accepts, in
        update order (least recently updated first), as plain data."""
        symbols = []
        for symbol, state in self._states.items():
            if not owns(symbol):
                continue
            snapshot = state.snapshot
            start = state.start
            symbols.append(
                {
                    "symbol": symbol,
                    "event_time_ms": snapshot.event_time_ms,
                    "bids": [list(level) for level in snapshot.bids],
                    "asks": [list(level) for level in snapshot.asks],
                    "times": state.times[start:].tolist(),
                    "bid_volumes": state.bids[start:].tolist(),
                    "ask_volumes": state.asks[start:].tolist(),
                }
            )
        return {"symbols": symbols}

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols (the restored
        ones become the most recently updated, in their saved order; the symbol bound and
        this book's history bounds apply)."""
        where = "metrics"
        loaded: list[tuple[str, _SymbolState]] = []
        for symbol, saved in symbol_entries(state, where):
            time_ms = integer(saved.get("event_time_ms"), f"event time of {symbol!r}", where)
            snapshot = DepthSnapshot(
                symbol,
                time_ms,
                tuple(
                    (float(p), float(q))
                    for p, q in (row(x, 2, where) for x in items(saved, "bids", where))
                ),
                tuple(
                    (float(p), float(q))
                    for p, q in (row(x, 2, where) for x in items(saved, "asks", where))
                ),
            )
            entry = _SymbolState(snapshot)
            entry.times = array("q", (int(t) for t in items(saved, "times", where)))
            entry.bids = array("d", (float(v) for v in items(saved, "bid_volumes", where)))
            entry.asks = array("d", (float(v) for v in items(saved, "ask_volumes", where)))
            if not len(entry.times) == len(entry.bids) == len(entry.asks):
                raise ValueError(f"{where} state: history of {symbol!r} has uneven lengths")
            loaded.append((symbol, entry))
        states = self._states
        for symbol, entry in loaded:
            if symbol in states:
                del states[symbol]
            elif len(states) >= self.max_symbols:
                states.popitem(last=False)
                self.evicted_symbols += 1
            states[symbol] = entry
            self._newest = symbol
            if entry.times:
                self._trim(entry, entry.latest_time - self._horizon_ms)

    # -- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._states

    def symbols(self) -> list[str]:
        """Tracked symbols, sorted."""
        return sorted(self._states)

    def history_length(self, symbol: str) -> int:
        """Entries currently held in ``symbol``'s history (0 if unknown)."""
        state = self._states.get(symbol)
        return 0 if state is None else len(state.times) - state.start

    def depth(self, symbol: str) -> DepthMetrics | None:
        """Metrics of ``symbol``'s latest snapshot (computed once per snapshot), or None."""
        state = self._states.get(symbol)
        if state is None:
            return None
        return self._metrics(state)

    @staticmethod
    def _metrics(state: _SymbolState) -> DepthMetrics:
        cached = state.cached
        if cached is None:
            cached = state.cached = DepthMetrics.of(state.snapshot)
        return cached

    def pressure(
        self, symbol: str, timeframe: Timeframe, max_points: int = DEFAULT_MAX_POINTS
    ) -> PressureSeries | None:
        """History entries with ``t ≥ latest − timeframe`` (inclusive), or None if unknown.

        The window is anchored at the symbol's latest event time, not wall time. It is also
        limited by ``history_seconds``. Points are downsampled to ``max_points`` (see
        :func:`downsample`); the summary uses every entry in the window.
        """
        if max_points <= 0:
            raise ValueError(f"max_points must be > 0, got {max_points}")
        state = self._states.get(symbol)
        if state is None:
            return None
        times_arr = state.times
        end = state.latest_time
        window_start = end - timeframe.seconds * 1000
        lo = bisect_left(times_arr, window_start, state.start)
        times = times_arr[lo:].tolist()
        buys: list[float] = []
        sells: list[float] = []
        for bid, ask in zip(state.bids[lo:], state.asks[lo:], strict=True):
            buy, sell, _ = pressures(bid, ask)
            buys.append(buy)
            sells.append(sell)
        return PressureSeries(
            symbol=symbol,
            timeframe=timeframe,
            window_start_ms=window_start,
            window_end_ms=end,
            summary=summarize(times, buys, sells),
            points=downsample(times, buys, sells, max_points),
        )

    def summary(self) -> MarketSummary:
        """Sentiment across all symbols (see :class:`MarketSummary`)."""
        return MarketSummary.combine(
            MarketSummary.of(self._metrics(state)) for state in self._states.values()
        )

    def all(
        self,
        interpretation: Interpretation | None = None,
        min_liquidity: float | None = None,
        sort_by: SortField = SortField.SYMBOL,
        descending: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> MetricsPage:
        """A page of every symbol's :class:`DepthMetrics`.

        ``interpretation`` keeps only that interpretation; ``min_liquidity`` keeps symbols with
        ``total_liquidity_quote ≥ min_liquidity`` (quote units, so comparable across symbols).
        Sorted by ``sort_by`` (``descending`` flips it); ties are broken by symbol ascending
        and ``None`` values (e.g. ``spread_bps`` of a one-sided book) always sort last.
        ``total`` counts all matches before ``offset``/``limit``.
        """
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        items = [self._metrics(state) for state in self._states.values()]
        if interpretation is not None:
            items = [m for m in items if m.interpretation is interpretation]
        if min_liquidity is not None:
            items = [m for m in items if m.total_liquidity_quote >= min_liquidity]
        items = in_page_order(items, sort_by, descending, _symbol_of, attrgetter(sort_by.value))
        return MetricsPage(
            total=len(items),
            offset=offset,
            limit=limit,
            items=tuple(items[offset : offset + limit]),
        )
