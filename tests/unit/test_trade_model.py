"""The trade model (domain/trade_model.py): fills, exits, costs, bounds and aggregation."""

from __future__ import annotations

from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market import DepthSnapshot, Ticker, Trade
from domain.signal import Action, ConfigStamp, Signal
from domain.trade_model import (
    ClosedTrade,
    ExitReason,
    FillRule,
    PnlTally,
    TradeModelSettings,
    TradeSimulator,
    trade_pnl_bps,
)

pytestmark = pytest.mark.unit

SYMBOL = "BTCUSDT"
_ids = count()


def make_signal(
    action: Action,
    t: int,
    price: float = 100.0,
    *,
    strategy_id: str = "alpha",
    symbol: str = SYMBOL,
    sl_pct: float = 1.0,
    tp_pct: float = 1.5,
    notional: float = 100.0,
    version: int = 0,
) -> Signal:
    d = 1.0 if action is Action.BUY else -1.0
    return Signal(
        signal_id=f"s{next(_ids)}",
        strategy_id=strategy_id,
        symbol=symbol,
        action=action,
        confidence=0.8,
        price=price,
        quantity=notional / price,
        current_price=price,
        stop_loss=price * (1 - d * sl_pct / 100),
        take_profit=price * (1 + d * tp_pct / 100),
        event_time_ms=t,
        config=ConfigStamp(version, {"position_notional_usdt": notional}, "memory", False),
    )


def trade(t: int, price: float, symbol: str = SYMBOL) -> Trade:
    return Trade(symbol, t, t, price, 0.01, False)


def depth(t: int, bid: float, ask: float, symbol: str = SYMBOL) -> DepthSnapshot:
    return DepthSnapshot(symbol, t, ((bid, 1.0),), ((ask, 1.0),))


def run(simulator: TradeSimulator, *items: Trade | DepthSnapshot | Signal) -> list[ClosedTrade]:
    closed: list[ClosedTrade] = []
    for item in items:
        if isinstance(item, Signal):
            closed += simulator.on_signal(item)
        else:
            closed += simulator.on_event(item)
    return closed


def net(action: Action, entry: float, exit_: float, fee: float = 10.0, slip: float = 0.0) -> float:
    return trade_pnl_bps(action, entry, exit_, fee, slip)[1]


# --- the cost arithmetic ------------------------------------------------------------------------


def test_pnl_formula_exact_values() -> None:
    # +1.5 % with 10 bps per side: 150 bps gross, fees 10 on entry + 10 * 1.015 on exit.
    assert trade_pnl_bps(Action.BUY, 100.0, 101.5, 10.0, 0.0) == pytest.approx(
        (150.0, 129.85), abs=1e-9
    )
    # A short that loses 1.2 %.
    assert trade_pnl_bps(Action.SELL, 100.0, 101.2, 10.0, 0.0) == pytest.approx(
        (-120.0, -140.12), abs=1e-9
    )
    # No move, no costs: zero; no move with fees: -2 fees.
    assert trade_pnl_bps(Action.BUY, 100.0, 100.0, 0.0, 0.0) == (0.0, 0.0)
    assert trade_pnl_bps(Action.SELL, 100.0, 100.0, 10.0, 0.0)[1] == pytest.approx(-20.0)
    # Slippage moves both fills against the position: 5 bps in, 5 bps out.
    gross, net_bps = trade_pnl_bps(Action.BUY, 100.0, 100.0, 0.0, 5.0)
    assert gross == 0.0
    assert net_bps == pytest.approx((99.95 / 100.05 - 1.0) * 1e4, abs=1e-9)


# --- one of each exit, exact ---------------------------------------------------------------------


def test_take_profit_at_the_level_after_a_next_trade_fill() -> None:
    sim = TradeSimulator()
    buy = make_signal(Action.BUY, 1_000)
    closed = run(sim, trade(900, 99.0), buy, trade(1_001, 100.0), trade(2_000, 101.0))
    assert closed == []
    [tp] = run(sim, trade(3_000, 101.7))
    assert tp.exit_reason is ExitReason.TAKE_PROFIT
    assert (tp.entry_price, tp.exit_price) == (100.0, buy.take_profit)
    assert (tp.entry_time_ms, tp.exit_time_ms) == (1_001, 3_000)
    assert tp.gross_bps == pytest.approx(150.0, abs=1e-9)
    assert tp.net_bps == pytest.approx(129.85, abs=1e-9)
    assert tp.net_usdt == pytest.approx(1.2985, abs=1e-12)
    assert tp.exposure_seconds == pytest.approx(1.999)
    assert tp.is_win


