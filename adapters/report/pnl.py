"""Trade P&L output: closed trades as JSON lines, P&L figures as Markdown tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from adapters.wire.signals import format_timestamp_ms
from domain.trade_model import ClosedTrade

PNL_COLUMNS = (
    "trades",
    "wins",
    "hit rate",
    "gross bps",
    "net bps",
    "mean net bps",
    "net USDT",
    "max DD bps",
    "exposure s",
    "exits (trades, net bps)",
)


def encode_trade(trade: ClosedTrade) -> bytes:
    """One closed trade as a JSON object (one line of ``trades.jsonl``)."""
    return orjson.dumps(
        {
            "signal_id": trade.signal_id,
            "strategy_id": trade.strategy_id,
            "symbol": trade.symbol,
            "config_version": trade.config_version,
            "action": trade.action.value,
            "signal_time": format_timestamp_ms(trade.signal_time_ms),
            "entry_time": format_timestamp_ms(trade.entry_time_ms),
            "entry_price": trade.entry_price,
            "exit_time": format_timestamp_ms(trade.exit_time_ms),
            "exit_price": trade.exit_price,
            "exit_reason": trade.exit_reason.value,
            "notional_usdt": trade.notional_usdt,
            "gross_bps": round(trade.gross_bps, 6),
            "net_bps": round(trade.net_bps, 6),
            "net_usdt": round(trade.net_usdt, 8),
            "exposure_seconds": trade.exposure_seconds,
        }
    )


def _num(value: Any, digits: int = 2, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pnl_row(label: str, figures: Mapping[str, Any]) -> str:
    """One Markdown table row of the P&L figures of a group (see ``PNL_COLUMNS``)."""
    hit_rate = figures["hit_rate"]
    exits = ", ".join(
        f"{reason} {part['trades']} ({part['net_pnl_bps']:+.1f})"
        for reason, part in figures["by_exit_reason"].items()
    )
    cells = [
        label,
        str(figures["trades"]),
        str(figures["wins"]),
        "–" if hit_rate is None else f"{hit_rate * 100:.1f} %",
        _num(figures["gross_pnl_bps"]),
        _num(figures["net_pnl_bps"]),
        _num(figures["mean_net_bps"]),
        _num(figures["net_pnl_usdt"], 4),
        _num(figures["max_drawdown_bps"], signed=False),
        _num(figures["exposure_seconds"], 1, signed=False),
        exits or "–",
    ]
    return "| " + " | ".join(cells) + " |"


def pnl_table(first_column: str, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    lines = [
        f"| {first_column} | " + " | ".join(PNL_COLUMNS) + " |",
        "|---" * (1 + len(PNL_COLUMNS)) + "|",
    ]
    lines.extend(pnl_row(label, figures) for label, figures in rows)
    return lines


def pnl_markdown(pnl: Mapping[str, Any]) -> list[str]:
    """The ``pnl`` section of a backtest report as Markdown lines (empty when absent)."""
    if not pnl:
        return []
    model = pnl["model"]
    positions = pnl["positions"]
    strategies: Mapping[str, Any] = pnl["strategies"]
    lines = [
        "## Trades and P&L after costs",
        "",
        f"Each signal opens a position of its `position_notional_usdt`, filled at "
        f"`{model['fill']}`, closed at its stop-loss, take-profit, an opposite signal of its "
        f"strategy or after {model['max_hold_seconds']:g} s; fees {model['fee_bps']:g} bps "
        f"per side, slippage {model['slippage_bps']:g} bps. Wins and hit rate are after costs.",
        f"Positions: {positions['opened']} opened, {positions['closed']} closed, "
        f"{positions['unfilled']} never filled, {positions['dropped']} dropped by the bound.",
        "",
        *pnl_table(
            "strategy",
            [*strategies.items(), ("**total**", pnl["total"])],
        ),
        "",
        "By symbol:",
        "",
        *pnl_table("symbol", pnl["by_symbol"].items()),
        "",
        "By strategy and symbol, then by strategy and config version:",
        "",
        *pnl_table(
            "strategy / symbol or version",
            [
                *(
                    (f"{strategy_id} / {symbol}", figures)
                    for strategy_id, row in strategies.items()
                    for symbol, figures in row["by_symbol"].items()
                ),
                *(
                    (f"{strategy_id} / v{version}", figures)
                    for strategy_id, row in strategies.items()
                    for version, figures in row["by_config_version"].items()
                ),
            ],
        ),
        "",
    ]
    return lines
