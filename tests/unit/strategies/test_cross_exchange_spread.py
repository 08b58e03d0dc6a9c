"""Cross-exchange spread strategy: rules, cooldown, configuration, schema and robustness."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import pytest
from hypothesis import strategies as st

from domain.config import ConfigDocument
from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    MarketEvent,
    Trade,
    VenueQuote,
)
from domain.params import CommonParams, ParamValue
from domain.signal import Action
from domain.strategies.base import Decision
from domain.strategies.cross_exchange_spread import (
    MAX_VENUES_PER_SYMBOL,
    CrossExchangeSpreadParams,
    CrossExchangeSpreadStrategy,
)
from tests.unit.strategies.contract import IntervalStrategyContract
from tests.unit.strategies.support import (
    MINUTE,
    SAMPLE_TIME_MS,
    SECOND,
    SpecRow,
    config_doc,
    engine_with,
    run,
)

pytestmark = pytest.mark.unit

SID = "cross_exchange_spread"
T0 = SAMPLE_TIME_MS  # 2024-08-09T00:00:00Z


# --- builders ------------------------------------------------------------------------------


def make_params(**values: ParamValue) -> CrossExchangeSpreadParams:
    return CrossExchangeSpreadParams.from_mapping(values)


def quote(venue: str, t: int, bid: float, ask: float, symbol: str = "BTCUSDT") -> VenueQuote:
    return VenueQuote(venue=venue, symbol=symbol, event_time_ms=t, bid=bid, ask=ask)


def book(t: int, bid: float, ask: float, symbol: str = "BTCUSDT") -> DepthSnapshot:
    """The home venue's (Binance) partial book."""
    return DepthSnapshot(
        symbol=symbol,
        event_time_ms=t,
        bids=((bid, 2.0), (bid * 0.999, 5.0)),
        asks=((ask, 1.5), (ask * 1.001, 4.0)),
    )


def last_decision(
    events: list[MarketEvent], params: CrossExchangeSpreadParams | None = None
) -> Decision | None:
    return run(CrossExchangeSpreadStrategy(), events, params)[-1]


# --- rules ---------------------------------------------------------------------------------


def test_buy_at_home_when_home_has_the_lowest_ask() -> None:
    decision = last_decision([quote("coinbase", T0, 100.7, 100.8), book(T0 + 100, 99.9, 100.0)])

    assert decision is not None
    assert decision.symbol == "BTCUSDT"
    assert decision.action is Action.BUY
    assert decision.price == 100.0  # home ask
    assert decision.current_price == pytest.approx(99.95)  # home mid
    # spread 0.7 % against 0.5 %: 0.5 + 0.45 * 0.4
    assert decision.confidence == pytest.approx(0.68)
    assert decision.quantity == pytest.approx(500.0 * 0.68 / 100.0)
    assert decision.metadata["other_venue"] == "coinbase"
    assert decision.metadata["buy_venue"] == "binance"
    assert decision.metadata["sell_venue"] == "coinbase"
    assert decision.metadata["buy_price"] == 100.0
    assert decision.metadata["sell_price"] == 100.7
    assert decision.metadata["spread_percent"] == pytest.approx(0.7)
    assert decision.indicators["spread_percent"] == pytest.approx(0.7)


def test_sell_at_home_when_home_has_the_highest_bid() -> None:
    decision = last_decision([quote("kraken", T0, 99.0, 99.3), book(T0 + 5, 100.0, 100.1)])

    assert decision is not None
    assert decision.action is Action.SELL
    assert decision.price == 100.0  # home bid
    assert decision.metadata["other_venue"] == "kraken"
    assert decision.metadata["buy_venue"] == "kraken"
    assert decision.metadata["sell_venue"] == "binance"
    assert decision.metadata["buy_price"] == 99.3
    assert decision.metadata["sell_price"] == 100.0
    spread = (100.0 - 99.3) / 99.3 * 100.0
    assert decision.metadata["spread_percent"] == pytest.approx(spread)
    assert decision.confidence == pytest.approx(0.5 + 0.45 * (spread - 0.5) / 0.5)