def test_stop_loss_at_the_trade_that_touched_it_even_through_a_gap() -> None:
    sim = TradeSimulator()
    sell = make_signal(Action.SELL, 1_000)  # SL 101, TP 98.5
    [sl] = run(sim, sell, trade(1_500, 100.0), trade(2_000, 100.9), trade(2_500, 101.2))
    assert sl.exit_reason is ExitReason.STOP_LOSS
    assert sl.exit_price == 101.2
    assert sl.gross_bps == pytest.approx(-120.0, abs=1e-9)
    assert sl.net_bps == pytest.approx(-140.12, abs=1e-9)
    assert not sl.is_win


def test_timeout_closes_at_the_deadline_at_the_last_price_before_it() -> None:
    sim = TradeSimulator(TradeModelSettings(max_hold_seconds=300))
    buy = make_signal(Action.BUY, 1_000)
    closed = run(sim, buy, trade(1_000, 100.0), trade(100_000, 100.3), trade(301_000, 100.4))
    assert closed == []  # 301,000 is the deadline itself: still inside
    [timeout] = run(sim, depth(302_000, 100.5, 100.6))  # the exchange's clock moved past it
    assert timeout.exit_reason is ExitReason.TIMEOUT
    assert (timeout.exit_time_ms, timeout.exit_price) == (301_000, 100.4)
    assert timeout.exposure_seconds == 300.0
    assert timeout.gross_bps == pytest.approx(40.0, abs=1e-9)
    assert timeout.net_bps == pytest.approx(40.0 - 20.04, abs=1e-9)


def test_reversal_closes_at_the_next_trade_and_opens_the_opposite() -> None:
    sim = TradeSimulator()
    buy = make_signal(Action.BUY, 1_000)
    sell = make_signal(Action.SELL, 5_000, 100.1)
    closed = run(sim, buy, trade(1_100, 100.0), sell)
    assert closed == []  # closes at the next trade, like an entry
    [reversal] = run(sim, trade(5_200, 100.2))
    assert reversal.signal_id == buy.signal_id
    assert reversal.exit_reason is ExitReason.REVERSAL
    assert (reversal.exit_time_ms, reversal.exit_price) == (5_200, 100.2)
    assert reversal.net_bps == pytest.approx(20.0 - 20.02, abs=1e-9)
    [short] = sim.finish()
    assert (short.signal_id, short.entry_price) == (sell.signal_id, 100.2)
    assert short.exit_reason is ExitReason.END_OF_DATA


def test_only_the_same_strategy_reverses_and_same_side_signals_stack() -> None:
    sim = TradeSimulator()
    run(
        sim,
        make_signal(Action.BUY, 1_000),
        make_signal(Action.BUY, 1_000, strategy_id="beta"),
        trade(1_100, 100.0),
        make_signal(Action.BUY, 2_000),  # a second long of alpha, its own trade
        trade(2_100, 100.1),
    )
    assert sim.open_positions == 3
    closed = run(sim, make_signal(Action.SELL, 3_000, strategy_id="beta"), trade(3_100, 100.2))
    assert [t.strategy_id for t in closed] == ["beta"]
    assert sim.open_positions == 3  # alpha's two longs + beta's new short


def test_entry_trade_is_not_checked_against_the_levels() -> None:
    sim = TradeSimulator()
    buy = make_signal(Action.BUY, 1_000)  # SL 99
    assert run(sim, buy, trade(1_100, 98.0)) == []  # filled far below the signal's stop
    [sl] = run(sim, trade(1_200, 98.5))  # the next trade is at or below the stop: out
    assert (sl.entry_price, sl.exit_price, sl.exit_reason) == (98.0, 98.5, ExitReason.STOP_LOSS)


# --- the touch, slippage, bounds ----------------------------------------------------------------


