"""Price-with-signals plot of a backtest (matplotlib, headless, deterministic PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.dates as mdates
from matplotlib.figure import Figure

from domain.evaluation import PriceSeries
from domain.signal import Action, Signal

_MARKERS = ("o", "s", "D", "v", "P", "X")


def _times(ms: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000.0, tz=UTC) for t in ms]


def plot_backtest(
    series_by_symbol: dict[str, PriceSeries],
    signals: Sequence[Signal],
    path: Path,
    title: str,
) -> Path:
    """One panel per symbol (at most 6): reference price, buys (green ▲) and sells (red ▼)
    per strategy. PNG metadata is fixed so the same input gives the same bytes."""
    symbols = sorted(s for s in series_by_symbol if series_by_symbol[s].end_ms is not None)[:6]
    if not symbols:
        symbols = sorted({s.symbol for s in signals})[:1]
    # The object API (no pyplot): no global backend state, safe inside a server process.
    figure = Figure(figsize=(14, 4 * max(1, len(symbols))))
    axes = figure.subplots(max(1, len(symbols)), 1, squeeze=False)
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
        ax.set_title(f"{title} — {symbol}")
        ax.set_ylabel("price")
        formatter = mdates.DateFormatter("%H:%M:%S", tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    axes[-1][0].set_xlabel("event time (UTC)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    return path
