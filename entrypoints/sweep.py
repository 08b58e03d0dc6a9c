"""`realtime-strategies sweep FILE [FILE ...] --grid STRATEGY[@SYMBOL].PARAM=v1,v2,...`

Runs every combination of the grid on every file through the same backtest (``backtest``'s
replay, the same configuration use case: an invalid combination is reported, not run):

    --grid orderbook_skew.buy_threshold=1.2,1.5,2   (repeat for more axes)
    --set / --config                                 fixed overrides for every combination
    --jobs N                                         local process pool (default: all cores)
    --cluster tcp://host:8786                        an existing Dask distributed cluster
    --split K                                        walk-forward: rank on the first K files,
                                                     report the winners on the others
    --fill / --fee-bps / --slippage-bps / --max-hold-seconds   the trade model

Writes ``DIR/sweep.csv`` (one row per combination: parameter values and totals),
``DIR/sweep.md`` (ranked by net P&L) and ``DIR/heatmap.png`` when exactly two parameters vary.
The same inputs give the same ``sweep.csv`` locally and on a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from adapters.compute.process_pool import ProcessPoolTaskRunner, default_jobs
from adapters.report.sweep import plot_heatmap, sweep_csv, sweep_markdown
from application.ports import TaskRunner
from application.sweep import (
    Combination,
    GridAxis,
    Override,
    SweepTask,
    TaskResult,
    aggregate,
    expand_grid,
    sweep_tasks,
)
from domain.params import ParamValidationError
from entrypoints.backtest import (
    UsageError,
    add_trade_model_arguments,
    apply_overrides,
    new_config_admin,
    parse_config_file,
    parse_set,
    parse_symbols,
    replay,
    trade_model_settings,
)


def parse_grid(item: str) -> GridAxis:
    """``strategy[@SYMBOL].parameter=v1,v2,...``, each value typed by the schema."""
    target, sep, text = item.partition("=")
    values = [v.strip() for v in text.split(",")]
    if not sep or not all(values):
        raise UsageError(f"--grid {item!r}: expected STRATEGY[@SYMBOL].PARAM=v1,v2,...")
    parsed = [parse_set(f"{target}={value}") for value in values]
    strategy_id, symbol, name, _ = parsed[0]
    try:
        return GridAxis(strategy_id, symbol, name, tuple(p[3] for p in parsed))
    except ValueError as error:
        raise UsageError(f"--grid {item!r}: {error}") from None


def validate(overrides: Sequence[Override]) -> str | None:
    """None if the configuration use case accepts ``overrides``, else its error message."""
    try:
        asyncio.run(apply_overrides(new_config_admin(), overrides))
    except ParamValidationError as error:
        return str(error)
    return None


def run_task(task: SweepTask) -> TaskResult:
    """One backtest of a sweep (runs in a worker process or on a Dask worker)."""
    result, stats = replay(
        [Path(task.path)],
        task.overrides,
        task.model,
        symbols=task.symbols,
        home_venue=task.home_venue,
    )
    return TaskResult(
        combination=task.combination,
        file_index=task.file_index,
        events=result.events,
        signals=len(result.signals),
        skipped=sum(stats.skipped.values()),
        trades=tuple(result.trades),
    )


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("files", type=Path, nargs="+", help="captures (.jsonl[.gz]), in order")
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="STRATEGY[@SYMBOL].PARAM=v1,v2,...",
        help="values of one parameter (repeat for more parameters)",
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="STRATEGY[@SYMBOL].PARAM=VALUE"
    )
    parser.add_argument("--config", type=Path, default=None, help="JSON overrides file")
    parser.add_argument("--jobs", type=int, default=None, help="local processes (default: cores)")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS", help="Dask scheduler")
    parser.add_argument("--out", type=Path, default=Path("out/sweep"), help="output folder")
    parser.add_argument(
        "--split", type=int, default=None, metavar="K", help="rank on the first K files only"
    )
    parser.add_argument("--top", type=int, default=5, help="winners checked by --split")
    parser.add_argument("--symbols", default="*", help="comma-separated allow-list, * = all")
    parser.add_argument("--home-venue", default="binance")
    parser.add_argument("--no-plot", action="store_true", help="skip heatmap.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_trade_model_arguments(parser)
    return parser


def _runner(args: argparse.Namespace) -> TaskRunner:
    if args.cluster:
        from adapters.compute.dask_cluster import DaskTaskRunner

        return DaskTaskRunner(args.cluster)
    return ProcessPoolTaskRunner(args.jobs or default_jobs())


def _prepare(
    args: argparse.Namespace,
) -> tuple[list[GridAxis], list[Combination], list[SweepTask]]:
    files: list[Path] = args.files
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if args.split is not None and not 1 <= args.split < len(files):
        raise UsageError(f"--split must leave files on both sides (1..{len(files) - 1})")
    if args.top < 1:
        raise UsageError("--top must be >= 1")
    axes = [parse_grid(item) for item in args.grid]
    fixed = [parse_set(item) for item in args.sets]
    if args.config is not None:
        fixed = parse_config_file(args.config) + fixed
    model = trade_model_settings(args)
    try:
        combinations = expand_grid(axes, fixed, validate)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tasks = sweep_tasks(
        combinations,
        files,
        model,
        symbols=parse_symbols(args.symbols),
        home_venue=args.home_venue,
    )
    return axes, combinations, tasks


def main(args: argparse.Namespace) -> int:
    try:
        axes, combinations, tasks = _prepare(args)
    except UsageError as error:
        print(f"sweep: {error}", file=sys.stderr)
        return 2
    runner = _runner(args)
    jobs = args.jobs or default_jobs()
    where = f"Dask cluster {args.cluster}" if args.cluster else f"{jobs} local processes"
    valid = sum(1 for c in combinations if c.valid)
    print(
        f"sweep: {len(combinations)} combinations ({valid} valid) × {len(args.files)} files "
        f"= {len(tasks)} backtests on {where}",
        file=sys.stderr,
    )
    with tqdm(total=len(tasks), unit=" backtest", disable=args.no_progress, file=sys.stderr) as bar:

        def advance(_: TaskResult) -> None:
            bar.update(1)

        results = runner.map(run_task, tasks, advance)
    rows = aggregate(combinations, results, args.split)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    split = args.split is not None
    csv_path = out / "sweep.csv"
    csv_path.write_text(sweep_csv(rows, axes, split), encoding="utf-8")
    model = trade_model_settings(args).as_dict()
    markdown = sweep_markdown(rows, axes, args.files, model, args.split, args.top)
    md_path = out / "sweep.md"
    md_path.write_text(markdown, encoding="utf-8")
    written = [csv_path, md_path]
    if not args.no_plot:
        heatmap = plot_heatmap(rows, axes, out / "heatmap.png")
        if heatmap is not None:
            written.append(heatmap)
    print(markdown)
    for file in written:
        print(f"wrote {file}")
    return 0
