"""trade_momentum: the repaired, time-decayed momentum over the last qualifying trades."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.market import MarketEvent, Trade
from domain.params import CommonParams
from domain.signal import Action, Signal
from domain.strategies.base import Decision
from domain.strategies.trade_momentum import TradeMomentumParams, TradeMomentumStrategy
from tests.unit.strategies.contract import ThresholdStrategyContract
from tests.unit.strategies.support import (
    SpecRow,
    assert_one_cross_field_error,
    config_doc,
    decide,
    engine_with,
    judged_alone,
    property_settings,
    rejection,
    run,
)

pytestmark = pytest.mark.unit

SID = "trade_momentum"
DEFAULTS = judged_alone(TradeMomentumParams)
T0 = 1_723_161_255_000

BUY = False  # is_buyer_maker False: the taker bought
SELL = True

# 10 taker buys, 6 upticks and 3 zero ticks over the 9 pairs:
# tick 6/9, volume 1, count 1 -> momentum (0.4 * 2/3 + 0.3 + 0.3) = 0.8666...
RISING = [100.0, 100.1, 100.1, 100.2, 100.3, 100.3, 100.4, 100.5, 100.5, 100.6]
RISING_MOMENTUM = 0.4 * (6 / 9) + 0.6
# confidence 0.68 + 0.27 * min(1, (0.8667 - 0.7) / 0.3)
RISING_CONFIDENCE = 0.68 + 0.27 * ((RISING_MOMENTUM - 0.7) / 0.3)


def trade(
    price: float,
    *,
    taker_sell: bool = BUY,
    quantity: float = 0.01,
    time_ms: int = T0,
    symbol: str = "BTCUSDT",
    trade_id: int = 1,
) -> Trade:
    return Trade(symbol, time_ms, trade_id, price, quantity, taker_sell)


def series(
    prices: Sequence[float],
    sides: Sequence[bool] | bool = BUY,
    *,
    start_ms: int = T0,
    step_ms: int = 0,
    quantity: float = 0.01,
    symbol: str = "BTCUSDT",
) -> list[Trade]:
    sides_list = [sides] * len(prices) if isinstance(sides, bool) else list(sides)
    return [
        trade(
            p,
            taker_sell=s,
            quantity=quantity,
            time_ms=start_ms + i * step_ms,
            symbol=symbol,
            trade_id=i,
        )
        for i, (p, s) in enumerate(zip(prices, sides_list, strict=True))
    ]


class Scores(NamedTuple):
    """The scores of a window, named as the decision's indicators."""

    momentum: float
    tick_score: float
    volume_score: float
    count_score: float


def reference_scores(trades: Sequence[Trade], params: TradeMomentumParams) -> Scores:
    """Straight transcription of the SPEC formula over ``trades`` (the window, oldest
    first, the current trade last), for comparison."""
    now = trades[-1].event_time_ms
    tau_ms = params.time_decay_seconds * 1000.0
    w = [math.exp(-max(0, now - t.event_time_ms) / tau_ms) for t in trades]
    s = [-1.0 if t.is_buyer_maker else 1.0 for t in trades]
    q = [t.quantity for t in trades]
    p = [t.price for t in trades]
    pairs = range(1, len(trades))
    tick = sum(w[i] * ((p[i] > p[i - 1]) - (p[i] < p[i - 1])) for i in pairs) / sum(
        w[i] for i in pairs
    )
    volume = sum(wi * si * qi for wi, si, qi in zip(w, s, q, strict=True)) / sum(
        wi * qi for wi, qi in zip(w, q, strict=True)
    )
    count = sum(wi * si for wi, si in zip(w, s, strict=True)) / sum(w)
    weights = params.price_weight + params.quantity_weight + params.maker_weight
    momentum = (
        params.price_weight * tick + params.quantity_weight * volume + params.maker_weight * count
    ) / weights
    return Scores(momentum, tick, volume, count)


# --- protocol -------------------------------------------------------------------------


def test_the_docstring_explains_the_filters() -> None:
    assert TradeMomentumStrategy.__doc__ is not None
    assert "min_quantity" in TradeMomentumStrategy.__doc__


# --- decisions ------------------------------------------------------------------------


def test_buy_on_rising_taker_buying() -> None:
    decisions = run(TradeMomentumStrategy(), series(RISING))

    assert decisions[:9] == [None] * 9  # window not full yet
    decision = decisions[9]
    assert decision is not None
    assert decision.action is Action.BUY
    assert decision.symbol == "BTCUSDT"
    assert decision.price == decision.current_price == 100.6
    assert decision.confidence == pytest.approx(RISING_CONFIDENCE)
    assert dict(decision.indicators) == pytest.approx(
        {
            "momentum": RISING_MOMENTUM,
            "tick_score": 6 / 9,
            "volume_score": 1.0,
            "count_score": 1.0,
            "window_trades": 10.0,
        }
    )


