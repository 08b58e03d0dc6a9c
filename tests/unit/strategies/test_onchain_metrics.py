"""On-chain metrics strategy: rules, cooldown, configuration, schema and robustness."""

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
from domain.strategies.onchain_metrics import OnchainMetricsParams, OnchainMetricsStrategy
from tests.unit.strategies.contract import IntervalStrategyContract
from tests.unit.strategies.support import (
    HOUR,
    MINUTE,
    SAMPLE_TIME_MS,
    SECOND,
    SpecRow,
    config_doc,
    depth_at,
    engine_with,
    run,
    ticker_at,
    trade_at,
)

pytestmark = pytest.mark.unit

SID = "onchain_metrics"
T0 = SAMPLE_TIME_MS  # 2024-08-09T00:00:00Z
PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 2_500.0, "SOLUSDT": 150.0}

TO = FlowDirection.TO_EXCHANGE
FROM = FlowDirection.FROM_EXCHANGE


# --- builders ------------------------------------------------------------------------------


def make_params(**values: ParamValue) -> OnchainMetricsParams:
    return OnchainMetricsParams.from_mapping(values)


def trade(t: int, symbol: str, price: float | None = None) -> Trade:
    return trade_at(symbol, t, PRICES[symbol] if price is None else price, taker_sell=True)


def ticker(t: int, symbol: str, last: float) -> Ticker:
    return ticker_at(symbol, t, last)


def depth(t: int, symbol: str, bid: float, ask: float) -> DepthSnapshot:
    return depth_at(symbol, t, bid, ask)


def whale(t: int, asset: str, amount: float, direction: FlowDirection) -> WhaleTransfer:
    return WhaleTransfer(asset=asset, event_time_ms=t, amount=amount, direction=direction)


def flow(t: int, asset: str, inflow: float, outflow: float) -> ExchangeFlow:
    return ExchangeFlow(
        asset=asset, event_time_ms=t, inflow=inflow, outflow=outflow, period_seconds=3600
    )


def priced(*events: MarketEvent) -> list[MarketEvent]:
    """Prefix ``events`` with a trade of every known symbol, so prices are known."""
    return [*(trade(T0 - SECOND, s) for s in PRICES), *events]


def last_decision(
    events: list[MarketEvent], params: OnchainMetricsParams | None = None
) -> Decision | None:
    return run(OnchainMetricsStrategy(), events, params)[-1]


# --- whale transfers -----------------------------------------------------------------------


def test_whale_moving_btc_into_an_exchange_is_a_sell() -> None:
    decision = last_decision(priced(whale(T0, "BTC", 250.0, TO)))

    assert decision is not None
    assert decision.symbol == "BTCUSDT"
    assert decision.action is Action.SELL
    assert decision.price == PRICES["BTCUSDT"]
    assert decision.current_price == PRICES["BTCUSDT"]
    assert decision.confidence == pytest.approx(0.5 + 0.45 * math.log10(2.5))
    assert decision.metadata["event_type"] == "whale_transfer"
    assert decision.metadata["direction"] == "to_exchange"
    assert decision.metadata["amount"] == 250.0
    assert decision.metadata["threshold"] == 100.0
    assert decision.indicators == {"whale_amount": 250.0, "whale_threshold": 100.0}


def test_whale_withdrawing_eth_from_an_exchange_is_a_buy() -> None:
    decision = last_decision(priced(whale(T0, "ETH", 1_500.0, FROM)))

    assert decision is not None
    assert decision.symbol == "ETHUSDT"
    assert decision.action is Action.BUY
    assert decision.price == PRICES["ETHUSDT"]
    assert decision.metadata["threshold"] == 1_000.0


@pytest.mark.parametrize(
    ("asset", "amount"),
    [("BTC", 99.99), ("ETH", 999.0), ("SOL", 1e9), ("BTC", 1_000.0 / 11)],
)
def test_no_signal_below_the_threshold_or_for_assets_without_one(asset: str, amount: float) -> None:
    assert last_decision(priced(whale(T0, asset, amount, TO))) is None
    assert last_decision(priced(whale(T0, asset, amount, FROM))) is None