def test_no_signal_when_the_spread_is_within_the_threshold() -> None:
    events: list[MarketEvent] = [quote("coinbase", T0, 100.4, 100.5), book(T0, 99.9, 100.0)]
    assert last_decision(events) is None
    assert last_decision(events, make_params(spread_threshold_percent=0.3)) is not None


def test_no_signal_when_home_is_neither_the_cheapest_nor_the_richest() -> None:
    decision = last_decision(
        [
            quote("kraken", T0, 98.9, 99.0),  # cheapest ask
            quote("coinbase", T0, 101.0, 101.1),  # richest bid
            book(T0, 99.9, 100.0),
        ]
    )
    assert decision is None


def test_no_signal_with_a_single_venue() -> None:
    assert last_decision([book(T0, 99.9, 100.0), book(T0 + 100, 99.0, 100.0)]) is None
    assert last_decision([quote("coinbase", T0, 100.7, 100.8)]) is None
    assert last_decision([quote("coinbase", T0, 100.7, 100.8), quote("kraken", T0, 99, 99.1)]) is (
        None  # two venues, but home has not quoted
    )


def test_quotes_older_than_60_seconds_are_stale() -> None:
    fresh: list[MarketEvent] = [
        quote("coinbase", T0, 100.7, 100.8),
        book(T0 + 60 * SECOND, 99.9, 100.0),
    ]
    stale: list[MarketEvent] = [
        quote("coinbase", T0, 100.7, 100.8),
        book(T0 + 60 * SECOND + 1, 99.9, 100.0),
    ]
    assert last_decision(fresh) is not None
    assert last_decision(stale) is None
    stale_home: list[MarketEvent] = [
        quote("kraken", T0, 99.0, 99.5),
        book(T0, 99.9, 100.0),
        quote("coinbase", T0 + 61 * SECOND, 100.7, 100.8),
    ]
    assert last_decision(stale_home) is None


def test_a_quote_from_the_home_venue_counts_as_the_home_quote() -> None:
    decision = last_decision(
        [quote("binance", T0, 99.9, 100.0), quote("coinbase", T0 + 1, 100.7, 100.8)]
    )
    assert decision is not None
    assert decision.action is Action.BUY


def test_home_venue_is_a_constructor_argument() -> None:
    strategy = CrossExchangeSpreadStrategy(home_venue="kraken")
    decisions = run(
        strategy,
        [quote("coinbase", T0, 100.7, 100.8), book(T0 + 1, 99.9, 100.0)],
    )
    decision = decisions[-1]
    assert decision is not None
    assert decision.metadata["buy_venue"] == "kraken"
    assert set(strategy.quotes("BTCUSDT")) == {"coinbase", "kraken"}


def test_the_best_other_venue_is_the_counterparty() -> None:
    decision = last_decision(
        [
            quote("coinbase", T0, 100.7, 100.8),
            quote("kraken", T0, 101.0, 101.2),
            quote("okx", T0, 100.2, 100.3),
            book(T0, 99.9, 100.0),
        ]
    )
    assert decision is not None
    assert decision.action is Action.BUY
    assert decision.metadata["other_venue"] == "kraken"
    assert decision.metadata["sell_price"] == 101.0
    assert decision.confidence == pytest.approx(0.95)  # 1 % is twice the threshold


def test_a_tie_with_home_goes_to_home() -> None:
    decision = last_decision(
        [
            quote("kraken", T0, 99.8, 100.0),  # same lowest ask as home
            quote("coinbase", T0, 100.7, 100.8),
            book(T0, 99.9, 100.0),
        ]
    )
    assert decision is not None
    assert decision.metadata["buy_venue"] == "binance"


def test_an_older_quote_of_a_venue_does_not_replace_a_newer_one() -> None:
    strategy = CrossExchangeSpreadStrategy()
    decisions = run(
        strategy,
        [
            quote("coinbase", T0 + SECOND, 100.1, 100.2),
            quote("coinbase", T0, 100.7, 100.8),  # late arrival
            book(T0 + 2 * SECOND, 99.9, 100.0),
        ],
    )
    assert decisions[-1] is None
    assert strategy.quotes("BTCUSDT")["coinbase"] == (100.1, 100.2, T0 + SECOND)


