"""The six strategies, by id: their params types and fresh (stateless-at-start) instances."""

from __future__ import annotations

from typing import cast

from domain.params import CommonParams
from domain.strategies.base import Strategy
from domain.strategies.btc_dominance import BtcDominanceParams, BtcDominanceStrategy
from domain.strategies.cross_exchange_spread import (
    CrossExchangeSpreadParams,
    CrossExchangeSpreadStrategy,
)
from domain.strategies.onchain_metrics import OnchainMetricsParams, OnchainMetricsStrategy
from domain.strategies.orderbook_skew import OrderbookSkewParams, OrderbookSkewStrategy
from domain.strategies.ticker_velocity import TickerVelocityParams, TickerVelocityStrategy
from domain.strategies.trade_momentum import TradeMomentumParams, TradeMomentumStrategy

STRATEGY_PARAMS: dict[str, type[CommonParams]] = {
    "orderbook_skew": OrderbookSkewParams,
    "trade_momentum": TradeMomentumParams,
    "ticker_velocity": TickerVelocityParams,
    "btc_dominance": BtcDominanceParams,
    "cross_exchange_spread": CrossExchangeSpreadParams,
    "onchain_metrics": OnchainMetricsParams,
}
"""Parameter types of every strategy, in the order the API lists them."""

STRATEGY_NAMES: dict[str, str] = {
    "orderbook_skew": "Order Book Skew",
    "trade_momentum": "Trade Momentum",
    "ticker_velocity": "Ticker Velocity",
    "btc_dominance": "BTC Dominance",
    "cross_exchange_spread": "Cross-Exchange Spread",
    "onchain_metrics": "On-Chain Metrics",
}


def build_strategies(home_venue: str = "binance") -> list[Strategy[CommonParams]]:
    """Fresh instances of all six strategies (each keeps its own per-symbol state)."""
    # Each strategy takes its own params type; the engine hands each the config resolved
    # with that type (STRATEGY_PARAMS), which is what makes this cast sound.
    instances: list[object] = [
        OrderbookSkewStrategy(),
        TradeMomentumStrategy(),
        TickerVelocityStrategy(),
        BtcDominanceStrategy(),
        CrossExchangeSpreadStrategy(home_venue=home_venue),
        OnchainMetricsStrategy(),
    ]
    return [cast(Strategy[CommonParams], strategy) for strategy in instances]
