"""Backtest plot: prices with signals per symbol, net equity per strategy (matplotlib,
headless, deterministic PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.figure import Figure

from domain.evaluation import PriceSeries
from domain.signal import Action, Signal
from domain.trade_model import ClosedTrade

_MARKERS = ("o", "s", "D", "v", "P", "X")


def _times(ms: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000.0, tz=UTC) for t in ms]


def plot_backtest(
    series_by_symbol: dict[str, PriceSeries],
    signals: Sequence[Signal],
    path: Path,
    title: str,
    trades: Sequence[ClosedTrade] = (),
) -> Path:
    """One panel per symbol (at most 6): reference price, buys (green ▲) and sells (red ▼)
    per strategy; with ``trades``, a last panel with each strategy's cumulative net P&L
    (bps, after costs) by exit time. PNG metadata is fixed so the same input gives the same
    bytes."""
    symbols = sorted(s for s in series_by_symbol if series_by_symbol[s].end_ms is not None)[:6]
    if not symbols:
        symbols = sorted({s.symbol for s in signals})[:1]
    panels = max(1, len(symbols)) + (1 if trades else 0)
    # The object API (no pyplot): no global backend state, safe inside a server process.
    figure = Figure(figsize=(14, 4 * panels))
    axes = figure.subplots(panels, 1, squeeze=False)
    strategies = sorted({s.strategy_id for s in signals})
    for row, symbol in enumerate(symbols):
        ax = axes[row][0]
        series = series_by_symbol.get(symbol)
        if series is not None:
            times, prices = series.points()
            ax.plot(_times(times), prices, color="#555555", linewidth=0.8, label=f"{symbol} price")
        for index, strategy_id in enumerate(strategies):
            marker = _MARKERS[index % len(_MARKERS)]
            for action, color in ((Action.BUY, "#1a9850"), (Action.SELL, "#d73027")):
                chosen = [
                    s
                    for s in signals
                    if s.symbol == symbol and s.strategy_id == strategy_id and s.action is action
                ]
                if not chosen:
                    continue
                ax.scatter(
                    _times([s.event_time_ms for s in chosen]),
                    [s.price for s in chosen],
                    marker=marker,
                    s=28,
                    color=color,
                    edgecolors="black",
                    linewidths=0.3,
                    label=f"{strategy_id} {action.value} ({len(chosen)})",
                    zorder=3,
                )
        _finish_panel(ax, f"{title} — {symbol}", "price")
    if trades:
        _plot_equity(axes[-1][0], trades, title)
    axes[-1][0].set_xlabel("event time (UTC)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    return path


def _plot_equity(ax: Any, trades: Sequence[ClosedTrade], title: str) -> None:
    """Cumulative net bps per strategy, a step at each trade's exit time."""
    for strategy_id in sorted({t.strategy_id for t in trades}):
        own = sorted(
            (t for t in trades if t.strategy_id == strategy_id),
            key=lambda t: (t.exit_time_ms, t.signal_id),
        )
        total = 0.0
        curve = [0.0]
        for trade in own:
            total += trade.net_bps
            curve.append(total)
        times = _times([own[0].entry_time_ms] + [t.exit_time_ms for t in own])
        ax.step(times, curve, where="post", linewidth=1.2, label=f"{strategy_id} ({total:+.1f})")
    ax.axhline(0.0, color="#999999", linewidth=0.6)
    _finish_panel(
        ax,
        f"{title} — net equity per strategy (bps, after fees and slippage)",
        "cumulative net bps",
    )


def _finish_panel(ax: Any, title: str, ylabel: str) -> None:
    """Title, label, time axis, grid and the legend outside on the right."""
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    formatter = mdates.DateFormatter("%H:%M:%S", tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