def test_depth_of_an_unquoted_symbol_is_not_consumed() -> None:
    strategy = CrossExchangeSpreadStrategy()
    ethusdt = book(T0, 2_999.0, 3_000.0, symbol="ETHUSDT")
    assert strategy.config_symbol(ethusdt) is None
    assert strategy.on_event(ethusdt, make_params()) is None
    assert strategy.quotes("ETHUSDT") == {}

    q = quote("coinbase", T0, 3_000.0, 3_001.0, symbol="ETHUSDT")
    assert strategy.config_symbol(q) == "ETHUSDT"
    strategy.on_event(q, make_params())
    assert strategy.config_symbol(ethusdt) == "ETHUSDT"
    assert strategy.config_symbol(DominanceObservation(T0, 50.0)) is None
    trade = Trade("ETHUSDT", T0, 1, 3_000.0, 1.0, is_buyer_maker=False)
    assert strategy.config_symbol(trade) is None
    assert strategy.on_event(trade, make_params()) is None


def test_a_one_sided_home_book_removes_the_home_quote() -> None:
    strategy = CrossExchangeSpreadStrategy()
    run(strategy, [quote("coinbase", T0, 100.7, 100.8), book(T0, 99.9, 100.0)])
    empty_asks = DepthSnapshot("BTCUSDT", T0 + 1, bids=((99.9, 1.0),), asks=())

    assert strategy.on_event(empty_asks, make_params()) is None
    assert "binance" not in strategy.quotes("BTCUSDT")


def test_a_symbol_whose_other_venues_went_silent_is_forgotten() -> None:
    strategy = CrossExchangeSpreadStrategy()
    run(strategy, [quote("coinbase", T0, 100.7, 100.8), book(T0, 99.9, 100.0)])
    later = book(T0 + 11 * MINUTE, 99.9, 100.0)

    assert strategy.config_symbol(later) == "BTCUSDT"
    assert strategy.on_event(later, make_params()) is None
    assert strategy.config_symbol(later) is None
    assert strategy.quotes("BTCUSDT") == {}


def test_venues_per_symbol_are_bounded() -> None:
    strategy = CrossExchangeSpreadStrategy()
    for i in range(3 * MAX_VENUES_PER_SYMBOL):
        strategy.on_event(quote(f"venue{i}", T0 + i, 100.0, 100.1), make_params())
    kept = strategy.quotes("BTCUSDT")

    assert len(kept) == MAX_VENUES_PER_SYMBOL
    assert f"venue{3 * MAX_VENUES_PER_SYMBOL - 1}" in kept  # the newest survive
    assert "venue0" not in kept


# --- cooldown and configuration through the engine ----------------------------------------


def test_min_signal_interval_suppresses_a_repeat_until_it_has_passed() -> None:
    engine = engine_with(CrossExchangeSpreadStrategy())

    def feed(event: MarketEvent) -> list[Action]:
        return [s.action for s in engine.process(event)]

    assert feed(quote("coinbase", T0, 100.7, 100.8)) == []
    assert feed(book(T0 + 100, 99.9, 100.0)) == [Action.BUY]
    assert feed(book(T0 + 200, 99.9, 100.0)) == []  # same opportunity, inside 300 s
    assert feed(quote("coinbase", T0 + 299 * SECOND, 100.7, 100.8)) == []
    assert feed(book(T0 + 300 * SECOND + 100, 99.9, 100.0)) == [Action.BUY]


def test_signal_from_the_engine_uses_the_strategy_quantity() -> None:
    engine = engine_with(CrossExchangeSpreadStrategy())
    engine.process(quote("coinbase", T0, 100.7, 100.8))

    [signal] = engine.process(book(T0 + 100, 99.9, 100.0))

    assert signal.strategy_id == "cross_exchange_spread"
    assert signal.quantity == pytest.approx(500.0 * signal.confidence / 100.0, abs=1e-8)
    assert signal.stop_loss == pytest.approx(99.0)
    assert signal.take_profit == pytest.approx(101.5)