def test_touch_fill_crosses_the_spread_and_reverses_at_once() -> None:
    sim = TradeSimulator(TradeModelSettings(fill=FillRule.TOUCH, fee_bps=0.0))
    run(sim, depth(900, 99.9, 100.1))
    buy = make_signal(Action.BUY, 1_000, 99.9)
    assert run(sim, buy) == []
    run(sim, depth(2_000, 100.3, 100.5))
    [reversal] = run(sim, make_signal(Action.SELL, 2_000, 100.5))
    assert (reversal.entry_price, reversal.exit_price) == (100.1, 100.3)  # ask in, bid out
    assert reversal.exit_time_ms == 2_000
    assert reversal.gross_bps == pytest.approx((100.3 / 100.1 - 1) * 1e4)


def test_touch_without_a_book_uses_the_last_trade_then_the_signal_price() -> None:
    sim = TradeSimulator(TradeModelSettings(fill=FillRule.TOUCH))
    run(sim, make_signal(Action.BUY, 1_000, 100.0, symbol="ETHUSDT"))
    run(sim, trade(1_500, 50.0, "SOLUSDT"), make_signal(Action.SELL, 2_000, 51.0, symbol="SOLUSDT"))
    entries = sorted((t.symbol, t.entry_price) for t in sim.finish())
    assert entries == [("ETHUSDT", 100.0), ("SOLUSDT", 50.0)]


def test_slippage_is_charged_against_the_position() -> None:
    sim = TradeSimulator(TradeModelSettings(fee_bps=10.0, slippage_bps=2.0))
    [tp] = run(sim, make_signal(Action.BUY, 0), trade(1, 100.0), trade(2, 102.0))
    assert tp.gross_bps == pytest.approx(150.0, abs=1e-9)
    assert tp.net_bps == pytest.approx(net(Action.BUY, 100.0, 101.5, 10.0, 2.0), abs=1e-12)
    assert tp.net_bps < 129.85


def test_unfilled_positions_expire_and_are_counted() -> None:
    sim = TradeSimulator(TradeModelSettings(max_hold_seconds=10))
    run(sim, make_signal(Action.BUY, 1_000), depth(5_000, 99, 101), depth(12_000, 99, 101))
    assert (sim.open_positions, sim.unfilled) == (0, 1)
    run(sim, make_signal(Action.BUY, 13_000))
    assert sim.finish() == []
    assert sim.unfilled == 2


def test_open_positions_per_symbol_are_bounded() -> None:
    sim = TradeSimulator(TradeModelSettings(max_open_per_symbol=3))
    run(sim, *(make_signal(Action.BUY, t) for t in range(5)))
    assert (sim.open_positions, sim.dropped, sim.opened) == (3, 2, 5)


def test_symbols_are_bounded_but_never_those_with_positions() -> None:
    sim = TradeSimulator(TradeModelSettings(max_symbols=2))
    run(sim, make_signal(Action.BUY, 0, 10.0, symbol="AUSDT"), trade(1, 10.0, "BUSDT"))
    run(sim, trade(2, 10.0, "CUSDT"))  # BUSDT (no position) is forgotten, AUSDT kept
    [closed] = run(sim, trade(3, 10.0, "AUSDT"), trade(4, 20.0, "AUSDT"))
    assert closed.exit_reason is ExitReason.TAKE_PROFIT


def test_other_symbols_and_clocks_do_not_touch_a_position() -> None:
    sim = TradeSimulator(TradeModelSettings(max_hold_seconds=1))
    run(sim, make_signal(Action.BUY, 0), trade(1, 100.0), trade(10_000, 50.0, "ETHUSDT"))
    assert sim.open_positions == 1
    ticker = Ticker(SYMBOL, 5_000, 100.0, 0, 0, 100, 100, 100, 1, 100, 99.9, 100.1)
    [timeout] = sim.on_event(ticker)
    assert (timeout.exit_reason, timeout.exit_time_ms) == (ExitReason.TIMEOUT, 1_001)


def test_settings_are_validated() -> None:
    for bad in (
        {"fee_bps": -1.0},
        {"slippage_bps": float("nan")},
        {"max_hold_seconds": 0.0},
        {"max_open_per_symbol": 0},
    ):
        with pytest.raises(ValueError, match="must be"):
            TradeModelSettings(**bad)


