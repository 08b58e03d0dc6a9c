"""`realtime-strategies sweep`: grid expansion, validation, aggregation, outputs, walk-forward."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from adapters.compute.process_pool import ProcessPoolTaskRunner
from adapters.memory.task_runner import InProcessTaskRunner
from application.ports import TaskRunner
from application.sweep import GridAxis, aggregate, expand_grid, ranked, sweep_tasks
from domain.trade_model import TradeModelSettings
from entrypoints.cli import main
from entrypoints.sweep import parse_grid, run_task, validate
from tests.contract.task_runner_contract import TaskRunnerContract
from tests.unit.test_backtest_pnl import CAPTURE as HAND_MADE
from tests.unit.test_backtest_pnl import ONE_SIGNAL_PER_BOOK

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "hand-made.jsonl"
    path.write_bytes(b"\n".join(HAND_MADE) + b"\n")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# --- the task runners ----------------------------------------------------------------------------


class TestInProcessTaskRunner(TaskRunnerContract):
    @pytest.fixture
    def runner(self) -> TaskRunner:
        return InProcessTaskRunner()


class TestProcessPoolTaskRunner(TaskRunnerContract):
    @pytest.fixture
    def runner(self) -> TaskRunner:
        return ProcessPoolTaskRunner(jobs=2)


def test_process_pool_rejects_zero_jobs() -> None:
    with pytest.raises(ValueError, match="jobs"):
        ProcessPoolTaskRunner(jobs=0)


# --- grid ----------------------------------------------------------------------------------------


def test_grid_expands_in_order_and_reports_invalid_combinations() -> None:
    buy = parse_grid("orderbook_skew.buy_threshold=1.0,1.5")
    sell = parse_grid("orderbook_skew.sell_threshold=0.8,1.0,0.3")
    assert buy == GridAxis("orderbook_skew", None, "buy_threshold", (1.0, 1.5))
    fixed = [("orderbook_skew", "BTCUSDT", "top_levels", 10)]
    combinations = expand_grid([buy, sell], fixed, validate)
    assert [c.values for c in combinations] == [
        (1.0, 0.8),
        (1.0, 1.0),
        (1.0, 0.3),
        (1.5, 0.8),
        (1.5, 1.0),
        (1.5, 0.3),
    ]
    assert combinations[1].overrides == (
        ("orderbook_skew", "BTCUSDT", "top_levels", 10),
        ("orderbook_skew", None, "buy_threshold", 1.0),
        ("orderbook_skew", None, "sell_threshold", 1.0),
    )
    # The config use case's cross-field rule: sell_threshold must be below buy_threshold.
    invalid = [c for c in combinations if not c.valid]
    assert [c.values for c in invalid] == [(1.0, 1.0)]
    assert "sell_threshold" in (invalid[0].error or "")


def test_out_of_range_values_are_invalid_not_errors() -> None:
    axis = parse_grid("orderbook_skew.top_levels=5,99")
    valid, out_of_range = expand_grid([axis], [], validate)
    assert valid.valid
    assert not out_of_range.valid
    assert "top_levels" in (out_of_range.error or "")


@pytest.mark.parametrize(
    "bad",
    [
        "orderbook_skew.buy_threshold",
        "orderbook_skew.buy_threshold=",
        "orderbook_skew.buy_threshold=1.2,,1.3",
        "orderbook_skew.buy_threshold=1.2,1.2",
        "orderbook_skew.buy_threshold=fast",
        "nope.x=1",
    ],
)
def test_bad_grid_arguments_exit_2(tmp_path: Path, capture: Path, bad: str) -> None:
    out = tmp_path / "out"
    assert main(["sweep", str(capture), "--grid", bad, "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()


def test_same_parameter_twice_and_bad_split_exit_2(tmp_path: Path, capture: Path) -> None:
    grid = "orderbook_skew.buy_threshold=1.2,1.3"
    base = ["sweep", str(capture), "--out", str(tmp_path), "--no-progress"]
    assert main([*base, "--grid", grid, "--grid", grid]) == 2
    assert main([*base, "--grid", grid, "--split", "1"]) == 2  # nothing left to hold out
    assert main([*base, "--grid", grid, "--jobs", "0"]) == 2
    assert main(["sweep", str(tmp_path / "missing.jsonl"), "--grid", grid]) == 2


# --- runs ----------------------------------------------------------------------------------------


def test_sweep_cli_writes_csv_markdown_and_heatmap(tmp_path: Path, capture: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            str(capture),
            "--grid",
            "orderbook_skew.take_profit_percent=1.5,3.0",
            "--grid",
            "orderbook_skew.stop_loss_percent=1.0,2.0",
            "--grid",
            "orderbook_skew.top_levels=5,99",
            *ONE_SIGNAL_PER_BOOK,
            "--max-hold-seconds",
            "900",
            "--jobs",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 8
    assert [r["combination"] for r in rows] == [str(i) for i in range(8)]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4  # top_levels=99 is out of range: reported, not run
    assert all(r["trades"] == "" and "top_levels" in r["error"] for r in rows if r not in ok)
    # The reference combination (1.5 %, 1.0 %) is the hand-made capture's backtest: 5 trades.
    reference = next(
        r
        for r in ok
        if r["orderbook_skew.take_profit_percent"] == "1.5"
        and r["orderbook_skew.stop_loss_percent"] == "1.0"
    )
    assert reference["trades"] == "5"
    assert reference["wins"] == "2"
    assert float(reference["net_pnl_bps"]) == pytest.approx(-21.334, abs=1e-3)
    # A wider take-profit is never reached: the first trade times out instead.
    wider = next(
        r
        for r in ok
        if r["orderbook_skew.take_profit_percent"] == "3.0"
        and r["orderbook_skew.stop_loss_percent"] == "1.0"
    )
    assert float(wider["net_pnl_bps"]) != float(reference["net_pnl_bps"])
    markdown = (out / "sweep.md").read_text(encoding="utf-8")
    assert "## Ranked by net P&L" in markdown
    assert "## Invalid combinations (not run)" in markdown
    assert not (out / "heatmap.png").exists()  # three parameters vary: no heat map


def test_two_varying_parameters_draw_a_heatmap(tmp_path: Path, capture: Path) -> None:
    out = tmp_path / "out"
    args = [
        "sweep",
        str(capture),
        "--out",
        str(out),
        "--no-progress",
        "--jobs",
        "1",
        *ONE_SIGNAL_PER_BOOK,
    ]
    args += ["--grid", "orderbook_skew.take_profit_percent=1.5,3.0"]
    args += ["--grid", "orderbook_skew.stop_loss_percent=1.0,2.0"]
    args += ["--grid", "orderbook_skew.top_levels=5"]
    assert main(args) == 0
    assert (out / "heatmap.png").read_bytes().startswith(b"\x89PNG")


def test_results_do_not_depend_on_the_runner(capture: Path) -> None:
    axes = [parse_grid("orderbook_skew.take_profit_percent=1.5,3.0")]
    combinations = expand_grid(axes, [], validate)
    tasks = sweep_tasks(combinations, [capture, capture], TradeModelSettings(max_hold_seconds=900))
    here = InProcessTaskRunner().map(run_task, tasks, None)
    pool = ProcessPoolTaskRunner(jobs=2).map(run_task, tasks, None)
    assert here == pool
    rows = aggregate(combinations, here, split=1)
    nets = []
    for row in rows:
        assert row.total is not None
        assert row.in_sample is not None
        # The same file on both sides: the same figures, and the total is their sum.
        assert row.in_sample == row.held_out
        assert row.total.trades == 2 * row.in_sample.trades
        nets.append(row.total.net_pnl_bps)
    best_first = sorted(range(len(rows)), key=lambda i: (-nets[i], i))
    assert [r.combination.index for r in ranked(rows)] == best_first


def test_walk_forward_split_reports_held_out_figures(tmp_path: Path, capture: Path) -> None:
    held_out = tmp_path / "later.jsonl"
    held_out.write_bytes(capture.read_bytes())
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            str(capture),
            str(held_out),
            "--grid",
            "orderbook_skew.take_profit_percent=1.5,3.0",
            *ONE_SIGNAL_PER_BOOK,
            "--split",
            "1",
            "--jobs",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--no-plot",
        ]
    )
    assert code == 0
    rows = read_csv(out / "sweep.csv")
    assert {"in_sample_net_pnl_bps", "held_out_net_pnl_bps"} <= set(rows[0])
    for row in rows:
        assert row["in_sample_net_pnl_bps"] == row["held_out_net_pnl_bps"]
    markdown = (out / "sweep.md").read_text(encoding="utf-8")
    assert "## Walk-forward" in markdown
    assert "later.jsonl" in markdown