def test_a_transfer_exactly_at_the_threshold_signals_with_the_lowest_confidence() -> None:
    decision = last_decision(priced(whale(T0, "BTC", 100.0, FROM)))
    assert decision is not None
    assert decision.confidence == pytest.approx(0.5)


def test_whale_confidence_grows_with_size_and_caps_at_ten_times_the_threshold() -> None:
    confidences = []
    for amount in (150.0, 400.0, 1_000.0, 50_000.0):
        decision = last_decision(priced(whale(T0, "BTC", amount, TO)))
        assert decision is not None
        confidences.append(decision.confidence)

    assert confidences == sorted(confidences)
    assert confidences[0] < confidences[1] < confidences[2]
    assert confidences[2] == pytest.approx(0.95)
    assert confidences[3] == pytest.approx(0.95)


def test_whale_thresholds_come_from_params() -> None:
    params = make_params(whale_threshold_btc=500.0, whale_threshold_eth=100.0)
    assert last_decision(priced(whale(T0, "BTC", 250.0, TO)), params) is None
    eth = last_decision(priced(whale(T0, "ETH", 150.0, TO)), params)
    assert eth is not None
    assert eth.action is Action.SELL


# --- exchange flows ------------------------------------------------------------------------


def test_net_exchange_outflow_beyond_the_threshold_is_a_buy() -> None:
    decision = last_decision(priced(flow(T0, "ETH", inflow=300.0, outflow=700.0)))

    assert decision is not None
    assert decision.symbol == "ETHUSDT"
    assert decision.action is Action.BUY
    assert decision.metadata["net_flow"] == -400.0
    assert decision.metadata["net_flow_share_percent"] == pytest.approx(40.0)
    assert decision.metadata["flow_direction"] == "net_outflow"
    assert decision.metadata["period_seconds"] == 3600
    assert decision.confidence == pytest.approx(0.5 + 0.45 * 30.0 / 90.0)
    assert decision.indicators["net_flow_share_percent"] == pytest.approx(40.0)


def test_net_exchange_inflow_beyond_the_threshold_is_a_sell() -> None:
    decision = last_decision(priced(flow(T0, "SOL", inflow=700.0, outflow=300.0)))

    assert decision is not None
    assert decision.symbol == "SOLUSDT"
    assert decision.action is Action.SELL
    assert decision.price == PRICES["SOLUSDT"]
    assert decision.metadata["flow_direction"] == "net_inflow"


@pytest.mark.parametrize(
    ("inflow", "outflow"),
    [(520.0, 480.0), (55.0, 45.0), (500.0, 500.0), (0.0, 0.0)],
    ids=["within", "exactly-at-threshold", "balanced", "empty"],
)
def test_no_signal_for_flows_within_the_threshold(inflow: float, outflow: float) -> None:
    assert last_decision(priced(flow(T0, "BTC", inflow, outflow))) is None


def test_one_sided_flow_has_full_share_and_maximum_confidence() -> None:
    decision = last_decision(priced(flow(T0, "BTC", inflow=0.0, outflow=12.0)))
    assert decision is not None
    assert decision.action is Action.BUY
    assert decision.confidence == pytest.approx(0.95)


# --- prices --------------------------------------------------------------------------------


def test_no_signal_without_a_known_price_of_the_symbol() -> None:
    strategy = OnchainMetricsStrategy()
    decisions = run(
        strategy,
        [
            trade(T0, "ETHUSDT"),  # another symbol's price does not help
            whale(T0 + 1, "BTC", 500.0, TO),
            flow(T0 + 2, "BTC", 900.0, 100.0),
            trade(T0 + 3, "BTCUSDT", 61_000.0),
            whale(T0 + 4, "BTC", 500.0, TO),
        ],
    )
    assert decisions[:4] == [None, None, None, None]
    final = decisions[4]
    assert final is not None
    assert final.price == 61_000.0


