"""BTC dominance strategy: rules, cooldown, configuration, schema and robustness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.config import ConfigDocument
from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    ExchangeFlow,
    FlowDirection,
    MarketEvent,
    Ticker,
    Trade,
    VenueQuote,
    WhaleTransfer,
)
from domain.params import CommonParams, ParamValue
from domain.signal import Action
from domain.strategies.base import Decision
from domain.strategies.btc_dominance import (
    MAX_HISTORY_POINTS,
    BtcDominanceParams,
    BtcDominanceStrategy,
)
from tests.unit.strategies.contract import IntervalStrategyContract
from tests.unit.strategies.support import (
    HOUR,
    SAMPLE_TIME_MS,
    SECOND,
    SpecRow,
    assert_decision_in_bounds,
    assert_one_cross_field_error,
    config_doc,
    depth_at,
    engine_with,
    params_from_schema,
    property_settings,
    rejection,
    run,
    ticker_at,
    trade_at,
)

pytestmark = pytest.mark.unit

SID = "btc_dominance"
T0 = SAMPLE_TIME_MS  # 2024-08-09T00:00:00Z
BTC_PRICE = 60_000.0


# --- builders ------------------------------------------------------------------------------


def make_params(**values: ParamValue) -> BtcDominanceParams:
    return BtcDominanceParams.from_mapping(values)


def dominance(t: int, value: float) -> DominanceObservation:
    return DominanceObservation(event_time_ms=t, btc_dominance=value)


def trade(t: int, price: float = BTC_PRICE, symbol: str = "BTCUSDT") -> Trade:
    return trade_at(symbol, t, price)


def ticker(t: int, last: float, symbol: str = "BTCUSDT") -> Ticker:
    return ticker_at(symbol, t, last)


def depth(t: int, bid: float, ask: float, symbol: str = "BTCUSDT") -> DepthSnapshot:
    return depth_at(symbol, t, bid, ask)


def last_decision(
    events: list[MarketEvent], params: BtcDominanceParams | None = None
) -> Decision | None:
    return run(BtcDominanceStrategy(), events, params)[-1]


# --- rules ---------------------------------------------------------------------------------


def test_buy_when_dominance_is_high_and_rising() -> None:
    decision = last_decision([trade(T0), dominance(T0, 68.0), dominance(T0 + HOUR, 72.0)])

    assert decision is not None
    assert decision.symbol == "BTCUSDT"
    assert decision.action is Action.BUY
    assert decision.price == BTC_PRICE
    assert decision.current_price == BTC_PRICE
    # 2 points past high_threshold, measured in units of change_threshold (5): 0.5 + 0.45 * 0.4
    assert decision.confidence == pytest.approx(0.68)
    assert decision.metadata["trend"] == "rising"
    assert decision.metadata["rotation"] == "to_btc"
    assert decision.metadata["dominance"] == 72.0
    assert decision.metadata["change"] == pytest.approx(4.0)
    assert decision.indicators == {"dominance": 72.0, "dominance_change": pytest.approx(4.0)}
    assert decision.quantity is None


def test_sell_with_rotation_to_alts_when_dominance_is_low_and_falling() -> None:
    decision = last_decision([trade(T0), dominance(T0, 42.0), dominance(T0 + HOUR, 38.0)])

    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.price == BTC_PRICE
    assert decision.confidence == pytest.approx(0.68)
    assert decision.metadata["trend"] == "falling"
    assert decision.metadata["rotation"] == "to_alts"
    assert decision.indicators["dominance_change"] == pytest.approx(-4.0)


@pytest.mark.parametrize(
    ("start", "end", "action", "trend"),
    [(50.0, 56.0, Action.BUY, "rising"), (56.0, 50.0, Action.SELL, "falling")],
)
def test_a_change_beyond_change_threshold_signals_in_its_direction(
    start: float, end: float, action: Action, trend: str
) -> None:
    decision = last_decision([trade(T0), dominance(T0, start), dominance(T0 + 6 * HOUR, end)])

    assert decision is not None
    assert decision.action is action
    assert decision.metadata["trend"] == trend
    assert decision.metadata["rotation"] is None
    assert decision.metadata["rule"] == "dominance_change"
    assert decision.confidence == pytest.approx(0.5 + 0.45 * 0.2)  # 1 point past 5


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (50.0, 52.0),  # mid-range, small change
        (75.0, 73.0),  # high but falling, small change
        (35.0, 37.0),  # low but rising, small change
        (72.0, 72.0),  # high but flat
        (38.0, 38.0),  # low but flat
    ],
)
def test_no_signal_without_a_qualifying_level_or_change(start: float, end: float) -> None:
    assert last_decision([trade(T0), dominance(T0, start), dominance(T0 + HOUR, end)]) is None


def test_high_but_falling_by_more_than_change_threshold_sells() -> None:
    decision = last_decision([trade(T0), dominance(T0, 85.0), dominance(T0 + HOUR, 78.0)])

    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.metadata["rule"] == "dominance_change"


def test_first_observation_alone_never_signals() -> None:
    assert last_decision([trade(T0), dominance(T0, 90.0)]) is None
    assert last_decision([trade(T0), dominance(T0, 5.0)]) is None


def test_no_signal_without_a_known_btc_price_then_signal_once_known() -> None:
    strategy = BtcDominanceStrategy()
    decisions = run(
        strategy,
        [
            dominance(T0, 50.0),
            dominance(T0 + HOUR, 57.0),  # qualifies, but no price yet
            trade(T0 + HOUR + SECOND, 61_000.0),
            dominance(T0 + 2 * HOUR, 57.5),
        ],
    )

    assert decisions[1] is None
    assert decisions[2] is None  # price events never decide
    final = decisions[3]
    assert final is not None
    assert final.action is Action.BUY
    assert final.price == 61_000.0


def test_price_comes_from_btc_trades_tickers_and_depth_mid_only() -> None:
    strategy = BtcDominanceStrategy()
    params = make_params()
    assert strategy.on_event(ticker(T0, 59_000.0), params) is None
    assert strategy.price == 59_000.0
    assert strategy.on_event(depth(T0 + 1, 59_100.0, 59_102.0), params) is None
    assert strategy.price == pytest.approx(59_101.0)
    assert strategy.on_event(trade(T0 + 2, 3_000.0, symbol="ETHUSDT"), params) is None
    assert strategy.price == pytest.approx(59_101.0)
    one_sided = DepthSnapshot(symbol="BTCUSDT", event_time_ms=T0 + 3, bids=((1.0, 1.0),), asks=())
    assert strategy.on_event(one_sided, params) is None
    assert strategy.price == pytest.approx(59_101.0)
    assert strategy.on_event(trade(T0 - HOUR, 10.0), params) is None  # older: ignored
    assert strategy.price == pytest.approx(59_101.0)


def test_config_symbol_is_btcusdt_for_dominance_and_btc_price_events_only() -> None:
    strategy = BtcDominanceStrategy()
    assert strategy.config_symbol(dominance(T0, 50.0)) == "BTCUSDT"
    assert strategy.config_symbol(trade(T0)) == "BTCUSDT"
    assert strategy.config_symbol(ticker(T0, 1.0)) == "BTCUSDT"
    assert strategy.config_symbol(depth(T0, 1.0, 2.0)) == "BTCUSDT"
    assert strategy.config_symbol(trade(T0, symbol="ETHUSDT")) is None
    assert strategy.config_symbol(depth(T0, 1.0, 2.0, symbol="ETHUSDT")) is None
    quote = VenueQuote(venue="coinbase", symbol="BTCUSDT", event_time_ms=T0, bid=1.0, ask=2.0)
    assert strategy.config_symbol(quote) is None
    whale = WhaleTransfer("BTC", T0, 500.0, FlowDirection.TO_EXCHANGE)
    assert strategy.config_symbol(whale) is None


def test_change_is_measured_within_window_hours_of_event_time() -> None:
    events: list[MarketEvent] = [trade(T0), dominance(T0, 50.0), dominance(T0 + 25 * HOUR, 56.0)]

    assert last_decision(events, make_params(window_hours=24)) is None
    decision = last_decision(events, make_params(window_hours=48))
    assert decision is not None
    assert decision.action is Action.BUY


def test_reference_is_the_oldest_observation_inside_the_window() -> None:
    decision = last_decision(
        [
            trade(T0),
            dominance(T0, 40.0),  # falls out of the 24 h window
            dominance(T0 + 2 * HOUR, 50.0),
            dominance(T0 + 12 * HOUR, 53.0),
            dominance(T0 + 25 * HOUR, 55.5),
        ]
    )

    assert decision is not None
    assert decision.metadata["reference_dominance"] == 50.0
    assert decision.metadata["change"] == pytest.approx(5.5)


def test_out_of_order_observation_is_ignored() -> None:
    strategy = BtcDominanceStrategy()
    decisions = run(
        strategy,
        [
            trade(T0),
            dominance(T0 + HOUR, 50.0),
            dominance(T0, 80.0),
            dominance(T0 + 2 * HOUR, 51.0),
        ],
    )

    assert decisions[2] is None
    assert decisions[3] is None  # 80 was not taken into the history
    assert strategy.history_points == 2


def test_confidence_grows_with_the_excess_and_is_capped() -> None:
    small = last_decision([trade(T0), dominance(T0, 70.0), dominance(T0 + HOUR, 70.5)])
    large = last_decision([trade(T0), dominance(T0, 70.0), dominance(T0 + HOUR, 73.0)])
    huge = last_decision([trade(T0), dominance(T0, 50.0), dominance(T0 + HOUR, 90.0)])

    assert small is not None
    assert large is not None
    assert huge is not None
    assert 0.5 <= small.confidence < large.confidence < huge.confidence
    assert huge.confidence == pytest.approx(0.95)


def test_history_is_bounded_whatever_the_feed_rate() -> None:
    strategy = BtcDominanceStrategy()
    params = make_params(window_hours=168)
    for i in range(20_000):
        strategy.on_event(dominance(T0 + i * 10 * SECOND, 50.0 + (i % 7) * 0.01), params)

    assert strategy.history_points <= MAX_HISTORY_POINTS


# --- cooldown and configuration through the engine ----------------------------------------


def test_min_signal_interval_suppresses_a_repeat_until_it_has_passed() -> None:
    engine = engine_with(BtcDominanceStrategy())

    def feed(event: MarketEvent) -> list[Action]:
        return [s.action for s in engine.process(event)]

    assert feed(trade(T0)) == []
    assert feed(dominance(T0, 60.0)) == []
    assert feed(dominance(T0 + HOUR, 66.0)) == [Action.BUY]
    assert feed(dominance(T0 + 2 * HOUR, 67.0)) == []  # qualifies, inside 14400 s
    assert feed(dominance(T0 + 5 * HOUR - SECOND, 67.5)) == []
    assert feed(dominance(T0 + 5 * HOUR, 68.0)) == [Action.BUY]


def test_signal_from_the_engine_is_sized_and_stamped() -> None:
    engine = engine_with(BtcDominanceStrategy())
    for event in (trade(T0), dominance(T0, 60.0)):
        engine.process(event)

    [signal] = engine.process(dominance(T0 + HOUR, 66.0))

    assert signal.strategy_id == "btc_dominance"
    assert signal.symbol == "BTCUSDT"
    assert signal.quantity == pytest.approx(100.0 / BTC_PRICE, abs=1e-8)
    assert signal.stop_loss == pytest.approx(BTC_PRICE * 0.99)
    assert signal.take_profit == pytest.approx(BTC_PRICE * 1.015)
    assert signal.event_time_ms == T0 + HOUR
    assert signal.config.source == "default"


def test_a_btcusdt_override_changes_the_outcome_and_another_symbols_does_not() -> None:
    events: list[MarketEvent] = [trade(T0), dominance(T0, 60.0), dominance(T0 + HOUR, 66.0)]

    def signals(overrides: Mapping[str, ConfigDocument]) -> list[Action]:
        engine = engine_with(BtcDominanceStrategy(), overrides)
        return [s.action for e in events for s in engine.process(e)]

    assert signals({}) == [Action.BUY]
    assert signals({"BTCUSDT": config_doc(SID, "BTCUSDT", 2, change_threshold=10.0)}) == []
    eth_override = config_doc(SID, "ETHUSDT", 2, change_threshold=10.0)
    assert signals({"ETHUSDT": eth_override}) == [Action.BUY]


def test_a_signal_carries_the_symbol_override_it_was_computed_with() -> None:
    override = config_doc(SID, "BTCUSDT", 3, change_threshold=3.0)
    engine = engine_with(BtcDominanceStrategy(), {"BTCUSDT": override})
    engine.process(trade(T0))
    engine.process(dominance(T0, 60.0))

    [signal] = engine.process(dominance(T0 + HOUR, 64.0))  # 4 points: only with 3.0

    assert signal.config.is_override is True
    assert signal.config.version == 3
    assert signal.config.parameters["change_threshold"] == 3.0
    assert signal.config.parameters["high_threshold"] == 70.0


# --- schema and validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"), [(60.0, 55.0), (55.0, 55.0), (60.0, 50.0)], ids=["above", "equal", "edges"]
)
def test_low_threshold_must_be_below_high_threshold(low: float, high: float) -> None:
    errors = rejection(BtcDominanceParams, {"low_threshold": low, "high_threshold": high})
    assert_one_cross_field_error(errors, "low_threshold")


def test_low_just_below_high_is_valid() -> None:
    params = make_params(low_threshold=55.0, high_threshold=55.5)
    assert params.cross_field_errors() == []


# --- properties ----------------------------------------------------------------------------

_times = st.integers(min_value=T0 - 48 * HOUR, max_value=T0 + 400 * HOUR)
_prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)

# in range and low_threshold < high_threshold
VALID_PARAMS = params_from_schema(BtcDominanceParams, cross_field_valid=True)


_symbols = st.sampled_from(["BTCUSDT", "ETHUSDT"])


def _events(prices: st.SearchStrategy[float]) -> st.SearchStrategy[MarketEvent]:
    """Events of every type, priced by ``prices``."""

    @st.composite
    def depth(draw: st.DrawFn) -> DepthSnapshot:
        bid = draw(prices)
        ask = bid * (1.0 + draw(st.floats(1e-6, 0.1)))
        bids = ((bid, draw(st.floats(0.0, 100.0))),) if draw(st.booleans()) else ()
        asks = ((ask, draw(st.floats(0.0, 100.0))),) if draw(st.booleans()) else ()
        return DepthSnapshot(draw(_symbols), draw(_times), bids, asks)

    return st.one_of(
        st.builds(DominanceObservation, event_time_ms=_times, btc_dominance=st.floats(0.0, 100.0)),
        st.builds(trade, _times, prices, _symbols),
        st.builds(ticker, _times, prices, _symbols),
        depth(),
        st.builds(
            VenueQuote,
            venue=st.just("coinbase"),
            symbol=_symbols,
            event_time_ms=_times,
            bid=st.just(1.0),
            ask=st.just(1.5),
        ),
        st.builds(
            WhaleTransfer,
            asset=st.just("BTC"),
            event_time_ms=_times,
            amount=prices,
            direction=st.sampled_from(FlowDirection),
        ),
        st.builds(
            ExchangeFlow,
            asset=st.just("BTC"),
            event_time_ms=_times,
            inflow=st.floats(0.0, 1e6),
            outflow=st.floats(0.0, 1e6),
            period_seconds=st.just(3600),
        ),
    )


@property_settings(200)
@given(
    params=VALID_PARAMS,
    values=st.lists(st.floats(0.0, 100.0), min_size=2, max_size=30),
    gaps=st.lists(st.integers(0, 30 * HOUR), min_size=30, max_size=30),
)
def test_ordered_dominance_series_signal_only_per_the_rules(
    params: BtcDominanceParams, values: list[float], gaps: list[int]
) -> None:
    strategy = BtcDominanceStrategy()
    strategy.on_event(trade(T0), params)
    t = T0
    for value, gap in zip(values, gaps, strict=False):
        t += gap
        decision = strategy.on_event(dominance(t, value), params)
        if decision is None:
            continue
        assert not isinstance(decision, str)
        assert_decision_in_bounds(decision, min_confidence=0.5)
        assert decision.symbol == "BTCUSDT"
        change = decision.indicators["dominance_change"]
        assert decision.indicators["dominance"] == value
        if decision.action is Action.BUY:
            assert change > 0.0
            assert value > params.high_threshold or change >= params.change_threshold
        else:
            assert change < 0.0
            assert value < params.low_threshold or -change >= params.change_threshold


class TestContract(IntervalStrategyContract):
    strategy_id = SID
    warmup = 2  # a price and a first observation
    schema: ClassVar[dict[str, SpecRow]] = {
        "high_threshold": ("float", 70.0, 50.0, 95.0),
        "low_threshold": ("float", 40.0, 10.0, 60.0),
        "change_threshold": ("float", 5.0, 0.5, 30.0),
        "window_hours": ("int", 24, 1, 168),
        "min_signal_interval": ("int", 14400, 60, 604800),
        "cooldown_seconds": ("int", 0, 0, 86400),
    }
    default_cooldown_ms = 14_400_000

    def scenario(self) -> list[MarketEvent]:
        return [trade(T0), dominance(T0, 68.0), dominance(T0 + HOUR, 72.0)]

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(_prices), max_size=40)

    def extreme_event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(st.floats(1e-300, 1e300)), max_size=30)

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert decision.symbol == "BTCUSDT"
