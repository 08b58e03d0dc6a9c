"""ticker_velocity: % per minute of event time over a window, volume confirmation, acceleration."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.market import MarketEvent, Ticker
from domain.params import CommonParams, ParamValue
from domain.signal import Action, Signal
from domain.strategies.base import Decision
from domain.strategies.ticker_velocity import TickerVelocityParams, TickerVelocityStrategy
from tests.unit.strategies.contract import ThresholdStrategyContract
from tests.unit.strategies.support import (
    SpecRow,
    config_doc,
    decide,
    engine_with,
    judged_alone,
    property_settings,
    run,
)

pytestmark = pytest.mark.unit

SID = "ticker_velocity"
DEFAULTS = judged_alone(TickerVelocityParams)
T0 = 1_723_161_256_000
QV0 = 1_000_000_000.0  # 24h quote volume at the start


def ticker(
    time_ms: int, price: float, quote_volume: float = QV0, *, symbol: str = "BTCUSDT"
) -> Ticker:
    return Ticker(
        symbol=symbol,
        event_time_ms=time_ms,
        last_price=price,
        price_change=0.0,
        price_change_percent=0.0,
        open_price=price,
        high_price=price,
        low_price=price,
        volume=1.0,
        quote_volume=quote_volume,
        best_bid=price,
        best_ask=price,
    )


def path(
    price_at: Callable[[float], float],
    seconds: int,
    *,
    step_ms: int = 1000,
    volume_per_minute: float = 1.0,
    symbol: str = "BTCUSDT",
    start_ms: int = T0,
) -> list[Ticker]:
    """Tickers every ``step_ms`` for ``seconds``; price_at(seconds since start); the 24h
    quote volume changes by ``volume_per_minute`` percent of QV0 per minute."""
    out = []
    for offset in range(0, seconds * 1000 + 1, step_ms):
        s = offset / 1000.0
        volume = QV0 * (1.0 + volume_per_minute / 100.0 * s / 60.0)
        out.append(ticker(start_ms + offset, price_at(s), volume, symbol=symbol))
    return out


def linear(percent_per_minute: float, start: float = 100.0) -> Callable[[float], float]:
    return lambda s: start * (1.0 + percent_per_minute / 100.0 * s / 60.0)


def first_decision(decisions: list[Decision | None]) -> tuple[int, Decision]:
    for index, decision in enumerate(decisions):
        if decision is not None:
            return index, decision
    raise AssertionError("no decision")


def params(**values: ParamValue) -> TickerVelocityParams:
    return TickerVelocityParams.from_mapping({"hysteresis": False, **values})


# --- protocol -------------------------------------------------------------------------


def test_the_docstring_explains_the_filters() -> None:
    assert TickerVelocityStrategy.__doc__ is not None
    assert "min_volume_change" in TickerVelocityStrategy.__doc__


# --- decisions ------------------------------------------------------------------------


def test_fast_move_fires_at_default_params() -> None:
    decisions = run(TickerVelocityStrategy(), path(linear(1.0), 300))
    index, decision = first_decision(decisions)
    # nothing before the points span half the 60 s window
    assert index == 30
    assert decision.action is Action.BUY
    assert decision.indicators["velocity"] == pytest.approx(1.0)
    assert decision.indicators["window_seconds"] == 30.0
    # and from then on every ticker of the move is a buy
    assert all(d is not None and d.action is Action.BUY for d in decisions[30:])
    last = decisions[-1]
    assert last is not None
    assert last.indicators["window_seconds"] == 60.0  # older points left the window


def test_realistic_slow_move_does_not_fire() -> None:
    assert run(TickerVelocityStrategy(), path(linear(0.2), 600)) == [None] * 601
    assert run(TickerVelocityStrategy(), path(linear(-0.2), 600)) == [None] * 601


def test_buy_decision_fields() -> None:
    decisions = run(TickerVelocityStrategy(), path(linear(0.75), 60))
    index, decision = first_decision(decisions)
    assert index == 30
    price = linear(0.75)(30.0)
    assert decision.symbol == "BTCUSDT"
    assert decision.action is Action.BUY
    assert decision.price == decision.current_price == price
    indicators = dict(decision.indicators)
    acceleration = indicators.pop("acceleration")
    assert indicators == pytest.approx(
        {
            "velocity": 0.75,
            "price_change_percent": 0.375,
            "window_seconds": 30.0,
            "volume_change_percent": 0.5,
        }
    )
    # a linear move in price is a hair slower in percent of a rising price: no lift
    assert -0.01 < acceleration < 0.0
    # excess (0.75 - 0.5) / 0.5 = 0.5 of the way from 0.65 to 0.95
    assert decision.confidence == pytest.approx(0.80)


def test_sell_on_a_fast_fall() -> None:
    decisions = run(TickerVelocityStrategy(), path(linear(-0.75), 60))
    index, decision = first_decision(decisions)
    assert index == 30
    assert decision.action is Action.SELL
    assert decision.price == decision.current_price == linear(-0.75)(30.0)
    assert decision.indicators["velocity"] == pytest.approx(-0.75)
    assert decision.indicators["price_change_percent"] == pytest.approx(-0.375)
    # a linear fall in % of a falling price accelerates a hair in the sell direction
    lift = 0.5 * min(1.0, max(0.0, -decision.indicators["acceleration"]) / 0.5)
    assert lift < 0.01
    assert decision.confidence == pytest.approx(0.80 + lift * 0.15)


def test_no_decision_before_half_the_window_even_on_a_huge_move() -> None:
    decisions = run(TickerVelocityStrategy(), path(linear(50.0), 29))
    assert decisions == [None] * 30


def test_window_of_300_seconds_needs_150_seconds() -> None:
    decisions = run(TickerVelocityStrategy(), path(linear(1.0), 200), params(time_window=300))
    index, decision = first_decision(decisions)
    assert index == 150
    assert decision.indicators["window_seconds"] == 150.0


def test_falling_24h_volume_means_no_confirmation() -> None:
    falling_volume = path(linear(1.0), 120, volume_per_minute=-1.0)
    assert run(TickerVelocityStrategy(), falling_volume) == [None] * 121
    # the same move without volume confirmation fires
    unconfirmed = params(volume_confirmation=False)
    _, decision = first_decision(run(TickerVelocityStrategy(), falling_volume, unconfirmed))
    assert decision.action is Action.BUY
    assert decision.indicators["volume_change_percent"] == pytest.approx(-0.5)


def test_volume_rise_below_min_volume_change_is_not_enough() -> None:
    # 0.35 %/min of volume: 0.175 % after 30 s, >= 0.2 % from 34.3 s on
    decisions = run(TickerVelocityStrategy(), path(linear(1.0), 60, volume_per_minute=0.35))
    index, decision = first_decision(decisions)
    assert index == 35
    assert decision.indicators["volume_change_percent"] == pytest.approx(0.35 * 35 / 60)


def test_zero_quote_volume_never_confirms() -> None:
    flat_zero = [ticker(t.event_time_ms, t.last_price, 0.0) for t in path(linear(1.0), 90)]
    assert run(TickerVelocityStrategy(), flat_zero) == [None] * 91


def test_min_price_change_filters_small_moves() -> None:
    # window 30 s: decisions from 15 s; 0.5 %/min gives 0.125 % .. 0.25 % over the window
    loose = params(time_window=30, buy_threshold=0.1, min_price_change=0.21)
    strict = params(time_window=30, buy_threshold=0.1, min_price_change=1.0)
    tickers = path(linear(0.5), 60)
    index, decision = first_decision(run(TickerVelocityStrategy(), tickers, loose))
    assert index == 26  # 0.5 * 26 / 60 = 0.217 % (0.5 * 25 / 60 = 0.208 %)
    assert decision.indicators["price_change_percent"] == pytest.approx(0.5 * 26 / 60)
    assert run(TickerVelocityStrategy(), tickers, strict) == [None] * 61


def test_acceleration_lifts_confidence() -> None:
    def accelerating(s: float) -> float:  # flat, then +1.2 %/min
        return 100.0 if s <= 30 else linear(1.2)(s - 30)

    def decelerating(s: float) -> float:  # +1.2 %/min, then flat
        return linear(1.2)(min(s, 30.0))

    for weight, shape, expected_accel, expected_conf in [
        (0.5, accelerating, 1.2, 0.71 + 0.5 * (0.95 - 0.71)),
        (0.0, accelerating, 1.2, 0.71),
        (0.5, decelerating, -1.2, 0.71),
    ]:
        decision = run(
            TickerVelocityStrategy(), path(shape, 60), params(acceleration_weight=weight)
        )[-1]
        assert decision is not None
        assert decision.action is Action.BUY
        # 0.6 % over one minute: velocity 0.6, excess (0.6 - 0.5) / 0.5 = 0.2 -> 0.71
        assert decision.indicators["velocity"] == pytest.approx(0.6)
        assert decision.indicators["acceleration"] == pytest.approx(expected_accel, abs=0.01)
        assert decision.confidence == pytest.approx(expected_conf, abs=1e-3)


def test_acceleration_in_the_sell_direction_lifts_a_sell() -> None:
    def falling_faster(s: float) -> float:
        return 100.0 if s <= 30 else linear(-1.2)(s - 30)

    decision = run(TickerVelocityStrategy(), path(falling_faster, 60))[-1]
    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.indicators["acceleration"] == pytest.approx(-1.2, abs=0.01)
    assert decision.confidence == pytest.approx(0.71 + 0.5 * 0.24, abs=1e-3)


def test_velocity_uses_event_time_not_ticker_count() -> None:
    # the same move sampled every 5 s or every 250 ms gives the same velocity
    move = linear(1.0)
    expected = (move(90.0) - move(30.0)) / move(30.0) * 100.0  # over the last minute
    for step_ms in (5000, 250):
        decision = run(TickerVelocityStrategy(), path(move, 90, step_ms=step_ms))[-1]
        assert decision is not None
        assert decision.indicators["velocity"] == pytest.approx(expected)
        assert decision.indicators["window_seconds"] == 60.0


def test_out_of_order_ticker_is_ignored() -> None:
    strategy = TickerVelocityStrategy()
    tickers = path(linear(1.0), 40)
    run(strategy, tickers)
    kept = list(strategy._windows["BTCUSDT"].times)
    stale = ticker(T0 + 10_000, 500.0, QV0 * 2)  # would be a huge move if it counted
    assert decide(strategy, stale, DEFAULTS) is None
    assert list(strategy._windows["BTCUSDT"].times) == kept
    after = decide(strategy, ticker(T0 + 41_000, linear(1.0)(41.0), QV0 * 1.01), DEFAULTS)
    assert after is not None
    assert after.indicators["velocity"] == pytest.approx(1.0)


def test_gap_in_the_feed_restarts_the_window() -> None:
    strategy = TickerVelocityStrategy()
    run(strategy, path(linear(1.0), 40))
    # 5 minutes later: the old points are out of the window, only one point is left
    assert decide(strategy, ticker(T0 + 340_000, 110.0, QV0 * 1.05), DEFAULTS) is None


def test_history_stays_bounded_for_fast_ticker_streams() -> None:
    strategy = TickerVelocityStrategy()
    decisions = run(strategy, path(linear(1.0), 120, step_ms=10))  # 100 tickers/s
    window = strategy._windows["BTCUSDT"]
    assert len(window.times) <= 2 * 256 + 2
    last = decisions[-1]
    assert last is not None
    span = last.indicators["window_seconds"]
    assert span == pytest.approx(60.0, abs=0.3)
    move = linear(1.0)
    oldest = move(120.0 - span)
    expected = (move(120.0) - oldest) / oldest * 100.0 / (span / 60.0)
    assert last.indicators["velocity"] == pytest.approx(expected)
    strategy.forget_symbol("BTCUSDT")
    assert "BTCUSDT" not in strategy._windows


def test_symbols_are_independent() -> None:
    strategy = TickerVelocityStrategy()
    up = path(linear(1.0), 30, symbol="BTCUSDT")
    down = path(linear(-1.0), 30, symbol="ETHUSDT")
    interleaved = [t for pair in zip(up, down, strict=True) for t in pair]
    decisions = [d for d in run(strategy, interleaved) if d is not None]
    assert [(d.symbol, d.action) for d in decisions] == [
        ("BTCUSDT", Action.BUY),
        ("ETHUSDT", Action.SELL),
    ]


# --- cooldown and configuration -------------------------------------------------------


def test_cooldown_suppresses_repeats_within_60_seconds() -> None:
    engine = engine_with(
        TickerVelocityStrategy(), global_doc=config_doc(SID, None, 1, cooldown_seconds=60)
    )
    emitted: list[Signal] = []
    for t in path(linear(1.0), 180):
        emitted += engine.process(t)
    # a decision every second from 30 s on; one signal per 60 s
    assert [(s.action, (s.event_time_ms - T0) // 1000) for s in emitted] == [
        (Action.BUY, 30),
        (Action.BUY, 90),
        (Action.BUY, 150),
    ]
    first = emitted[0]
    assert first.price == pytest.approx(100.5)
    assert first.stop_loss == pytest.approx(100.5 * 0.99)
    assert first.take_profit == pytest.approx(100.5 * 1.015)


def test_symbol_override_changes_only_that_symbol() -> None:
    override = config_doc(SID, "ETHUSDT", 2, buy_threshold=2.0)
    engine = engine_with(TickerVelocityStrategy(), {"ETHUSDT": override})
    btc: list[Signal] = []
    eth: list[Signal] = []
    for t in path(linear(1.0), 60, symbol="BTCUSDT"):
        btc += engine.process(t)
    for t in path(linear(1.0), 60, symbol="ETHUSDT"):
        eth += engine.process(t)
    assert [s.action for s in btc] == [Action.BUY]
    assert eth == []
    # a faster move passes the override
    for t in path(linear(3.0), 60, symbol="ETHUSDT", start_ms=T0 + 600_000):
        eth += engine.process(t)
    assert [s.action for s in eth] == [Action.BUY]
    assert eth[0].config.is_override
    assert eth[0].config.parameters["buy_threshold"] == 2.0
    assert eth[0].config.parameters["time_window"] == 60


# --- properties -----------------------------------------------------------------------


@property_settings(100)
@given(
    rate=st.floats(min_value=-5.0, max_value=5.0),
    volume_rate=st.floats(min_value=-2.0, max_value=5.0),
    step_ms=st.sampled_from([250, 1000, 3000]),
)
def test_linear_moves_decide_by_their_rate(rate: float, volume_rate: float, step_ms: int) -> None:
    tickers = path(linear(rate), 90, step_ms=step_ms, volume_per_minute=volume_rate)
    last = run(TickerVelocityStrategy(), tickers)[-1]
    # at 90 s the window holds [30 s, 90 s]: one minute
    velocity = (tickers[-1].last_price / linear(rate)(30.0) - 1.0) * 100.0
    volume_change = volume_rate / (1.0 + volume_rate / 100.0 * 0.5)
    if abs(velocity) > 0.5 * 1.001 and volume_change > 0.2 * 1.001:
        assert last is not None
        assert last.action is (Action.BUY if rate > 0 else Action.SELL)
        assert last.indicators["velocity"] == pytest.approx(velocity, rel=1e-6)
        assert last.indicators["volume_change_percent"] == pytest.approx(volume_change)
    elif abs(velocity) < 0.5 * 0.999 or volume_change < 0.2 * 0.999:
        assert last is None


MAX = 1.7976931348623157e308
PRICES = st.one_of(
    st.floats(min_value=90.0, max_value=110.0),
    st.floats(min_value=5e-324, max_value=MAX),
)
VOLUMES = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e12),
    st.floats(min_value=0.0, max_value=MAX),
)


@st.composite
def ticker_streams(draw: st.DrawFn) -> list[MarketEvent]:
    count = draw(st.integers(1, 120))
    symbols = draw(st.lists(st.sampled_from(["BTCUSDT", "ETHUSDT"]), min_size=1, max_size=2))
    monotonic = draw(st.booleans())
    time_ms = draw(st.integers(0, 2**62))
    tickers: list[MarketEvent] = []
    for _ in range(count):
        if monotonic:
            time_ms += draw(st.integers(0, 20_000))
        else:
            time_ms = draw(st.integers(0, 2**62))
        tickers.append(
            ticker(time_ms, draw(PRICES), draw(VOLUMES), symbol=draw(st.sampled_from(symbols)))
        )
    return tickers


class TestContract(ThresholdStrategyContract):
    strategy_id = SID
    metric = "velocity"
    warmup = 30  # half the 60 s window
    schema: ClassVar[dict[str, SpecRow]] = {
        "cooldown_seconds": ("int", 300, 0, 86400),
        "time_window": ("int", 60, 30, 300),
        "buy_threshold": ("float", 0.5, 0.1, 2.0),
        "sell_threshold": ("float", -0.5, -2.0, -0.1),
        "min_price_change": ("float", 0.1, 0.01, 1.0),
        "base_confidence": ("float", 0.65, 0.5, 1.0),
        "acceleration_weight": ("float", 0.5, 0.0, 1.0),
        "volume_confirmation": ("bool", True, None, None),
        "min_volume_change": ("float", 0.2, 0.1, 2.0),
        "hysteresis": ("bool", True, None, None),
        "confirm_seconds": ("float", 5.0, 0.0, 600.0),
        "rearm_margin": ("float", 0.2, 0.0, 2.0),
    }
    default_cooldown_ms = 300_000
    consumed = (Ticker,)
    cross_field_valid = False  # built directly: invalid sets must not crash either

    def scenario(self) -> list[MarketEvent]:
        return list(path(linear(0.75), 60))

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return ticker_streams()

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert isinstance(event, Ticker)
        assert isinstance(params, TickerVelocityParams)
        assert decision.price == decision.current_price == event.last_price
        indicators = decision.indicators
        assert params.time_window / 2 <= indicators["window_seconds"] <= params.time_window
        assert abs(indicators["price_change_percent"]) >= params.min_price_change
        if params.volume_confirmation:
            assert indicators["volume_change_percent"] >= params.min_volume_change
