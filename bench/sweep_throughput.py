"""Sweep throughput: backtests (combinations × files) per minute, local pool with N jobs.

    .venv/bin/python bench/sweep_throughput.py [--grid 3x3] [--jobs 1 2] [--repeat 2]

Runs the sweep use case exactly as ``realtime-strategies sweep`` does (configuration use case
for every combination, ``ProcessPoolTaskRunner``, every backtest with the trade model) on the
bundled capture, without writing outputs. The pool's start-up (spawned interpreters importing
the package) is included: it is what a user waits for. Reports, per job count, the best
wall-clock rate of ``--repeat`` runs, its ratio to one job, and the machine's load, since the
build machines are shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from adapters.compute.process_pool import ProcessPoolTaskRunner
from application.sweep import aggregate, expand_grid, sweep_tasks
from domain.trade_model import TradeModelSettings
from entrypoints.sweep import parse_grid, run_task, validate

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench.common import git_commit  # noqa: E402

CAPTURE = REPO.parent / "shared/data/binance-spot-btcusdt-2024-08-08.jsonl.gz"
GRIDS = {
    "3x3": [
        "orderbook_skew.buy_threshold=1.2,1.5,2.0",
        "orderbook_skew.top_levels=3,5,10",
    ],
    "4x4": [
        "orderbook_skew.buy_threshold=1.2,1.5,2.0,2.5",
        "trade_momentum.buy_threshold=0.6,0.7,0.8,0.9",
    ],
}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(grid: list[str], jobs: int, files: list[Path]) -> tuple[float, int, float]:
    """(wall seconds, backtests, CPU seconds) of one sweep."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    combinations = expand_grid([parse_grid(g) for g in grid], [], validate)
    tasks = sweep_tasks(combinations, files, TradeModelSettings())
    results = ProcessPoolTaskRunner(jobs).map(run_task, tasks, None)
    aggregate(combinations, results)
    return time.perf_counter() - started, len(tasks), _cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="3x3")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--files", type=int, default=1, help="copies of the capture per sweep")
    args = parser.parse_args()
    files = [CAPTURE] * args.files
    print(f"commit {git_commit()}, {os.cpu_count()} CPUs, grid {args.grid} × {len(files)} file(s)")
    baseline: float | None = None
    for jobs in args.jobs:
        runs = []
        for _ in range(args.repeat):
            load_before = os.getloadavg()[0]
            seconds, backtests, cpu = measure(GRIDS[args.grid], jobs, files)
            runs.append((seconds, backtests, cpu, load_before))
        seconds, backtests, cpu, load = min(runs)
        per_minute = backtests / seconds * 60.0
        baseline = baseline or per_minute
        print(
            f"jobs {jobs}: {backtests} backtests in {seconds:.1f} s (best of {args.repeat}) = "
            f"{per_minute:.1f} combinations/min per file, ×{per_minute / baseline:.2f} vs "
            f"{args.jobs[0]} job(s); {cpu / backtests:.2f} CPU s per backtest; "
            f"load average before {load:.2f}"
        )


if __name__ == "__main__":
    main()
