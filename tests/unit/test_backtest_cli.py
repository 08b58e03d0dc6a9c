"""`realtime-strategies backtest` end to end on the bundled real capture."""

from __future__ import annotations

import gc
import gzip
from pathlib import Path

import orjson
import pytest

from adapters.wire.signals import validate_trade_engine_contract
from entrypoints.cli import main
from entrypoints.lifecycle import YOUNG_COLLECTION_THRESHOLD
from tests.data import CAPTURE, capture_lines

pytestmark = pytest.mark.unit


def run(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["backtest", str(CAPTURE), "--out", str(out), "--no-progress", *extra])
    return code, out


def report(out: Path) -> dict[str, object]:
    loaded = orjson.loads((out / "report.json").read_bytes())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code, out = run(tmp_path_factory.mktemp("bt"), "default")
    assert code == 0
    return out


PERMISSIVE = [
    "--set",
    "governance.max_signals_per_symbol_per_hour=0",
    "--set",
    "governance.max_signals_per_minute=0",
    *[
        item
        for strategy_id in ("orderbook_skew", "trade_momentum", "ticker_velocity")
        for name, value in (
            ("cooldown_seconds", "0"),
            ("reversal_cooldown_seconds", "0"),
            ("min_confidence", "0"),
            ("hysteresis", "false"),
        )
        for item in ("--set", f"{strategy_id}.{name}={value}")
    ],
]
"""Governance off: every message beyond a threshold is a signal (as before issue 9)."""


def test_default_parameters_are_governed(default_run: Path) -> None:
    data = report(default_run)
    assert data["events"] == 13551
    assert data["skipped"] == {}
    # ~6 minutes of one symbol: the hourly cap (2) is what limits the defaults.
    assert data["signals"] == 2
    suppressed = data["suppressed"]
    assert isinstance(suppressed, dict)
    assert suppressed["rate_cap"] > 0
    assert suppressed["unconfirmed"] > 0
    strategies = data["strategies"]
    assert isinstance(strategies, dict)
    for row in strategies.values():
        assert set(row["forward_returns"]) == {"1s", "10s", "60s", "300s"}
    # BTC moved at most 0.23 %/min in this capture: velocity is rightly silent at 0.5 %/min.
    assert "ticker_velocity" not in strategies


def test_without_governance_skew_and_momentum_emit_both_actions(tmp_path: Path) -> None:
    code, out = run(tmp_path, "permissive", *PERMISSIVE, "--no-plot")
    assert code == 0
    data = report(out)
    strategies = data["strategies"]
    assert isinstance(strategies, dict)
    for strategy_id in ("orderbook_skew", "trade_momentum"):
        assert strategies[strategy_id]["buy"] > 0
        assert strategies[strategy_id]["sell"] > 0
    signals = data["signals"]
    assert isinstance(signals, int)
    assert signals > 100


def test_every_signal_is_simulated_as_a_trade_after_10_bps_fees(default_run: Path) -> None:
    data = report(default_run)
    pnl = data["pnl"]
    assert isinstance(pnl, dict)
    assert pnl["model"]["fee_bps"] == 10.0
    signals = data["signals"]
    assert pnl["positions"]["opened"] == signals
    closed = pnl["positions"]["closed"] + pnl["positions"]["unfilled"] + pnl["positions"]["dropped"]
    assert closed == signals
    trades = (default_run / "trades.jsonl").read_bytes().splitlines()
    assert len(trades) == pnl["total"]["trades"] == pnl["positions"]["closed"]
    per_strategy = pnl["strategies"]
    assert sum(row["trades"] for row in per_strategy.values()) == pnl["total"]["trades"]
    for row in per_strategy.values():
        # Each trade pays at least ~20 bps of fees: net is below gross by that much.
        assert row["net_pnl_bps"] <= row["gross_pnl_bps"] - 19.0 * row["trades"]
    markdown = (default_run / "report.md").read_text(encoding="utf-8")
    assert "## Trades and P&L after costs" in markdown
    assert "fees 10 bps per side" in markdown


def test_every_signal_line_satisfies_the_trade_engine_contract(default_run: Path) -> None:
    lines = (default_run / "signals.jsonl").read_bytes().splitlines()
    assert len(lines) == report(default_run)["signals"]
    for line in lines:
        assert validate_trade_engine_contract(orjson.loads(line)) == []


