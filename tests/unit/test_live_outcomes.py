"""Live scoring of published signals (domain/live_outcomes.py): horizons, trade, bounds."""

from __future__ import annotations

import pytest

from domain.live_outcomes import HORIZON_LABELS, LiveOutcome, LiveScorer, OutcomeChange
from domain.market import Ticker
from domain.signal import Action, Signal
from domain.trade_model import ExitReason, TradeModelSettings, TradeSimulator, trade_pnl_bps
from tests.unit.test_trade_model import depth, make_signal, trade

pytestmark = pytest.mark.unit

MIN = 60_000


def feed(scorer: LiveScorer, *items: object) -> list[LiveOutcome]:
    updates: list[LiveOutcome] = []
    for item in items:
        if isinstance(item, Signal):
            updates += scorer.on_signal(item)
        else:
            updates += scorer.on_event(item)  # type: ignore[arg-type]
    return updates


def ticker(t: int, price: float = 100.0) -> Ticker:
    return Ticker("BTCUSDT", t, price, 0.0, 0.0, price, price, price, 1.0, 1.0, price, price)


def test_a_signal_is_scored_at_every_horizon_from_the_last_trade_before_it() -> None:
    scorer = LiveScorer(TradeModelSettings(fee_bps=10.0, max_hold_seconds=30.0))
    signal = make_signal(Action.BUY, 1_000, 100.0, sl_pct=50.0, tp_pct=50.0)
    updates = feed(
        scorer,
        trade(900, 99.0),
        signal,
        trade(2_000, 101.0),  # fills the entry
        trade(1_000 + MIN, 102.0),  # exactly at the 1m deadline: still counts for 1m
        trade(1_000 + MIN + 1, 103.0),  # passes it: 1m is 102
        trade(1_000 + 5 * MIN + 5, 104.0),
        depth(1_000 + 15 * MIN + 5, 103.0, 105.0),  # the exchange clock moves on: 15m is 104
        ticker(1_000 + 60 * MIN + 5),
    )
    assert updates[0].change is OutcomeChange.PUBLISHED
    final = updates[-1]
    assert final.complete
    prices = {label: result.price for label, result in final.horizons.items()}
    assert prices == {"1m": 102.0, "5m": 103.0, "15m": 104.0, "1h": 104.0}
    gross, net = trade_pnl_bps(Action.BUY, 100.0, 102.0, 10.0, 0.0)
    one_minute = final.horizons["1m"]
    assert one_minute.gross_bps == pytest.approx(gross)
    assert one_minute.net_bps == pytest.approx(net)
    assert one_minute.is_hit
    assert final.trade is not None
    assert final.trade.exit_reason is ExitReason.TIMEOUT
    assert scorer.pending == 0
    assert scorer.completed == 1
    assert [u.changed_horizon for u in updates if u.change is OutcomeChange.HORIZON] == list(
        HORIZON_LABELS
    )


def test_the_trade_is_the_backtest_model_s_trade() -> None:
    settings = TradeModelSettings(fee_bps=7.5, slippage_bps=1.0, max_hold_seconds=120.0)
    events = [trade(t * 1_000, 100.0 + (t % 7) * 0.3) for t in range(1, 400)]
    signals = {
        10: make_signal(Action.BUY, 10_000, 100.9),
        50: make_signal(Action.SELL, 50_000, 100.3),
        200: make_signal(Action.BUY, 200_000, 101.5, sl_pct=0.2, tp_pct=0.3),
    }
    reference = TradeSimulator(settings)
    scorer = LiveScorer(settings)
    expected = []
    live = []
    for index, event in enumerate(events, start=1):
        expected += reference.on_event(event)
        live += [u.trade for u in scorer.on_event(event) if u.change is OutcomeChange.TRADE]
        if index in signals:
            expected += reference.on_signal(signals[index])
            live += [
                u.trade for u in scorer.on_signal(signals[index]) if u.change is OutcomeChange.TRADE
            ]
    assert live == expected
    assert len(live) == 3


def test_no_trade_after_the_signal_uses_its_own_price_and_reports_the_trade_unfilled() -> None:
    scorer = LiveScorer(TradeModelSettings(max_hold_seconds=10.0))
    signal = make_signal(Action.SELL, 1_000, 100.0)
    updates = feed(scorer, trade(500, 90.0), signal, ticker(1_000 + 61 * MIN))
    final = updates[-1]
    assert final.change is OutcomeChange.UNFILLED
    assert final.trade_unfilled
    assert final.complete
    assert {r.price for r in final.horizons.values()} == {100.0}
    assert not final.horizons["1m"].is_hit


def test_pending_signals_are_bounded_per_symbol_oldest_dropped_and_counted() -> None:
    scorer = LiveScorer(max_pending_per_symbol=2)
    first, second, third = (make_signal(Action.BUY, t, 100.0) for t in (1, 2, 3))
    feed(scorer, first, second, third)
    assert scorer.pending == 2
    assert scorer.dropped == 1
    assert scorer.followed == 3


def test_symbols_are_bounded_the_oldest_symbol_is_dropped_and_counted() -> None:
    scorer = LiveScorer(max_symbols=1)
    feed(
        scorer,
        make_signal(Action.BUY, 1, symbol="AAA"),
        make_signal(Action.BUY, 2, symbol="AAA"),
        make_signal(Action.BUY, 3, symbol="BBB"),
    )
    assert scorer.pending == 1
    assert scorer.dropped == 2


def test_a_duplicated_signal_id_is_followed_once() -> None:
    scorer = LiveScorer()
    signal = make_signal(Action.BUY, 1, 100.0)
    assert len(feed(scorer, signal)) == 1
    assert feed(scorer, signal) == []
    assert scorer.duplicates == 1
    assert scorer.simulator.opened == 1


def test_a_future_dated_event_of_another_symbol_changes_nothing() -> None:
    scorer = LiveScorer()
    feed(scorer, make_signal(Action.BUY, 1_000, 100.0))
    assert feed(scorer, trade(10**12, 100.0, symbol="ETHUSDT")) == []
    assert scorer.pending == 1


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        LiveScorer(max_pending_per_symbol=0)