def test_sell_on_falling_taker_selling() -> None:
    falling = [200.0 - (p - 100.0) for p in RISING]
    decisions = run(TradeMomentumStrategy(), series(falling, SELL))

    assert decisions[:9] == [None] * 9
    decision = decisions[9]
    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.price == decision.current_price == falling[-1]
    assert decision.indicators["momentum"] == pytest.approx(-RISING_MOMENTUM)
    assert decision.confidence == pytest.approx(RISING_CONFIDENCE)


def test_full_momentum_gives_the_cap() -> None:
    prices = [100.0 + i for i in range(10)]
    decision = run(TradeMomentumStrategy(), series(prices))[-1]
    assert decision is not None
    assert decision.indicators["momentum"] == pytest.approx(1.0)
    assert decision.confidence == pytest.approx(0.95)


@pytest.mark.parametrize(
    ("prices", "sides", "why"),
    [
        ([100.0] * 10, BUY, "taker buys but a flat price: 0.6 < 0.7"),
        ([100.0 + i for i in range(10)], [BUY, SELL] * 5, "rising but mixed takers"),
        ([100.0, 101.0] * 5, BUY, "zig-zag"),
        ([100.0 + i for i in range(10)], SELL, "rising on taker sells"),
    ],
)
def test_no_signal(prices: list[float], sides: list[bool] | bool, why: str) -> None:
    decisions = run(TradeMomentumStrategy(), series(prices, sides))
    assert decisions == [None] * 10, why


def test_flat_price_taker_buys_fire_with_a_lower_threshold() -> None:
    params = TradeMomentumParams.from_mapping({"hysteresis": False, "buy_threshold": 0.55})
    decision = run(TradeMomentumStrategy(), series([100.0] * 10), params)[-1]
    assert decision is not None
    assert decision.action is Action.BUY
    assert decision.indicators["tick_score"] == 0.0
    assert decision.indicators["momentum"] == pytest.approx(0.6)


def test_momentum_matches_the_reference_formula_with_decay_and_sizes() -> None:
    trades = [
        trade(100.0, taker_sell=SELL, quantity=2.0, time_ms=T0),
        trade(100.5, taker_sell=BUY, quantity=0.5, time_ms=T0 + 30_000),
        trade(100.5, taker_sell=BUY, quantity=0.2, time_ms=T0 + 45_000),
        trade(100.2, taker_sell=SELL, quantity=0.1, time_ms=T0 + 60_000),
        trade(100.9, taker_sell=BUY, quantity=3.0, time_ms=T0 + 200_000),
    ]
    params = TradeMomentumParams.from_mapping(
        {"hysteresis": False, "momentum_window": 5, "buy_threshold": 0.3, "time_decay_seconds": 60}
    )
    decision = run(TradeMomentumStrategy(), trades, params)[-1]
    expected = reference_scores(trades, params).momentum
    assert expected > 0.3
    assert decision is not None
    assert decision.indicators["momentum"] == pytest.approx(expected)


def test_time_decay_lets_recent_trades_dominate() -> None:
    # 5 taker sells at falling prices an hour ago, then 5 rising taker buys now.
    old = series([105.0, 104.0, 103.0, 102.0, 101.0], SELL, start_ms=T0)
    new = series([102.0, 103.0, 104.0, 105.0, 106.0], BUY, start_ms=T0 + 3_600_000)
    decision = run(TradeMomentumStrategy(), old + new)[-1]
    assert decision is not None
    assert decision.action is Action.BUY
    # the old trades weigh exp(-3600 / 300) ~ 6e-6
    assert decision.indicators["momentum"] == pytest.approx(1.0, abs=1e-4)
    assert decision.indicators["momentum"] < 1.0
    # the same trades at one instant nearly cancel out: (0.4 * 1/9 + 0 + 0) -> no signal
    same_time = [trade(t.price, taker_sell=t.is_buyer_maker) for t in old + new]
    assert run(TradeMomentumStrategy(), same_time)[-1] is None


def test_small_trades_are_ignored() -> None:
    strategy = TradeMomentumStrategy()
    rising = series(RISING)
    dust = [trade(50.0, taker_sell=SELL, quantity=0.0009) for _ in range(20)]
    # dust never decides and does not count towards the window nor break the run
    decisions = run(strategy, rising[:5] + dust + rising[5:])
    assert all(d is None for d in decisions[:-1])
    last = decisions[-1]
    assert last is not None
    assert last.action is Action.BUY
    assert last.indicators["momentum"] == pytest.approx(RISING_MOMENTUM)
    # a dust trade after the signal is not a decision
    assert decide(strategy, dust[0], DEFAULTS) is None


