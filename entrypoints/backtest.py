"""`realtime-strategies backtest FILE` — replay a capture through the live processing path.

Parameter overrides go through the same configuration use case (validation, field-level
merge, versions, audit) and resolution policy as the admin API:

    --set ticker_velocity.buy_threshold=0.1            (global layer)
    --set orderbook_skew@BTCUSDT.buy_threshold=1.5     (symbol override)
    --config overrides.json   {"<strategy>": {"global": {...}, "symbols": {"SYM": {...}}}}

Each signal is also simulated as a trade (``domain.trade_model``): ``--fill next_trade|touch``,
``--max-hold-seconds`` (300), ``--fee-bps`` per side (10), ``--slippage-bps`` (0).

Outputs in ``--out``: ``signals.jsonl`` (the trade engine's JSON, one per line),
``trades.jsonl`` (one closed simulated trade per line), ``report.json`` and ``report.md``
(signals per strategy/action, forward returns at 1/10/60/300 s, hit rate, trade P&L after
costs per strategy, symbol and config version), ``plot.png`` (prices, signals, net equity
per strategy). Same input and overrides → byte-identical files.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from adapters.report.pnl import encode_trade, pnl_markdown
from adapters.wire.signals import encode_signal
from adapters.wire.stats import DecodeStats
from application.backtest import BacktestResult, build_report, run_backtest
from application.config_admin import ConfigAdmin
from application.sweep import Override
from domain.governance import GovernanceParams
from domain.params import ParamValidationError, ParamValue, parse_text
from domain.signal import JsonValue
from domain.strategies.registry import STRATEGY_PARAMS
from domain.trade_model import FillRule, TradeModelSettings
from entrypoints.backtest_container import BacktestParts
from entrypoints.lifecycle import settle_garbage_collector


class UsageError(Exception):
    """A bad command line or overrides file; printed without a traceback."""


def parse_set(item: str) -> Override:
    """``strategy[@SYMBOL].parameter=value`` typed by the strategy's schema (or
    ``governance.parameter=value``, a service-wide limit of the governance gate)."""
    target, sep, text = item.partition("=")
    strategy_part, dot, name = target.strip().rpartition(".")
    if not sep or not dot or not name:
        raise UsageError(f"--set {item!r}: expected strategy[@SYMBOL].parameter=value")
    strategy_id, _, symbol = strategy_part.partition("@")
    params_type = (
        GovernanceParams
        if strategy_id == GovernanceParams.strategy_id and not symbol
        else STRATEGY_PARAMS.get(strategy_id)
    )
    if params_type is None:
        raise UsageError(f"--set {item!r}: unknown strategy {strategy_id!r}")
    spec = params_type.spec(name)
    if spec is None:
        raise UsageError(f"--set {item!r}: {strategy_id} has no parameter {name!r}")
    try:
        value = parse_text(spec, text)
    except ParamValidationError as error:
        raise UsageError(f"--set {item!r}: {error}") from None
    return strategy_id, symbol.upper() or None, name, value


def parse_config_file(path: Path) -> list[Override]:
    """``{"<strategy>": {"global": {...}, "symbols": {"SYM": {...}}}}``; values keep JSON types."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise UsageError(f"--config {path}: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--config {path}: top level must be an object of strategies")
    overrides: list[Override] = []
    for strategy_id, layers in document.items():
        if not isinstance(layers, dict) or set(layers) - {"global", "symbols"}:
            raise UsageError(f"--config {path}: {strategy_id} must have only global/symbols")
        for name, value in (layers.get("global") or {}).items():
            overrides.append((strategy_id, None, name, value))
        for symbol, params in (layers.get("symbols") or {}).items():
            if not isinstance(params, dict):
                where = f"{strategy_id}.symbols.{symbol}"
                raise UsageError(f"--config {path}: {where} is not an object")
            overrides.extend((strategy_id, symbol.upper(), n, v) for n, v in params.items())
    return overrides


def governance_limits(overrides: Sequence[Override]) -> GovernanceParams:
    """The governance limits the ``governance.*`` overrides set (raises
    ``ParamValidationError``)."""
    return GovernanceParams.from_mapping(
        {name: value for sid, _, name, value in overrides if sid == GovernanceParams.strategy_id}
    )