# --- aggregation ---------------------------------------------------------------------------------


def test_tally_sums_wins_drawdown_and_reasons() -> None:
    sim = TradeSimulator()
    closed = run(
        sim,
        make_signal(Action.BUY, 0),
        trade(1, 100.0),
        trade(2, 101.5),  # +129.85
        make_signal(Action.SELL, 3),
        trade(4, 100.0),
        trade(5, 101.0),  # SL: -100 - 20.1 = -120.1
        make_signal(Action.SELL, 6),
        trade(7, 100.0),
        trade(8, 99.0),  # still open
    )
    closed += sim.finish()  # END_OF_DATA at 99.0: +100 - 19.9 = +80.1
    summary = PnlTally().extend(closed).summary()
    assert (summary.trades, summary.wins) == (3, 2)
    assert summary.hit_rate == pytest.approx(2 / 3)
    assert summary.net_pnl_bps == pytest.approx(129.85 - 120.1 + 80.1, abs=1e-9)
    assert summary.gross_pnl_bps == pytest.approx(150 - 100 + 100, abs=1e-9)
    assert summary.mean_net_bps == pytest.approx(summary.net_pnl_bps / 3)
    assert summary.max_drawdown_bps == pytest.approx(120.1, abs=1e-9)
    assert summary.net_pnl_usdt == pytest.approx(summary.net_pnl_bps / 100, abs=1e-12)
    assert {r.value: s.trades for r, s in summary.by_exit_reason.items()} == {
        "stop_loss": 1,
        "take_profit": 1,
        "end_of_data": 1,
    }
    empty = PnlTally().summary()
    assert (empty.trades, empty.hit_rate, empty.mean_net_bps) == (0, None, None)


# --- properties ----------------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(0, 400), st.floats(95.0, 105.0)),
        st.tuples(st.just("signal"), st.integers(0, 400), st.sampled_from(["buy", "sell"])),
        st.tuples(st.just("depth"), st.integers(0, 400), st.floats(95.0, 105.0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, fill=st.sampled_from(list(FillRule)), hold=st.integers(1, 120))
def test_every_position_ends_exactly_once_and_exits_are_consistent(
    steps: list[tuple[str, int, object]], fill: FillRule, hold: int
) -> None:
    sim = TradeSimulator(TradeModelSettings(fill=fill, max_hold_seconds=hold, fee_bps=10.0))
    closed: list[ClosedTrade] = []
    t = 0
    signals: dict[str, Signal] = {}
    for kind, dt, value in steps:
        t += dt * 100
        if kind == "trade":
            closed += sim.on_event(trade(t, float(value)))  # type: ignore[arg-type]
        elif kind == "depth":
            mid = float(value)  # type: ignore[arg-type]
            closed += sim.on_event(depth(t, mid - 0.05, mid + 0.05))
        else:
            signal = make_signal(Action(str(value)), t, 100.0, strategy_id=f"s{t % 2}")
            signals[signal.signal_id] = signal
            closed += sim.on_signal(signal)
    closed += sim.finish()
    ids = [c.signal_id for c in closed]
    assert len(ids) == len(set(ids))
    assert sim.opened == len(closed) + sim.unfilled + sim.dropped == len(signals)
    assert sim.open_positions == 0
    for c in closed:
        signal = signals[c.signal_id]
        d = 1.0 if c.action is Action.BUY else -1.0
        assert c.signal_time_ms <= c.entry_time_ms <= c.exit_time_ms
        assert c.exit_time_ms - c.entry_time_ms <= hold * 1000 or c.exit_reason in (
            ExitReason.REVERSAL,
            ExitReason.END_OF_DATA,
        )
        if c.exit_reason is ExitReason.STOP_LOSS:
            assert d * (c.exit_price - signal.stop_loss) <= 0
        if c.exit_reason is ExitReason.TAKE_PROFIT:
            assert c.exit_price == signal.take_profit
        assert c.net_bps < c.gross_bps  # fees always cost
        gross, net_bps = trade_pnl_bps(c.action, c.entry_price, c.exit_price, 10.0, 0.0)
        assert (c.gross_bps, c.net_bps) == (gross, net_bps)