def test_latest_price_comes_from_trades_tickers_and_depth_mid() -> None:
    strategy = OnchainMetricsStrategy()
    params = make_params()
    assert strategy.on_event(ticker(T0, "BTCUSDT", 59_000.0), params) is None
    assert strategy.price("BTCUSDT") == 59_000.0
    assert strategy.on_event(depth(T0 + 1, "BTCUSDT", 59_500.0, 59_502.0), params) is None
    assert strategy.price("BTCUSDT") == pytest.approx(59_501.0)
    assert strategy.on_event(trade(T0 + 2, "BTCUSDT", 59_600.0), params) is None
    assert strategy.price("BTCUSDT") == 59_600.0
    assert strategy.on_event(trade(T0 - HOUR, "BTCUSDT", 1.0), params) is None  # older
    assert strategy.price("BTCUSDT") == 59_600.0
    one_sided = DepthSnapshot("BTCUSDT", T0 + 3, bids=(), asks=((60_000.0, 1.0),))
    assert strategy.on_event(one_sided, params) is None
    assert strategy.price("BTCUSDT") == 59_600.0

    decision = strategy.on_event(whale(T0 + 4, "BTC", 200.0, FROM), params)
    assert decision is not None
    assert decision.price == 59_600.0


def test_config_symbol_is_the_usdt_pair_of_the_asset_and_of_usdt_price_events() -> None:
    strategy = OnchainMetricsStrategy()
    assert strategy.config_symbol(whale(T0, "BTC", 1.0, TO)) == "BTCUSDT"
    assert strategy.config_symbol(flow(T0, "ETH", 1.0, 2.0)) == "ETHUSDT"
    assert strategy.config_symbol(trade(T0, "SOLUSDT")) == "SOLUSDT"
    assert strategy.config_symbol(ticker(T0, "BTCUSDT", 1.0)) == "BTCUSDT"
    assert strategy.config_symbol(depth(T0, "ETHUSDT", 1.0, 2.0)) == "ETHUSDT"
    btc_eth = Trade("ETHBTC", T0, 1, 0.05, 1.0, is_buyer_maker=False)
    assert strategy.config_symbol(btc_eth) is None
    assert strategy.on_event(btc_eth, make_params()) is None
    assert strategy.price("ETHBTC") is None
    assert strategy.config_symbol(DominanceObservation(T0, 55.0)) is None
    assert strategy.config_symbol(VenueQuote("coinbase", "BTCUSDT", T0, 1.0, 2.0)) is None


# --- cooldown and configuration through the engine ----------------------------------------


def test_min_signal_interval_suppresses_a_repeat_until_it_has_passed() -> None:
    engine = engine_with(OnchainMetricsStrategy())

    def feed(event: MarketEvent) -> list[Action]:
        return [s.action for s in engine.process(event)]

    assert feed(trade(T0, "BTCUSDT")) == []
    assert feed(whale(T0, "BTC", 300.0, TO)) == [Action.SELL]
    assert feed(whale(T0 + 10 * MINUTE, "BTC", 800.0, TO)) == []  # inside 3600 s
    assert feed(flow(T0 + 20 * MINUTE, "BTC", 900.0, 100.0)) == []  # same action, same symbol
    assert feed(whale(T0 + 30 * MINUTE, "BTC", 300.0, FROM)) == []  # any action: inside
    assert feed(whale(T0 + HOUR - SECOND, "BTC", 300.0, TO)) == []
    assert feed(whale(T0 + HOUR, "BTC", 300.0, TO)) == [Action.SELL]


def test_signal_from_the_engine_is_sized_by_notional() -> None:
    engine = engine_with(OnchainMetricsStrategy())
    engine.process(trade(T0, "ETHUSDT"))

    [signal] = engine.process(flow(T0 + 1, "ETH", 100.0, 400.0))

    assert signal.strategy_id == "onchain_metrics"
    assert signal.symbol == "ETHUSDT"
    assert signal.action is Action.BUY
    assert signal.quantity == pytest.approx(100.0 / 2_500.0)
    assert signal.stop_loss == pytest.approx(2_475.0)
    assert signal.take_profit == pytest.approx(2_537.5)


