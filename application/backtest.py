"""Use case: replay recorded market events through the live processing path and evaluate.

The backtest runs the very walk the service runs (:meth:`domain.engine.SignalEngine.process`),
with the same config resolution; only the adapters differ (a replay feed, an in-memory store,
event time as the only clock). Its output is a pure function of the input file and the
configuration, so re-runs are byte-identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.engine import SignalEngine
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
from domain.trade_model import ClosedTrade, PnlSummary, PnlTally, TradeSimulator


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
    trades: list[ClosedTrade] = field(default_factory=list)
    """Closed simulated trades, in the order they closed (empty without a simulator)."""
    simulator: TradeSimulator | None = None
    suppressed: dict[str, int] = field(default_factory=dict)
    """Signals the governance gate (or a strategy's hysteresis) held back, per reason."""


def run_backtest(
    events: Iterable[MarketEvent],
    engine: SignalEngine,
    horizons_s: Sequence[int] = DEFAULT_HORIZONS_S,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 1000,
    simulator: TradeSimulator | None = None,
) -> BacktestResult:
    """Process every event in order; collect signals and the reference price series.

    With a ``simulator``, each event goes to it before the strategies see it and each signal
    right after it is emitted: the same order live scoring uses. Positions still open at the
    end are closed by :meth:`TradeSimulator.finish`.
    """
    signals: list[Signal] = []
    trades: list[ClosedTrade] = []
    on_event = simulator.on_event if simulator is not None else None
    on_signal = simulator.on_signal if simulator is not None else None
    series: dict[str, PriceSeries] = {}
    count = 0
    first: int | None = None
    last: int | None = None
    process = engine.process
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
        if on_event is not None:
            closed = on_event(event)
            if closed:
                trades.extend(closed)
        emitted = process(event)
        if emitted:
            signals.extend(emitted)
            if on_signal is not None:
                for signal in emitted:
                    trades.extend(on_signal(signal))
        if on_progress is not None and count % progress_every == 0:
            on_progress(progress_every)
    if on_progress is not None:
        on_progress(count % progress_every)
    if simulator is not None:
        trades.extend(simulator.finish())
    outcomes = forward_returns(signals, series, horizons_s)
    return BacktestResult(
        signals=signals,
        outcomes=outcomes,
        series_by_symbol=series,
        events=count,
        first_event_ms=first,
        last_event_ms=last,
        horizons_s=tuple(horizons_s),
        events_by_type=Counter(engine.stats.events_by_type),
        trades=trades,
        simulator=simulator,
        suppressed=engine.stats.suppressed(),
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


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def pnl_dict(summary: PnlSummary) -> dict[str, JsonValue]:
    """The P&L figures of a group of trades (SPEC §9b), JSON-ready."""
    return {
        "trades": summary.trades,
        "wins": summary.wins,
        "hit_rate": _round(summary.hit_rate, 6),
        "gross_pnl_bps": round(summary.gross_pnl_bps, 4),
        "net_pnl_bps": round(summary.net_pnl_bps, 4),
        "mean_net_bps": _round(summary.mean_net_bps, 4),
        "net_pnl_usdt": round(summary.net_pnl_usdt, 6),
        "max_drawdown_bps": round(summary.max_drawdown_bps, 4),
        "exposure_seconds": round(summary.exposure_seconds, 3),
        "by_exit_reason": {
            reason.value: {"trades": part.trades, "net_pnl_bps": round(part.net_pnl_bps, 4)}
            for reason, part in summary.by_exit_reason.items()
        },
    }


def _grouped(trades: Sequence[ClosedTrade], key: Callable[[ClosedTrade], str]) -> dict[str, Any]:
    tallies: dict[str, PnlTally] = {}
    for trade in trades:
        name = key(trade)
        tally = tallies.get(name)
        if tally is None:
            tally = tallies[name] = PnlTally()
        tally.add(trade)
    return {name: pnl_dict(tallies[name].summary()) for name in sorted(tallies)}


def pnl_report(result: BacktestResult) -> dict[str, JsonValue]:
    """Trade P&L after costs in total, per strategy, per symbol and per config version."""
    simulator = result.simulator
    if simulator is None:
        return {}
    trades = result.trades
    strategies: dict[str, JsonValue] = {}
    for strategy_id in sorted({t.strategy_id for t in trades}):
        own = [t for t in trades if t.strategy_id == strategy_id]
        row = pnl_dict(PnlTally().extend(own).summary())
        row["by_symbol"] = _grouped(own, lambda t: t.symbol)
        row["by_config_version"] = _grouped(own, lambda t: str(t.config_version))
        strategies[strategy_id] = row
    return {
        "model": dict(simulator.settings.as_dict()),
        "positions": {
            "opened": simulator.opened,
            "closed": len(trades),
            "unfilled": simulator.unfilled,
            "dropped": simulator.dropped,
        },
        "total": pnl_dict(PnlTally().extend(trades).summary()),
        "by_symbol": _grouped(trades, lambda t: t.symbol),
        "strategies": strategies,
    }


def build_report(result: BacktestResult) -> dict[str, JsonValue]:
    """Signals per strategy/action, forward returns and hit rate per horizon, and the trade
    P&L after costs when the backtest ran a simulator (JSON-ready)."""
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
    pnl = pnl_report(result)
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
        "suppressed": dict(sorted(result.suppressed.items())),
        "horizons_seconds": horizons,
        "overall": {
            "forward_returns": _horizon_dict(horizon_stats(result.outcomes, result.horizons_s))
        },
        "strategies": strategies,
        "pnl": pnl,
    }