def test_outputs_are_byte_identical_on_rerun(tmp_path: Path, default_run: Path) -> None:
    code, again = run(tmp_path, "again")
    assert code == 0
    for name in ("signals.jsonl", "trades.jsonl", "report.json", "report.md", "plot.png"):
        assert (again / name).read_bytes() == (default_run / name).read_bytes(), name
    assert (again / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_overrides_go_through_the_config_use_case(tmp_path: Path) -> None:
    code, out = run(
        tmp_path,
        "velocity",
        "--set",
        "ticker_velocity.buy_threshold=0.1",
        "--set",
        "ticker_velocity.sell_threshold=-0.1",
        "--set",
        "governance.max_signals_per_symbol_per_hour=0",
        "--no-plot",
    )
    assert code == 0
    rows = report(out)["strategies"]
    assert isinstance(rows, dict)
    assert rows["ticker_velocity"]["signals"] > 0
    first = next(
        orjson.loads(line)
        for line in (out / "signals.jsonl").read_bytes().splitlines()
        if b'"ticker_velocity"' in line
    )
    stamp = first["metadata"]["strategy_config"]
    assert stamp["parameters"]["buy_threshold"] == 0.1
    assert stamp["version"] >= 1
    assert stamp["source"] == "memory"


def test_symbol_override_and_config_file(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        '{"orderbook_skew": {"symbols": {"BTCUSDT": {"enabled": false}}}}', encoding="utf-8"
    )
    code, out = run(tmp_path, "file", "--config", str(overrides), "--no-plot")
    assert code == 0
    rows = report(out)["strategies"]
    assert isinstance(rows, dict)
    assert "orderbook_skew" not in rows
    assert rows["trade_momentum"]["signals"] > 0


@pytest.mark.parametrize(
    "bad",
    [
        "ticker_velocity.buy_threshold=fast",
        "ticker_velocity.buy_threshold=9",
        "nope.buy_threshold=1",
        "ticker_velocity.nope=1",
        "ticker_velocity.sell_threshold=0.9",
        "no_equals_sign",
    ],
)
def test_bad_overrides_are_rejected_with_exit_2(tmp_path: Path, bad: str) -> None:
    code, out = run(tmp_path, "bad", "--set", bad, "--no-plot")
    assert code == 2
    assert not (out / "report.json").exists()


def test_a_capture_with_hostile_lines_reports_its_skips(tmp_path: Path) -> None:
    """Out-of-order, duplicate and far-future trades are counted skips in the report (the
    report could not be written: the skip reasons were not plain-text JSON keys)."""

    def trade(time_ms: int, trade_id: int) -> bytes:
        data = {"e": "trade", "E": time_ms, "s": "BTCUSDT", "t": trade_id, "p": "1", "q": "1"}
        return orjson.dumps({"stream": "btcusdt@trade", "data": data | {"T": time_ms, "m": False}})

    t = 1_723_161_255_000
    lines = [trade(t, 1), trade(t - 5, 2), trade(t + 10, 1), trade(t + 3 * 86_400_000, 3)]
    capture = tmp_path / "hostile.jsonl"
    capture.write_bytes(b"\n".join([*lines, trade(t + 20, 4)]) + b"\n")
    out = tmp_path / "out"
    assert main(["backtest", str(capture), "--out", str(out), "--no-progress", "--no-plot"]) == 0
    assert report(out)["skipped"] == {"duplicate": 1, "future_dated": 1, "out_of_order": 1}


def test_the_backtest_settles_the_garbage_collector_for_its_run(tmp_path: Path) -> None:
    """Like serve and route: start-up objects frozen, young collections after 100,000 net new
    objects (entrypoints.lifecycle.settle_garbage_collector)."""
    capture = tmp_path / "one.jsonl"
    capture.write_bytes(capture_lines(1)[0] + b"\n")
    assert gc.get_threshold()[0] != YOUNG_COLLECTION_THRESHOLD
    out = tmp_path / "out"
    assert main(["backtest", str(capture), "--out", str(out), "--no-progress", "--no-plot"]) == 0
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
    assert gc.get_freeze_count() > 0


def test_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["backtest", str(tmp_path / "missing.jsonl"), "--no-progress"]) == 2


def test_a_recording_folder_replays_to_the_same_signals(tmp_path: Path, default_run: Path) -> None:
    """The capture re-wrapped in the recorder's format, cut into two rotated files of a folder:
    the backtest reads the folder in name order as one stream, with the same signals."""
    from adapters.wire.capture import RecordedMessage, encode_record

    lines = capture_lines()
    received_ns = 1_723_161_660_000_000_000  # 2024-08-09T00:01Z, after the capture's last event
    records = [
        encode_record(RecordedMessage("binance.websocket.data", "binance", line, received_ns + i))
        for i, line in enumerate(lines)
    ]
    folder = tmp_path / "recording"
    folder.mkdir()
    half = len(records) // 2
    for name, part in (("capture-1.jsonl.gz", records[:half]), ("capture-2.jsonl", records[half:])):
        body = b"\n".join(part) + b"\n"
        (folder / name).write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    out = tmp_path / "out"
    assert main(["backtest", str(folder), "--out", str(out), "--no-progress", "--no-plot"]) == 0
    assert (out / "signals.jsonl").read_bytes() == (default_run / "signals.jsonl").read_bytes()
    assert (out / "trades.jsonl").read_bytes() == (default_run / "trades.jsonl").read_bytes()
    assert report(out)["files"] == [
        str(folder / "capture-1.jsonl.gz"),
        str(folder / "capture-2.jsonl"),
    ]