def test_a_symbol_override_changes_the_outcome_for_that_symbol_only() -> None:
    def signals(overrides: Mapping[str, ConfigDocument]) -> list[str]:
        engine = engine_with(OnchainMetricsStrategy(), overrides)
        events = priced(flow(T0, "BTC", 300.0, 700.0), flow(T0, "ETH", 300.0, 700.0))
        return [s.symbol for e in events for s in engine.process(e)]

    assert signals({}) == ["BTCUSDT", "ETHUSDT"]
    override = config_doc(SID, "ETHUSDT", 4, exchange_flow_threshold_percent=45.0)
    assert signals({"ETHUSDT": override}) == ["BTCUSDT"]
    assert signals({"BTCUSDT": config_doc(SID, "BTCUSDT", 4, enabled=False)}) == ["ETHUSDT"]


# --- schema and validation -----------------------------------------------------------------


def test_integers_are_accepted_for_float_thresholds() -> None:
    params = make_params(whale_threshold_btc=250, exchange_flow_threshold_percent=20)
    assert params.whale_threshold_btc == 250.0
    assert isinstance(params.whale_threshold_btc, float)


def test_no_cross_field_rule_binds_in_range_values() -> None:
    params = make_params(whale_threshold_btc=1000.0, whale_threshold_eth=100.0)
    assert params.cross_field_errors() == []


# --- properties ----------------------------------------------------------------------------


def _events(
    prices: st.SearchStrategy[float], amounts: st.SearchStrategy[float]
) -> st.SearchStrategy[MarketEvent]:
    times = st.integers(T0 - HOUR, T0 + 3 * HOUR)
    assets = st.sampled_from(["BTC", "ETH", "SOL"])
    symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETHBTC"])

    @st.composite
    def book(draw: st.DrawFn) -> DepthSnapshot:
        bid = draw(prices)
        ask = math.nextafter(bid, math.inf) if draw(st.booleans()) else bid * 1.001
        bids = ((bid, 1.0),) if draw(st.integers(0, 5)) else ()
        asks = ((ask, 1.0),) if draw(st.integers(0, 5)) else ()
        return DepthSnapshot(draw(symbols), draw(times), bids, asks)

    return st.one_of(
        st.builds(
            WhaleTransfer,
            asset=assets,
            event_time_ms=times,
            amount=amounts.filter(lambda a: a > 0.0),
            direction=st.sampled_from(FlowDirection),
        ),
        st.builds(
            ExchangeFlow,
            asset=assets,
            event_time_ms=times,
            inflow=amounts,
            outflow=amounts,
            period_seconds=st.integers(1, 86_400),
        ),
        st.builds(
            Trade,
            symbol=symbols,
            event_time_ms=times,
            trade_id=st.integers(0, 10**12),
            price=prices,
            quantity=st.just(1.0),
            is_buyer_maker=st.booleans(),
        ),
        st.builds(ticker, times, symbols, prices.filter(lambda p: p * 1.02 < math.inf)),
        book(),
    )


class TestContract(IntervalStrategyContract):
    strategy_id = SID
    warmup = len(PRICES)  # the prices
    schema: ClassVar[dict[str, SpecRow]] = {
        "whale_threshold_btc": ("float", 100.0, 10.0, 1000.0),
        "whale_threshold_eth": ("float", 1000.0, 100.0, 10000.0),
        "exchange_flow_threshold_percent": ("float", 10.0, 5.0, 50.0),
        "min_signal_interval": ("int", 3600, 1800, 86400),
        "cooldown_seconds": ("int", 0, 0, 86400),
    }
    default_cooldown_ms = 3_600_000

    def scenario(self) -> list[MarketEvent]:
        return priced(whale(T0, "BTC", 250.0, TO))

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(st.floats(1e-4, 1e6), st.floats(0.0, 1e5)), max_size=40)

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        assert decision.symbol.endswith("USDT")
        assert 0.0 < decision.current_price < math.inf

    def extreme_event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        return st.lists(_events(st.floats(1e-300, 1e300), st.floats(0.0, 1.7e308)), max_size=30)