async def apply_overrides(admin: ConfigAdmin, overrides: Sequence[Override]) -> None:
    """One write per (strategy, layer), validated and audited exactly like an API POST
    (each write goes live in the admin's cache at once); ``governance.*`` overrides are
    validated (:func:`governance_limits`), not written."""
    governance_limits(overrides)
    grouped: dict[tuple[str, str | None], dict[str, ParamValue | None]] = {}
    for strategy_id, symbol, name, value in overrides:
        if strategy_id == GovernanceParams.strategy_id:
            continue
        grouped.setdefault((strategy_id, symbol), {})[name] = value
    for (strategy_id, symbol), patch in grouped.items():
        await admin.set_config(
            strategy_id, symbol, patch, changed_by="backtest", reason="backtest override"
        )


def write_outputs(
    result: BacktestResult,
    report: dict[str, JsonValue],
    out: Path,
    source: str,
    title: str,
    plot: bool,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    signals_path = out / "signals.jsonl"
    with signals_path.open("wb") as handle:
        for signal in result.signals:
            handle.write(encode_signal(signal, source))
            handle.write(b"\n")
    report_path = out / "report.json"
    report_path.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    trades_path = out / "trades.jsonl"
    with trades_path.open("wb") as handle:
        for trade in result.trades:
            handle.write(encode_trade(trade))
            handle.write(b"\n")
    markdown_path = out / "report.md"
    markdown_path.write_text(render_markdown(report, title), encoding="utf-8")
    written = [signals_path, trades_path, report_path, markdown_path]
    if plot:
        # matplotlib is imported only when a plot is drawn (the service never pays for it).
        from adapters.report.plot import plot_backtest

        written.append(
            plot_backtest(
                result.series_by_symbol, result.signals, out / "plot.png", title, result.trades
            )
        )
    return written


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _bps(value: Any) -> str:
    return "–" if value is None else f"{value:+.2f}"


def render_markdown(report: dict[str, Any], title: str) -> str:
    horizons = [f"{h}s" for h in report["horizons_seconds"]]
    lines = [
        f"# Backtest: {title}",
        "",
        f"- events: {report['events']} ({report['duration_seconds']} s of event time)",
        f"- events by type: {report['events_by_type']}",
        f"- skipped input: {report.get('skipped', {})}",
        f"- signals: {report['signals']}",
        f"- suppressed signals by reason: {report.get('suppressed', {})}",
        "",
        "| strategy | signals | buy | sell | "
        + " | ".join(f"hit rate {h} (n)" for h in horizons)
        + " | "
        + " | ".join(f"mean {h} (bps)" for h in horizons)
        + " |",
        "|---" * (4 + 2 * len(horizons)) + "|",
    ]
    for strategy_id, row in report["strategies"].items():
        fr = row["forward_returns"]
        lines.append(
            f"| {strategy_id} | {row['signals']} | {row['buy']} | {row['sell']} | "
            + " | ".join(f"{_pct(fr[h]['hit_rate'])} ({fr[h]['evaluated']})" for h in horizons)
            + " | "
            + " | ".join(_bps(fr[h]["mean_return_bps"]) for h in horizons)
            + " |"
        )
    lines += [
        "",
        "Forward return: signed move of the last trade price from the signal's event time to "
        "event time + horizon (positive = the market moved the signal's way). Horizons that "
        "reach past the end of the capture are not evaluated.",
        "",
        *pnl_markdown(report.get("pnl") or {}),
    ]
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "files",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="captures (.jsonl[.gz], producer or recording format) or recording folders, "
        "replayed in order as one stream",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default out/<name>)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="STRATEGY[@SYMBOL].PARAM=VALUE"
    )
    parser.add_argument("--config", type=Path, default=None, help="JSON overrides file")
    parser.add_argument("--symbols", default="*", help="comma-separated allow-list, * = all")
    parser.add_argument("--no-plot", action="store_true", help="skip plot.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--home-venue", default="binance")
    add_trade_model_arguments(parser)
    return parser