def test_a_symbol_override_changes_the_outcome_for_that_symbol_only() -> None:
    def signals(overrides: Mapping[str, ConfigDocument]) -> dict[str, float]:
        engine = engine_with(CrossExchangeSpreadStrategy(), overrides)
        out: dict[str, float] = {}
        for symbol in ("BTCUSDT", "ETHUSDT"):
            engine.process(quote("coinbase", T0, 100.7, 100.8, symbol=symbol))
            for s in engine.process(book(T0 + 1, 99.9, 100.0, symbol=symbol)):
                out[s.symbol] = s.quantity
        return out

    default = signals({})
    assert set(default) == {"BTCUSDT", "ETHUSDT"}

    silenced = signals({"BTCUSDT": config_doc(SID, "BTCUSDT", 2, spread_threshold_percent=1.0)})
    assert set(silenced) == {"ETHUSDT"}

    sized = signals({"ETHUSDT": config_doc(SID, "ETHUSDT", 2, max_position_size=1000.0)})
    assert sized["ETHUSDT"] == pytest.approx(2 * default["ETHUSDT"])
    assert sized["BTCUSDT"] == pytest.approx(default["BTCUSDT"])


# --- schema and validation -----------------------------------------------------------------


def test_no_cross_field_rule_binds_in_range_values() -> None:
    extremes = make_params(
        spread_threshold_percent=5.0, min_signal_interval=60, max_position_size=100.0
    )
    assert extremes.cross_field_errors() == []


# --- properties ----------------------------------------------------------------------------


def _finite_prices(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


@st.composite
def _bid_ask(draw: st.DrawFn, prices: st.SearchStrategy[float]) -> tuple[float, float]:
    bid = draw(prices)
    ask = draw(st.one_of(st.just(bid), prices.filter(lambda p: p >= bid)))
    return bid, ask


def _events(prices: st.SearchStrategy[float]) -> st.SearchStrategy[MarketEvent]:
    times = st.integers(T0, T0 + 5 * MINUTE)
    symbols = st.sampled_from(["BTCUSDT", "ETHUSDT"])

    @st.composite
    def venue_quote(draw: st.DrawFn) -> VenueQuote:
        bid, ask = draw(_bid_ask(prices))
        venue = draw(st.sampled_from(["binance", "coinbase", "kraken", "okx"]))
        return VenueQuote(venue, draw(symbols), draw(times), bid, ask)

    @st.composite
    def depth(draw: st.DrawFn) -> DepthSnapshot:
        bid, ask = draw(_bid_ask(prices))
        if ask <= bid:
            ask = math.nextafter(bid, math.inf)
        bids = ((bid, 1.0),) if draw(st.integers(0, 9)) else ()
        asks = ((ask, 1.0),) if draw(st.integers(0, 9)) else ()
        return DepthSnapshot(draw(symbols), draw(times), bids, asks)

    return st.one_of(venue_quote(), depth())


class TestContract(IntervalStrategyContract):
    strategy_id = SID
    warmup = 1  # another venue's quote
    schema: ClassVar[dict[str, SpecRow]] = {
        "spread_threshold_percent": ("float", 0.5, 0.1, 5.0),
        "min_signal_interval": ("int", 300, 60, 3600),
        "max_position_size": ("float", 500.0, 100.0, 10000.0),
        "cooldown_seconds": ("int", 0, 0, 86400),
    }
    default_cooldown_ms = 300_000

    def scenario(self) -> list[MarketEvent]:
        return [quote("coinbase", T0, 100.7, 100.8), book(T0 + 100, 99.9, 100.0)]

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(_finite_prices(1e-4, 1e6)), max_size=40)

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert isinstance(params, CrossExchangeSpreadParams)
        assert 0.0 < decision.current_price < math.inf
        assert decision.quantity is not None
        assert 0.0 < decision.quantity < math.inf
        assert decision.metadata["buy_venue"] != decision.metadata["sell_venue"]
        spread = decision.metadata["spread_percent"]
        assert isinstance(spread, float)
        assert math.isfinite(spread)
        assert spread > params.spread_threshold_percent

    def extreme_event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(_finite_prices(1e-300, 1e300)), max_size=30)
