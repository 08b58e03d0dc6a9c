"""Use case: replay recorded market events through the live processing path and evaluate.

The backtest uses the very :class:`~application.processing.MarketEventProcessor` the
service runs, with the same config resolution; only the adapters differ (a replay feed,
an in-memory store, event time as the only clock). Its output is a pure function of the
input file and the configuration, so re-runs are byte-identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from application.processing import MarketEventProcessor
from domain.evaluation import (
    DEFAULT_HORIZONS_S,
    HorizonStats,
    PriceSeries,
    SignalOutcome,
    forward_returns,
    horizon_stats,
)
from domain.market import MarketEvent, event_symbol
from domain.signal import JsonValue, Signal


@dataclass(slots=True)
class BacktestResult:
    signals: list[Signal]
    outcomes: list[SignalOutcome]
    series_by_symbol: dict[str, PriceSeries]
    events: int
    first_event_ms: int | None
    last_event_ms: int | None
    horizons_s: tuple[int, ...]
    events_by_type: Counter[str] = field(default_factory=Counter)


def run_backtest(
    events: Iterable[MarketEvent],
    processor: MarketEventProcessor,
    horizons_s: Sequence[int] = DEFAULT_HORIZONS_S,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 1000,
) -> BacktestResult:
    """Process every event in order; collect signals and the reference price series."""
    signals: list[Signal] = []
    series: dict[str, PriceSeries] = {}
    count = 0
    first: int | None = None
    last: int | None = None
    handle = processor.handle
    for event in events:
        count += 1
        time_ms = event.event_time_ms
        if first is None:
            first = time_ms
        last = time_ms if last is None or time_ms > last else last
        symbol = event_symbol(event)
        if symbol is not None:
            symbol_series = series.get(symbol)
            if symbol_series is None:
                symbol_series = series[symbol] = PriceSeries()
            symbol_series.observe(event)
        emitted = handle(event)
        if emitted:
            signals.extend(emitted)
        if on_progress is not None and count % progress_every == 0:
            on_progress(progress_every)
    if on_progress is not None:
        on_progress(count % progress_every)
    outcomes = forward_returns(signals, series, horizons_s)
    return BacktestResult(
        signals=signals,
        outcomes=outcomes,
        series_by_symbol=series,
        events=count,
        first_event_ms=first,
        last_event_ms=last,
        horizons_s=tuple(horizons_s),
        events_by_type=Counter(processor.stats.events_by_type),
    )


def _horizon_dict(stats: Sequence[HorizonStats]) -> dict[str, JsonValue]:
    return {
        f"{s.horizon_s}s": {
            "evaluated": s.evaluated,
            "hits": s.hits,
            "hit_rate": None if s.hit_rate is None else round(s.hit_rate, 6),
            "mean_return_bps": None if s.mean_return is None else round(s.mean_return * 1e4, 4),
        }
        for s in stats
    }


def build_report(result: BacktestResult) -> dict[str, JsonValue]:
    """Signals per strategy/action, forward returns and hit rate per horizon (JSON-ready)."""
    by_strategy: dict[str, list[SignalOutcome]] = {}
    for outcome in result.outcomes:
        by_strategy.setdefault(outcome.signal.strategy_id, []).append(outcome)
    counts: Counter[tuple[str, str]] = Counter(
        (s.strategy_id, s.action.value) for s in result.signals
    )
    strategies: dict[str, JsonValue] = {}
    for strategy_id in sorted(by_strategy):
        outcomes = by_strategy[strategy_id]
        strategies[strategy_id] = {
            "signals": len(outcomes),
            "buy": counts[(strategy_id, "buy")],
            "sell": counts[(strategy_id, "sell")],
            "forward_returns": _horizon_dict(horizon_stats(outcomes, result.horizons_s)),
        }
    duration = (
        (result.last_event_ms - result.first_event_ms) / 1000.0
        if result.first_event_ms is not None and result.last_event_ms is not None
        else 0.0
    )
    symbols: list[JsonValue] = []
    symbols.extend(sorted(result.series_by_symbol))
    horizons: list[JsonValue] = []
    horizons.extend(result.horizons_s)
    return {
        "events": result.events,
        "events_by_type": dict(sorted(result.events_by_type.items())),
        "first_event_ms": result.first_event_ms,
        "last_event_ms": result.last_event_ms,
        "duration_seconds": round(duration, 3),
        "symbols": symbols,
        "signals": len(result.signals),
        "horizons_seconds": horizons,
        "overall": {
            "forward_returns": _horizon_dict(horizon_stats(result.outcomes, result.horizons_s))
        },
        "strategies": strategies,
    }