def add_trade_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The trade model's options (shared by ``backtest`` and ``sweep``)."""
    defaults = TradeModelSettings()
    group = parser.add_argument_group("trade model (P&L after costs)")
    group.add_argument(
        "--fill",
        choices=[rule.value for rule in FillRule],
        default=defaults.fill.value,
        help="entry at the next trade after the signal, or at once at the touch",
    )
    group.add_argument("--fee-bps", type=float, default=defaults.fee_bps, help="fee per side")
    group.add_argument(
        "--slippage-bps", type=float, default=defaults.slippage_bps, help="per fill, adverse"
    )
    group.add_argument(
        "--max-hold-seconds",
        type=float,
        default=defaults.max_hold_seconds,
        help="close a position after this long (event time)",
    )


def trade_model_settings(args: argparse.Namespace) -> TradeModelSettings:
    try:
        return TradeModelSettings(
            fill=FillRule(args.fill),
            fee_bps=args.fee_bps,
            slippage_bps=args.slippage_bps,
            max_hold_seconds=args.max_hold_seconds,
        )
    except ValueError as error:
        raise UsageError(f"trade model: {error}") from None


def new_config_admin() -> ConfigAdmin:
    """The backtest's configuration use cases: in memory, audit stamped with a fixed time."""
    config_admin: ConfigAdmin = BacktestParts().config_admin()
    return config_admin


def parse_symbols(text: str) -> frozenset[str] | None:
    """``*`` → None (every symbol), else the comma-separated allow-list."""
    if text.strip() == "*":
        return None
    return frozenset(s.strip().upper() for s in text.split(",") if s.strip())


def capture_files(paths: Sequence[Path]) -> list[Path]:
    """The files to replay, in order: a folder stands for its ``*.jsonl[.gz]`` files sorted by
    name (a recording's rotation order). Raises :class:`UsageError` for a missing path."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted({*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")})
            if not found:
                raise UsageError(f"no .jsonl or .jsonl.gz file in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"no such file: {path}")
    return files


def replay(
    files: Sequence[Path],
    overrides: Sequence[Override],
    model: TradeModelSettings,
    *,
    symbols: frozenset[str] | None = None,
    home_venue: str = "binance",
    on_progress: Callable[[int], None] | None = None,
) -> tuple[BacktestResult, DecodeStats]:
    """Apply ``overrides`` through the config use case (raises ``ParamValidationError``),
    then replay ``files`` one after the other as one stream (either capture format) through
    the strategies and the trade model."""
    parts = BacktestParts(
        symbols=symbols,
        home_venue=home_venue,
        trade_model=model,
        governance_limits=governance_limits(overrides),
    )
    asyncio.run(apply_overrides(parts.config_admin(), overrides))
    events = itertools.chain.from_iterable(parts.feed(path).iter_events() for path in files)
    result = run_backtest(
        events, parts.engine(), on_progress=on_progress, simulator=parts.simulator()
    )
    return result, parts.decode_stats()


def main(args: argparse.Namespace) -> int:
    try:
        files = capture_files(args.files)
        overrides = [parse_set(item) for item in args.sets]
        if args.config is not None:
            overrides = parse_config_file(args.config) + overrides
        model = trade_model_settings(args)
    except UsageError as error:
        print(f"backtest: {error}", file=sys.stderr)
        return 2
    first: Path = args.files[0]
    name = first.name.removesuffix(".gz").removesuffix(".jsonl")
    out: Path = args.out or Path("out") / name
    settle_garbage_collector()
    with tqdm(
        unit=" msg", desc=name, disable=args.no_progress, file=sys.stderr, mininterval=0.5
    ) as bar:

        def advance(count: int) -> None:
            bar.update(count)

        try:
            result, stats = replay(
                files,
                overrides,
                model,
                symbols=parse_symbols(args.symbols),
                home_venue=args.home_venue,
                on_progress=advance,
            )
        except ParamValidationError as error:
            print(f"backtest: invalid override: {error}", file=sys.stderr)
            return 2
    report = build_report(result)
    report["skipped"] = dict(sorted(stats.skipped.items()))
    report["overrides"] = [
        {"strategy": s, "symbol": sym, "parameter": n, "value": v} for s, sym, n, v in overrides
    ]
    if len(files) > 1:
        report["files"] = [str(path) for path in files]
    written = write_outputs(result, report, out, "realtime-strategies", name, not args.no_plot)
    print(render_markdown(report, name))
    for file in written:
        print(f"wrote {file}")
    return 0