def test_raising_min_quantity_stops_counting_small_trades_already_kept() -> None:
    strategy = TradeMomentumStrategy()
    run(strategy, series(RISING[:9], quantity=0.01))
    strict = TradeMomentumParams.from_mapping({"hysteresis": False, "min_quantity": 0.05})
    assert decide(strategy, trade(100.6, quantity=0.1), strict) is None
    assert decide(strategy, trade(100.7, quantity=0.1), DEFAULTS) is not None


def test_window_slides_and_follows_a_new_window_size() -> None:
    strategy = TradeMomentumStrategy()
    decisions = run(strategy, series([*RISING, 100.7, 100.8]))
    assert [d is not None for d in decisions] == [False] * 9 + [True] * 3
    last = decisions[-1]
    assert last is not None
    # the window is the last 10: pairs 100.1..100.8 have 7 upticks and 2 zero ticks
    assert last.indicators["tick_score"] == pytest.approx(7 / 9)
    smaller = TradeMomentumParams.from_mapping({"hysteresis": False, "momentum_window": 5})
    decision = decide(strategy, trade(100.9), smaller)
    assert decision is not None
    assert decision.indicators["window_trades"] == 5.0
    assert decision.indicators["tick_score"] == pytest.approx(1.0)
    larger = TradeMomentumParams.from_mapping({"hysteresis": False, "momentum_window": 20})
    assert decide(strategy, trade(101.0), larger) is None  # only 6 kept: wait for 20


def test_symbols_are_independent() -> None:
    strategy = TradeMomentumStrategy()
    btc = series(RISING, symbol="BTCUSDT")
    eth = series([3000.0 - i for i in range(10)], SELL, symbol="ETHUSDT")
    interleaved = [t for pair in zip(btc, eth, strict=True) for t in pair]
    decisions = [d for d in run(strategy, interleaved) if d is not None]
    assert [(d.symbol, d.action) for d in decisions] == [
        ("BTCUSDT", Action.BUY),
        ("ETHUSDT", Action.SELL),
    ]
    strategy.forget_symbol("BTCUSDT")
    assert decide(strategy, trade(101.0), DEFAULTS) is None


def test_out_of_order_trade_does_not_raise_or_overweight() -> None:
    trades = series(RISING, step_ms=1000)
    late = trade(100.7, time_ms=T0 - 10_000_000)  # far older than the window
    decision = run(TradeMomentumStrategy(), [*trades, late])[-1]
    assert decision is not None
    assert 0.0 <= decision.confidence <= 0.95
    assert -1.0 <= decision.indicators["momentum"] <= 1.0


# --- cooldown and configuration -------------------------------------------------------


def test_cooldown_suppresses_repeats_within_30_seconds() -> None:
    engine = engine_with(
        TradeMomentumStrategy(), global_doc=config_doc(SID, None, 1, cooldown_seconds=30)
    )
    prices = [100.0 + i for i in range(14)]
    times = [T0 + i for i in range(12)] + [T0 + 29_999 + 9, T0 + 30_009]
    emitted: list[Signal] = []
    for i, (p, t) in enumerate(zip(prices, times, strict=True)):
        emitted += engine.process(trade(p, time_ms=t, trade_id=i))
    # decisions at trades 10..14 (all buys); only the first and the one 30 s later pass
    assert [(s.action, s.event_time_ms, s.price) for s in emitted] == [
        (Action.BUY, T0 + 9, 109.0),
        (Action.BUY, T0 + 30_009, 113.0),
    ]
    assert emitted[0].stop_loss == pytest.approx(109.0 * 0.99)
    assert emitted[0].take_profit == pytest.approx(109.0 * 1.015)
    assert emitted[0].quantity == pytest.approx(100.0 / 109.0, abs=1e-8)


def test_symbol_override_changes_only_that_symbol() -> None:
    override = config_doc(SID, "ETHUSDT", 4, buy_threshold=0.9)
    engine = engine_with(TradeMomentumStrategy(), {"ETHUSDT": override})
    btc: list[Signal] = []
    eth: list[Signal] = []
    for t in series(RISING, symbol="BTCUSDT"):
        btc += engine.process(t)
    for t in series(RISING, symbol="ETHUSDT"):
        eth += engine.process(t)
    assert [s.action for s in btc] == [Action.BUY]  # momentum 0.867 > 0.7
    assert eth == []  # 0.867 < 0.9
    assert not btc[0].config.is_override
    assert btc[0].config.parameters["buy_threshold"] == 0.7


# --- parameters -----------------------------------------------------------------------


def test_cross_field_weights_must_sum_above_zero() -> None:
    zero = {"price_weight": 0.0, "quantity_weight": 0.0, "maker_weight": 0.0}
    assert_one_cross_field_error(rejection(TradeMomentumParams, zero), "weight")
    one_left = TradeMomentumParams.from_mapping({**zero, "maker_weight": 0.1})
    assert one_left.maker_weight == 0.1


