"""orderbook_skew: imbalance of the top book levels, spread and volume filters, confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.config import resolve
from domain.market import DepthSnapshot, Level, MarketEvent
from domain.params import CommonParams, ParamValidationError
from domain.signal import Action, Signal
from domain.strategies.base import Decision
from domain.strategies.orderbook_skew import OrderbookSkewParams, OrderbookSkewStrategy
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
)

pytestmark = pytest.mark.unit

SID = "orderbook_skew"
DEFAULTS = judged_alone(OrderbookSkewParams)
T0 = 1_723_161_255_000


def book(
    bids: Sequence[Level],
    asks: Sequence[Level],
    *,
    symbol: str = "BTCUSDT",
    time_ms: int = T0,
) -> DepthSnapshot:
    return DepthSnapshot(symbol=symbol, event_time_ms=time_ms, bids=tuple(bids), asks=tuple(asks))


def levels(best: float, step: float, quantities: Sequence[float]) -> list[Level]:
    return [(best + i * step, q) for i, q in enumerate(quantities)]


def skewed_book(
    bid_qty: float, ask_qty: float, *, symbol: str = "BTCUSDT", time_ms: int = T0
) -> DepthSnapshot:
    """Five levels a side of equal quantity around 50000.00/50001.00 (spread 0.002 %)."""
    return book(
        levels(50000.0, -1.0, [bid_qty] * 5),
        levels(50001.0, 1.0, [ask_qty] * 5),
        symbol=symbol,
        time_ms=time_ms,
    )


def expected_confidence(
    params: OrderbookSkewParams, strength: float, spread_percent: float
) -> float:
    tight = min(1.0, max(0.0, 1.0 - spread_percent / params.min_spread_percent))
    strength = min(1.0, max(0.0, strength))
    blend = (params.imbalance_weight * strength + params.spread_weight * tight) / (
        params.imbalance_weight + params.spread_weight
    )
    base = params.base_confidence
    return min(0.95, base + (0.95 - base) * blend)


# --- protocol -------------------------------------------------------------------------


def test_the_docstring_explains_the_filters() -> None:
    assert OrderbookSkewStrategy.__doc__ is not None
    assert "min_spread_percent" in OrderbookSkewStrategy.__doc__


# --- decisions ------------------------------------------------------------------------


def test_buy_when_bids_outweigh_asks() -> None:
    decision = decide(OrderbookSkewStrategy(), skewed_book(2.0, 1.0), DEFAULTS)

    assert decision is not None
    assert decision.symbol == "BTCUSDT"
    assert decision.action is Action.BUY
    assert decision.price == 50000.0  # best bid
    assert decision.current_price == 50000.5  # mid
    spread = 1.0 / 50000.0 * 100.0
    assert dict(decision.indicators) == pytest.approx(
        {"bid_volume": 10.0, "ask_volume": 5.0, "ratio": 2.0, "spread_percent": spread}
    )
    assert dict(decision.metadata) == {"top_bid": 50000.0, "top_ask": 50001.0}
    # strength min(1, (2 - 1.2) / 1.2) = 2/3; tightness 1 - 0.002/0.1 = 0.98
    expected = 0.70 + 0.25 * (0.6 * (2 / 3) + 0.4 * 0.98)
    assert decision.confidence == pytest.approx(expected)
    assert decision.confidence == pytest.approx(expected_confidence(DEFAULTS, 2 / 3, spread))
    assert decision.quantity is None


def test_sell_when_asks_outweigh_bids() -> None:
    decision = decide(OrderbookSkewStrategy(), skewed_book(1.0, 2.0), DEFAULTS)

    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.price == 50001.0  # best ask
    assert decision.current_price == 50000.5
    assert decision.indicators["ratio"] == pytest.approx(0.5)
    # strength min(1, (0.8 - 0.5) / 0.8) = 0.375
    expected = 0.70 + 0.25 * (0.6 * 0.375 + 0.4 * (1 - (1 / 50000 * 100) / 0.1))
    assert decision.confidence == pytest.approx(expected)


def test_signal_through_the_engine_has_levels_and_size() -> None:
    engine = engine_with(OrderbookSkewStrategy())
    (signal,) = engine.process(skewed_book(2.0, 1.0))
    assert signal.strategy_id == SID
    assert signal.action is Action.BUY
    assert signal.price == 50000.0
    assert signal.stop_loss == pytest.approx(49500.0)
    assert signal.take_profit == pytest.approx(50750.0)
    assert signal.quantity == pytest.approx(100.0 / 50000.0)
    assert signal.config.source == "default"
    assert not signal.config.is_override


@pytest.mark.parametrize(
    ("bids", "asks", "why"),
    [
        (levels(100.0, -0.01, [1.0] * 5), levels(100.01, 0.01, [1.0] * 5), "balanced"),
        (levels(100.0, -0.01, [1.19] * 5), levels(100.01, 0.01, [1.0] * 5), "just below buy"),
        (levels(100.0, -0.01, [0.81] * 5), levels(100.01, 0.01, [1.0] * 5), "just above sell"),
        (levels(100.0, -0.01, [2.0] * 5), levels(100.2, 0.01, [1.0] * 5), "spread 0.2 % > 0.1"),
        (levels(100.0, -0.01, [1.0] * 5), levels(100.2, 0.01, [2.0] * 5), "wide spread (sell)"),
        (levels(100.0, -0.01, [0.0002] * 3), levels(100.01, 0.01, [0.0001] * 3), "too thin"),
        ([], levels(100.01, 0.01, [1.0] * 5), "no bids"),
        (levels(100.0, -0.01, [1.0] * 5), [], "no asks"),
        ([], [], "empty book"),
        (levels(100.0, -0.01, [1.0] * 5), levels(100.01, 0.01, [0.0] * 5), "ask volume zero"),
        (levels(100.0, -0.01, [0.0] * 5), levels(100.01, 0.01, [0.0] * 5), "both sides zero"),
    ],
)
def test_no_signal(bids: list[Level], asks: list[Level], why: str) -> None:
    assert decide(OrderbookSkewStrategy(), book(bids, asks), DEFAULTS) is None, why


def test_ratio_exactly_at_threshold_is_not_a_signal() -> None:
    params = OrderbookSkewParams.from_mapping(
        {"hysteresis": False, "buy_threshold": 2.0, "sell_threshold": 0.5}
    )
    strategy = OrderbookSkewStrategy()
    assert decide(strategy, skewed_book(2.0, 1.0), params) is None
    assert decide(strategy, skewed_book(1.0, 2.0), params) is None


def test_spread_exactly_at_the_limit_is_allowed() -> None:
    # 0.5 / 128 * 100 = 0.390625 exactly in binary floating point
    params = OrderbookSkewParams.from_mapping({"hysteresis": False, "min_spread_percent": 0.390625})
    strategy = OrderbookSkewStrategy()
    decision = decide(strategy, book([(128.0, 3.0)], [(128.5, 1.0)]), params)
    assert decision is not None
    assert decision.indicators["spread_percent"] == 0.390625
    assert decide(strategy, book([(128.0, 3.0)], [(128.5001, 1.0)]), params) is None
    # no tightness left: the blend is the imbalance part only (strength capped at 1)
    assert decision.confidence == pytest.approx(0.70 + 0.25 * 0.6, rel=1e-6)


def test_only_the_top_levels_count() -> None:
    # A huge 6th ask level would flip the ratio if it were counted.
    bids = levels(100.0, -0.01, [2.0] * 6)
    asks = [*levels(100.01, 0.01, [1.0] * 5), (100.06, 1000.0)]
    strategy = OrderbookSkewStrategy()
    buy = decide(strategy, book(bids, asks), DEFAULTS)
    assert buy is not None
    assert buy.action is Action.BUY
    assert buy.indicators["ask_volume"] == pytest.approx(5.0)
    six = OrderbookSkewParams.from_mapping({"hysteresis": False, "top_levels": 6})
    sell = decide(strategy, book(bids, asks), six)
    assert sell is not None
    assert sell.action is Action.SELL
    assert sell.indicators["ask_volume"] == pytest.approx(1005.0)


def test_only_the_top_bid_levels_count() -> None:
    bids = [*levels(100.0, -0.01, [1.0] * 5), (99.95, 1000.0)]
    asks = levels(100.01, 0.01, [2.0] * 6)
    decision = decide(OrderbookSkewStrategy(), book(bids, asks), DEFAULTS)
    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.indicators["bid_volume"] == pytest.approx(5.0)
    one = OrderbookSkewParams.from_mapping({"hysteresis": False, "top_levels": 1})
    top = decide(OrderbookSkewStrategy(), book(bids, asks), one)
    assert top is not None
    assert top.indicators["bid_volume"] == 1.0
    assert top.indicators["ask_volume"] == 2.0


def test_fewer_levels_than_top_levels_uses_what_is_there() -> None:
    decision = decide(
        OrderbookSkewStrategy(), book([(100.0, 3.0), (99.99, 1.0)], [(100.01, 1.0)]), DEFAULTS
    )
    assert decision is not None
    assert decision.indicators["bid_volume"] == pytest.approx(4.0)
    assert decision.indicators["ratio"] == pytest.approx(4.0)


def test_confidence_grows_with_imbalance_and_is_capped() -> None:
    strategy = OrderbookSkewStrategy()
    confidences = []
    for bid_qty in (1.3, 1.6, 2.0, 2.4, 10.0, 1e6):
        decision = decide(strategy, skewed_book(bid_qty, 1.0), DEFAULTS)
        assert decision is not None
        confidences.append(decision.confidence)
    assert confidences == sorted(confidences)
    assert confidences[0] > DEFAULTS.base_confidence
    assert confidences[-1] == confidences[-2]  # strength saturates at 1
    assert all(c <= 0.95 for c in confidences)


def test_confidence_grows_with_tighter_spread() -> None:
    strategy = OrderbookSkewStrategy()
    wide = decide(strategy, book([(100.0, 2.0)], [(100.09, 1.0)]), DEFAULTS)
    tight = decide(strategy, book([(100.0, 2.0)], [(100.01, 1.0)]), DEFAULTS)
    assert wide is not None
    assert tight is not None
    assert tight.confidence > wide.confidence


def test_weights_shape_the_confidence() -> None:
    strategy = OrderbookSkewStrategy()
    imbalance_only = OrderbookSkewParams.from_mapping({"hysteresis": False, "spread_weight": 0.0})
    spread_only = OrderbookSkewParams.from_mapping({"hysteresis": False, "imbalance_weight": 0.0})
    a = decide(strategy, skewed_book(2.0, 1.0), imbalance_only)
    b = decide(strategy, skewed_book(2.0, 1.0), spread_only)
    assert a is not None
    assert b is not None
    assert a.confidence == pytest.approx(0.70 + 0.25 * (2 / 3))
    assert b.confidence == pytest.approx(0.70 + 0.25 * (1 - 0.002 / 0.1))


def test_base_confidence_above_the_cap_is_capped() -> None:
    params = OrderbookSkewParams.from_mapping({"hysteresis": False, "base_confidence": 1.0})
    decision = decide(OrderbookSkewStrategy(), skewed_book(1.21, 1.0), params)
    assert decision is not None
    assert decision.confidence == 0.95


# --- cooldown and configuration -------------------------------------------------------


def test_cooldown_blocks_every_action_and_the_reversal_waits_longer() -> None:
    layer = config_doc(SID, None, 1, cooldown_seconds=30, reversal_cooldown_seconds=60)
    engine = engine_with(OrderbookSkewStrategy(), global_doc=layer)
    emitted: list[Signal] = []
    for offset_ms in (0, 100, 15_000, 29_999):
        emitted += engine.process(skewed_book(2.0, 1.0, time_ms=T0 + offset_ms))
    assert len(emitted) == 1
    # the opposite action inside the cooldown: suppressed too (no buy -> sell flip-flop)
    emitted += engine.process(skewed_book(1.0, 2.0, time_ms=T0 + 100))
    emitted += engine.process(skewed_book(1.0, 2.0, time_ms=T0 + 29_999))
    # past the cooldown but inside the reversal cooldown: still no sell
    emitted += engine.process(skewed_book(1.0, 2.0, time_ms=T0 + 45_000))
    # the same action again once the cooldown is over
    emitted += engine.process(skewed_book(2.0, 1.0, time_ms=T0 + 50_000))
    # the opposite action once the reversal cooldown has passed since the last signal
    emitted += engine.process(skewed_book(1.0, 2.0, time_ms=T0 + 109_999))
    emitted += engine.process(skewed_book(1.0, 2.0, time_ms=T0 + 110_000))
    assert [(s.action, s.event_time_ms) for s in emitted] == [
        (Action.BUY, T0),
        (Action.BUY, T0 + 50_000),
        (Action.SELL, T0 + 110_000),
    ]
    outcomes = engine.stats.outcomes
    assert outcomes[(SID, "cooldown")] == 5
    assert outcomes[(SID, "reversal")] == 2


def test_cooldown_is_per_symbol() -> None:
    engine = engine_with(OrderbookSkewStrategy())
    first = engine.process(skewed_book(2.0, 1.0, symbol="BTCUSDT"))
    second = engine.process(skewed_book(2.0, 1.0, symbol="ETHUSDT", time_ms=T0 + 1))
    assert [s.symbol for s in first + second] == ["BTCUSDT", "ETHUSDT"]


def test_symbol_override_changes_only_that_symbol() -> None:
    # ratio 2.0 buys at the default threshold 1.2, not at the ETHUSDT override 2.5
    override = config_doc(SID, "ETHUSDT", 3, buy_threshold=2.5)
    engine = engine_with(OrderbookSkewStrategy(), {"ETHUSDT": override})
    btc = engine.process(skewed_book(2.0, 1.0, symbol="BTCUSDT"))
    eth = engine.process(skewed_book(2.0, 1.0, symbol="ETHUSDT"))
    assert [s.action for s in btc] == [Action.BUY]
    assert eth == []
    assert not btc[0].config.is_override
    # a stronger skew passes the override, and the signal carries it (other fields inherited)
    (eth_signal,) = engine.process(skewed_book(3.0, 1.0, symbol="ETHUSDT"))
    assert eth_signal.config.is_override
    assert eth_signal.config.version == 3
    assert eth_signal.config.parameters["buy_threshold"] == 2.5
    assert eth_signal.config.parameters["sell_threshold"] == 0.8


def test_global_config_and_disabled_symbol() -> None:
    global_doc = config_doc(SID, None, 1, min_spread_percent=0.01)
    disabled = config_doc(SID, "ETHUSDT", 2, enabled=False)
    engine = engine_with(OrderbookSkewStrategy(), {"ETHUSDT": disabled}, global_doc=global_doc)
    # spread 0.02 % is now too wide globally
    wide = book([(100.0, 2.0)], [(100.02, 1.0)])
    assert engine.process(wide) == []
    assert len(engine.process(skewed_book(2.0, 1.0))) == 1  # spread 0.002 %
    assert engine.process(skewed_book(2.0, 1.0, symbol="ETHUSDT")) == []


# --- parameters -----------------------------------------------------------------------


def test_cross_field_weights_must_not_both_be_zero() -> None:
    errors = rejection(OrderbookSkewParams, {"imbalance_weight": 0.0, "spread_weight": 0.0})
    assert_one_cross_field_error(errors, "weight")
    both = OrderbookSkewParams(
        imbalance_weight=0.0, spread_weight=0.0, buy_threshold=1.0, sell_threshold=1.0
    )
    assert len(both.cross_field_errors()) == 2


def test_symbol_override_cannot_break_a_cross_field_rule_with_global_values() -> None:
    global_doc = config_doc(SID, None, 1, sell_threshold=1.0)
    override = config_doc(SID, "BTCUSDT", 2, buy_threshold=1.0)
    with pytest.raises(ParamValidationError):
        resolve(OrderbookSkewParams, SID, "BTCUSDT", global_doc=global_doc, symbol_doc=override)


# --- properties -----------------------------------------------------------------------


PRICES = st.one_of(
    st.floats(min_value=1e-8, max_value=1e7),
    st.floats(min_value=5e-324, max_value=1.7976931348623157e308),
)
QUANTITIES = st.one_of(
    st.just(0.0),
    st.floats(min_value=5e-324, max_value=1e-6),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=1e300, max_value=1.7976931348623157e308),
)


@st.composite
def scattered_books(draw: st.DrawFn) -> DepthSnapshot:
    """Any prices at all (mostly very wide spreads)."""
    prices = sorted(draw(st.sets(PRICES, min_size=0, max_size=30)))
    split = draw(st.integers(0, len(prices)))
    bids = [(p, draw(QUANTITIES)) for p in reversed(prices[:split])]
    asks = [(p, draw(QUANTITIES)) for p in prices[split:]]
    return book(bids, asks)


@st.composite
def tight_books(draw: st.DrawFn) -> DepthSnapshot:
    """Books with spreads around the limits, at any price scale, sides possibly empty."""
    best_bid = draw(st.one_of(st.floats(1e-8, 1e7), st.floats(5e-324, 1e300)))
    spread = draw(st.floats(min_value=0.0, max_value=0.015))
    best_ask = max(best_bid * (1.0 + spread), math.nextafter(best_bid, math.inf))
    step = best_bid * draw(st.floats(min_value=0.0, max_value=1e-3))
    quantity = st.one_of(st.floats(0.0, 10.0), QUANTITIES)
    bids = [(best_bid - i * step, draw(quantity)) for i in range(draw(st.integers(0, 25)))]
    asks = [(best_ask + i * step, draw(quantity)) for i in range(draw(st.integers(0, 25)))]
    return book([level for level in bids if level[0] > 0.0], asks)


def books() -> st.SearchStrategy[MarketEvent]:
    return st.one_of(scattered_books(), tight_books(), tight_books())


@property_settings(200)
@given(
    bid_qty=st.floats(min_value=0.0, max_value=1e6),
    ask_qty=st.floats(min_value=0.0, max_value=1e6),
    best_bid=st.floats(min_value=0.01, max_value=1e6),
    spread=st.floats(min_value=1e-6, max_value=0.02),
)
def test_signals_through_the_engine_on_realistic_books(
    bid_qty: float, ask_qty: float, best_bid: float, spread: float
) -> None:
    best_ask = best_bid * (1.0 + spread)
    snapshot = book(
        levels(best_bid, -best_bid * 1e-4, [bid_qty] * 5),
        levels(best_ask, best_bid * 1e-4, [ask_qty] * 5),
    )
    engine = engine_with(OrderbookSkewStrategy())
    signals = engine.process(snapshot)  # building the Signal validates it
    assert len(signals) <= 1
    for signal in signals:
        assert 0.70 <= signal.confidence <= 0.95


class TestContract(ThresholdStrategyContract):
    strategy_id = SID
    metric = "ratio"
    schema: ClassVar[dict[str, SpecRow]] = {
        "cooldown_seconds": ("int", 300, 0, 86400),
        "top_levels": ("int", 5, 1, 20),
        "buy_threshold": ("float", 1.2, 1.0, 3.0),
        "sell_threshold": ("float", 0.8, 0.3, 1.0),
        "min_spread_percent": ("float", 0.1, 0.01, 1.0),
        "base_confidence": ("float", 0.70, 0.5, 1.0),
        "imbalance_weight": ("float", 0.6, 0.0, 1.0),
        "spread_weight": ("float", 0.4, 0.0, 1.0),
        "min_total_volume": ("float", 0.001, 0.0001, 10.0),
        "hysteresis": ("bool", True, None, None),
        "confirm_seconds": ("float", 1.0, 0.0, 600.0),
        "rearm_margin": ("float", 0.1, 0.0, 1.0),
    }
    default_cooldown_ms = 300_000
    consumed = (DepthSnapshot,)
    # built directly: cross-field-invalid sets (e.g. both weights 0) must not crash either
    cross_field_valid = False
    property_examples = 400

    def scenario(self) -> list[MarketEvent]:
        return [skewed_book(1.0, 1.0), skewed_book(2.0, 1.0, time_ms=T0 + 100)]

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(books(), min_size=1, max_size=5)

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert isinstance(event, DepthSnapshot)
        assert isinstance(params, OrderbookSkewParams)
        assert decision.symbol == event.symbol
        assert event.best_bid is not None
        assert event.best_ask is not None
        expected_price = event.best_bid if decision.action is Action.BUY else event.best_ask
        assert decision.price == expected_price
        assert decision.indicators["spread_percent"] <= params.min_spread_percent
