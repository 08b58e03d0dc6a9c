"""Trade P&L of `realtime-strategies backtest` on a hand-made capture: exact bps per exit.

The capture drives orderbook_skew (the only strategy enabled, cooldown set here) with
single-level books around 100 (bid 99.99, ask 100.01): a 3:1 book buys at the best bid
(99.99, so SL 98.9901 and TP 101.48985), a 1:3 book sells at the best ask (100.01, SL
101.0101, TP 98.50985). Trades set the fills. Five signals, one of each exit:

1. buy  → take-profit: in at 100.0, out at the level 101.48985
2. sell → stop-loss:   in at 100.0, out at the trade that crossed 101.0101 (101.2)
3. buy  → timeout:     in at 100.0, last trade before the 900 s deadline 100.3
4. buy  → reversal:    in at 100.0, out at the trade after the opposite signal (100.2)
5. sell (the reversal) → in at 100.2, still open at the end (end_of_data at 100.2)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from entrypoints.cli import main

pytestmark = pytest.mark.unit

T0 = 1_723_075_200_000  # 2024-08-08T00:00:00Z
NEUTRAL = (1.0, 1.0)
BUY_BOOK = (3.0, 1.0)
SELL_BOOK = (1.0, 3.0)


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def depth(t: float, book: tuple[float, float]) -> bytes:
    ms = T0 + round(t * 1000)
    data = {
        "lastUpdateId": ms,
        "bids": [["99.99", str(book[0])]],
        "asks": [["100.01", str(book[1])]],
    }
    return orjson.dumps({"stream": "btcusdt@depth20@100ms", "data": data, "timestamp": iso(ms)})


def trade(t: float, price: float) -> bytes:
    ms = T0 + round(t * 1000)
    data = {
        "e": "trade",
        "E": ms,
        "s": "BTCUSDT",
        "t": ms,
        "p": f"{price:.2f}",
        "q": "0.01",
        "T": ms,
        "m": False,
    }
    return orjson.dumps({"stream": "btcusdt@trade", "data": data, "timestamp": iso(ms)})


def signal_book(t: float, book: tuple[float, float]) -> list[bytes]:
    """A skewed book held for a second (three snapshots), then neutral again."""
    return [depth(t, book), depth(t + 0.5, book), depth(t + 1.0, book)]


CAPTURE = [
    depth(0, NEUTRAL),
    trade(0.5, 100.0),
    # 1. buy -> take-profit
    *signal_book(10, BUY_BOOK),
    trade(12, 100.0),
    depth(20, NEUTRAL),
    trade(30, 101.0),
    trade(40, 101.6),
    # 2. sell -> stop-loss
    *signal_book(500, SELL_BOOK),
    trade(502, 100.0),
    depth(510, NEUTRAL),
    trade(520, 100.5),
    trade(530, 101.2),
    # 3. buy -> timeout (deadline 1002 + 900 = 1902)
    *signal_book(1000, BUY_BOOK),
    trade(1002, 100.0),
    depth(1010, NEUTRAL),
    trade(1100, 100.2),
    trade(1800, 100.3),
    depth(1910, NEUTRAL),
    # 4. buy, reversed by 5. sell
    *signal_book(2500, BUY_BOOK),
    trade(2502, 100.0),
    depth(2510, NEUTRAL),
    trade(2600, 100.1),
    *signal_book(3000, SELL_BOOK),
    trade(3002, 100.2),
    depth(3010, NEUTRAL),
    trade(3100, 100.2),
]

ONE_SIGNAL_PER_BOOK = [
    "--set",
    "trade_momentum.enabled=false",
    "--set",
    "orderbook_skew.cooldown_seconds=30",
    # one signal per hand-made book: governance off (only the cooldown above)
    "--set",
    "orderbook_skew.reversal_cooldown_seconds=0",
    "--set",
    "orderbook_skew.hysteresis=false",
    "--set",
    "orderbook_skew.min_confidence=0",
    "--set",
    "governance.max_signals_per_symbol_per_hour=0",
]
"""The settings under which :data:`CAPTURE` gives one signal per signal book."""

TP_LEVEL = 99.99 * 1.015  # 101.48985
EXPECTED = [
    # (action, exit reason, entry, exit, gross bps, net bps after 10 bps per side)
    ("buy", "take_profit", 100.0, TP_LEVEL, 148.985, 148.985 - 10 - 10 * 1.0148985),
    ("sell", "stop_loss", 100.0, 101.2, -120.0, -120.0 - 10 - 10 * 1.012),
    ("buy", "timeout", 100.0, 100.3, 30.0, 30.0 - 10 - 10 * 1.003),
    ("buy", "reversal", 100.0, 100.2, 20.0, 20.0 - 10 - 10 * 1.002),
    ("sell", "end_of_data", 100.2, 100.2, 0.0, -20.0),
]


def run_capture(tmp_path: Path, *extra: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    capture = tmp_path / "hand-made.jsonl"
    tmp_path.mkdir(parents=True, exist_ok=True)
    capture.write_bytes(b"\n".join(CAPTURE) + b"\n")
    out = tmp_path / "out"
    code = main(
        [
            "backtest",
            str(capture),
            "--out",
            str(out),
            "--no-progress",
            "--no-plot",
            *ONE_SIGNAL_PER_BOOK,
            "--max-hold-seconds",
            "900",
            *extra,
        ]
    )
    assert code == 0
    trades = [orjson.loads(line) for line in (out / "trades.jsonl").read_bytes().splitlines()]
    report = orjson.loads((out / "report.json").read_bytes())
    return trades, report


def test_one_trade_of_each_exit_with_exact_bps(tmp_path: Path) -> None:
    trades, report = run_capture(tmp_path)
    trades.sort(key=lambda t: t["entry_time"])
    assert [(t["action"], t["exit_reason"]) for t in trades] == [e[:2] for e in EXPECTED]
    for trade_, (_, _, entry, exit_, gross, net) in zip(trades, EXPECTED, strict=True):
        assert trade_["entry_price"] == entry
        assert trade_["exit_price"] == pytest.approx(exit_, abs=1e-9)
        assert trade_["gross_bps"] == pytest.approx(gross, abs=1e-6)
        assert trade_["net_bps"] == pytest.approx(net, abs=1e-6)
        assert trade_["notional_usdt"] == 100.0
        assert trade_["strategy_id"] == "orderbook_skew"
    timeout = trades[2]
    assert timeout["exposure_seconds"] == 900.0
    assert timeout["exit_time"] == iso(T0 + 1_902_000)

    pnl = report["pnl"]
    assert pnl["model"] == {
        "fill": "next_trade",
        "fee_bps": 10.0,
        "slippage_bps": 0.0,
        "max_hold_seconds": 900.0,
    }
    total = pnl["total"]
    nets = [e[5] for e in EXPECTED]
    assert total["trades"] == 5
    assert total["wins"] == 2  # the take-profit and the timeout beat 20 bps of fees
    assert total["hit_rate"] == 0.4
    assert total["net_pnl_bps"] == pytest.approx(sum(nets), abs=1e-3)
    assert total["gross_pnl_bps"] == pytest.approx(sum(e[4] for e in EXPECTED), abs=1e-3)
    assert total["net_pnl_usdt"] == pytest.approx(sum(nets) / 100, abs=1e-5)
    # Cumulative net: +128.8, -11.3, -1.3, -1.3, -21.3: the fall from the first peak.
    assert total["max_drawdown_bps"] == pytest.approx(128.836015 - (sum(nets)), abs=1e-3)
    assert set(total["by_exit_reason"]) == {e[1] for e in EXPECTED}
    assert pnl["strategies"]["orderbook_skew"]["by_config_version"].keys() == {"1"}
    assert pnl["by_symbol"]["BTCUSDT"]["trades"] == 5


def test_costs_and_fill_options_change_the_figures(tmp_path: Path) -> None:
    free, _ = run_capture(tmp_path / "free", "--fee-bps", "0")
    free.sort(key=lambda t: t["entry_time"])
    assert [t["net_bps"] for t in free] == pytest.approx([e[4] for e in EXPECTED], abs=1e-6)
    _, touch = run_capture(tmp_path / "touch", "--fill", "touch", "--slippage-bps", "1")
    assert touch["pnl"]["model"]["fill"] == "touch"
    assert touch["pnl"]["model"]["slippage_bps"] == 1.0
    assert touch["pnl"]["total"]["trades"] == 5


@pytest.mark.parametrize("bad", [["--fee-bps", "-1"], ["--max-hold-seconds", "0"]])
def test_bad_trade_model_options_exit_2(tmp_path: Path, bad: list[str]) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_bytes(CAPTURE[0] + b"\n")
    out = tmp_path / "out"
    args = ["backtest", str(capture), "--out", str(out), "--no-progress", "--no-plot", *bad]
    assert main(args) == 2
    assert not out.exists()


def test_unknown_fill_rule_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["backtest", str(tmp_path / "c.jsonl"), "--fill", "maybe"])
    assert exit_.value.code == 2