def test_zero_weights_built_directly_never_decide() -> None:
    params = TradeMomentumParams(
        hysteresis=False, price_weight=0.0, quantity_weight=0.0, maker_weight=0.0
    )
    assert run(TradeMomentumStrategy(), series([100.0 + i for i in range(10)]), params)[-1] is None


# --- properties -----------------------------------------------------------------------


@property_settings(200)
@given(
    prices=st.lists(st.floats(min_value=99.0, max_value=101.0), min_size=10, max_size=10),
    sides=st.lists(st.booleans(), min_size=10, max_size=10),
    gaps=st.lists(st.integers(0, 120_000), min_size=10, max_size=10),
    quantities=st.lists(st.floats(min_value=0.001, max_value=5.0), min_size=10, max_size=10),
)
def test_momentum_equals_the_reference_formula(
    prices: list[float], sides: list[bool], gaps: list[int], quantities: list[float]
) -> None:
    params = TradeMomentumParams.from_mapping(
        {"hysteresis": False, "buy_threshold": 0.3, "sell_threshold": -0.3}
    )
    trades = []
    time_ms = T0
    for i in range(10):
        time_ms += gaps[i]
        trades.append(Trade("BTCUSDT", time_ms, i, prices[i], quantities[i], sides[i]))
    decision = run(TradeMomentumStrategy(), trades, params)[-1]
    expected = reference_scores(trades, params).momentum
    if decision is None:
        assert -0.3 <= expected <= 0.3
    else:
        assert decision.indicators["momentum"] == pytest.approx(expected, abs=1e-9)


MAX = 1.7976931348623157e308
PRICES = st.one_of(
    st.floats(min_value=99.0, max_value=101.0),
    st.floats(min_value=5e-324, max_value=MAX),
)
QUANTITIES = st.one_of(
    st.floats(min_value=5e-324, max_value=1e-3),
    st.floats(min_value=1e-4, max_value=10.0),
    st.floats(min_value=1e300, max_value=MAX),
)
TIMES = st.one_of(
    st.integers(0, 10_000),
    st.integers(0, 2**62),
)


@st.composite
def trade_streams(draw: st.DrawFn) -> list[MarketEvent]:
    count = draw(st.integers(1, 80))
    symbols = draw(st.lists(st.sampled_from(["BTCUSDT", "ETHUSDT"]), min_size=1, max_size=2))
    monotonic = draw(st.booleans())
    start = draw(TIMES)
    trades: list[MarketEvent] = []
    for i in range(count):
        time_ms = start + i * draw(st.integers(0, 5000)) if monotonic else draw(TIMES)
        trades.append(
            Trade(
                draw(st.sampled_from(symbols)),
                time_ms,
                i,
                draw(PRICES),
                draw(QUANTITIES),
                draw(st.booleans()),
            )
        )
    return trades


class TestContract(ThresholdStrategyContract):
    strategy_id = SID
    metric = "momentum"
    warmup = 9  # the window of 10 trades is not full before
    schema: ClassVar[dict[str, SpecRow]] = {
        "cooldown_seconds": ("int", 300, 0, 86400),
        "price_weight": ("float", 0.4, 0.0, 1.0),
        "quantity_weight": ("float", 0.3, 0.0, 1.0),
        "maker_weight": ("float", 0.3, 0.0, 1.0),
        "buy_threshold": ("float", 0.7, 0.3, 1.0),
        "sell_threshold": ("float", -0.7, -1.0, -0.3),
        "min_quantity": ("float", 0.001, 0.0001, 1.0),
        "base_confidence": ("float", 0.68, 0.5, 1.0),
        "time_decay_seconds": ("int", 300, 60, 600),
        "momentum_window": ("int", 10, 5, 50),
        "hysteresis": ("bool", True, None, None),
        "confirm_seconds": ("float", 1.0, 0.0, 600.0),
        "rearm_margin": ("float", 0.2, 0.0, 1.0),
    }
    default_cooldown_ms = 300_000
    consumed = (Trade,)
    # built directly: cross-field-invalid sets (e.g. all weights 0) must not crash either
    cross_field_valid = False

    def scenario(self) -> list[MarketEvent]:
        return list(series(RISING, step_ms=100))

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return trade_streams()

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert isinstance(event, Trade)
        assert isinstance(params, TradeMomentumParams)
        assert decision.price == decision.current_price == event.price
        assert event.quantity >= params.min_quantity
        indicators = decision.indicators
        for name in ("momentum", "tick_score", "volume_score", "count_score"):
            assert -1.0 - 1e-9 <= indicators[name] <= 1.0 + 1e-9, name
        assert indicators["window_trades"] == params.momentum_window
