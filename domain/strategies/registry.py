"""The six strategies: one table of descriptors, the only place a strategy is registered.

Everything that lists, names, describes, configures or builds strategies reads
:data:`STRATEGIES`: the admin API (names, descriptions, schemas), the configuration service
(params types), the engine's strategy set (builders).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from domain.governance import GovernanceParams
from domain.params import CommonParams, StrategyParams
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

P = TypeVar("P", bound=CommonParams)

DEFAULT_HOME_VENUE = "binance"


@dataclass(frozen=True, slots=True)
class StrategyDescriptor(Generic[P]):
    """What the system knows about one strategy before any instance exists.

    ``strategy_id`` is the id its params type declares (so the two cannot disagree);
    ``name`` and ``description`` are what the admin API shows; ``build(home_venue)`` returns
    a fresh instance with empty state (the venue matters only to venue-aware strategies).
    """

    name: str
    description: str
    params_type: type[P]
    build: Callable[[str], Strategy[P]]
    strategy_id: str = field(init=False)

    def __post_init__(self) -> None:
        strategy_id = self.params_type.strategy_id
        if not strategy_id:
            raise ValueError(f"{self.params_type.__name__} declares no strategy_id")
        if not self.name.strip() or not self.description.strip():
            raise ValueError(f"strategy {strategy_id!r} needs a name and a description")
        object.__setattr__(self, "strategy_id", strategy_id)


def _table(*descriptors: StrategyDescriptor[Any]) -> Mapping[str, StrategyDescriptor[Any]]:
    table = {d.strategy_id: d for d in descriptors}
    if len(table) != len(descriptors):
        raise ValueError("two strategy descriptors share an id")
    return table


STRATEGIES: Mapping[str, StrategyDescriptor[Any]] = _table(
    StrategyDescriptor(
        name="Order Book Skew",
        description=(
            "Order-book imbalance: buy when the top bid levels outweigh the asks, sell when "
            "the asks outweigh the bids, if the spread is tight and the book not too thin."
        ),
        params_type=OrderbookSkewParams,
        build=lambda home_venue: OrderbookSkewStrategy(),
    ),
    StrategyDescriptor(
        name="Trade Momentum",
        description=(
            "Trade momentum: time-decayed tick direction, signed taker volume and signed taker "
            "count over the last trades; buy on strong buying pressure, sell on strong selling."
        ),
        params_type=TradeMomentumParams,
        build=lambda home_venue: TradeMomentumStrategy(),
    ),
    StrategyDescriptor(
        name="Ticker Velocity",
        description=(
            "Ticker velocity: buy or sell when the last price moves faster than a threshold in "
            "% per minute over a time window, confirmed by a rise in 24h quote volume; "
            "acceleration raises confidence."
        ),
        params_type=TickerVelocityParams,
        build=lambda home_venue: TickerVelocityStrategy(),
    ),
    StrategyDescriptor(
        name="BTC Dominance",
        description=(
            "BTCUSDT buy when BTC dominance is high and rising, sell (rotation to alts) when "
            "low and falling, otherwise in the direction of a large dominance change over the "
            "window."
        ),
        params_type=BtcDominanceParams,
        build=lambda home_venue: BtcDominanceStrategy(),
    ),
    StrategyDescriptor(
        name="Cross-Exchange Spread",
        description=(
            "When fresh quotes of two or more venues diverge by more than the threshold, buy "
            "on the home venue if it is the cheapest or sell there if it is the richest."
        ),
        params_type=CrossExchangeSpreadParams,
        build=lambda home_venue: CrossExchangeSpreadStrategy(home_venue=home_venue),
    ),
    StrategyDescriptor(
        name="On-Chain Metrics",
        description=(
            "Sell when whales move BTC/ETH into exchanges or net exchange inflow dominates, "
            "buy when they withdraw or net outflow dominates."
        ),
        params_type=OnchainMetricsParams,
        build=lambda home_venue: OnchainMetricsStrategy(),
    ),
)
"""Every strategy by id, in the order the API lists them and the engine runs them."""

STRATEGY_PARAMS: Mapping[str, type[CommonParams]] = {
    strategy_id: descriptor.params_type for strategy_id, descriptor in STRATEGIES.items()
}
"""Parameter types by strategy id (what the configuration service validates against)."""

STRATEGY_NAMES: Mapping[str, tuple[str, str]] = {
    strategy_id: (descriptor.name, descriptor.description)
    for strategy_id, descriptor in STRATEGIES.items()
}
"""``(name, description)`` by strategy id (what the admin API shows)."""

CONFIG_PARAMS: Mapping[str, type[StrategyParams]] = {
    **STRATEGY_PARAMS,
    GovernanceParams.strategy_id: GovernanceParams,
}
"""Everything the admin API configures, by id: the strategies and the governance gate's
limits (``governance``: runtime configuration like a strategy's parameters — validated,
merged field by field, audited, broadcast — but not a strategy: it emits nothing)."""

CONFIG_NAMES: Mapping[str, tuple[str, str]] = {
    **STRATEGY_NAMES,
    GovernanceParams.strategy_id: (
        "Signal Governance",
        "Caps on published signals, all strategies together: per symbol in any sliding hour "
        "and service-wide in any sliding minute of event time. Not a strategy: it emits "
        "nothing itself.",
    ),
}
"""``(name, description)`` of everything :data:`CONFIG_PARAMS` holds."""


def build_strategies(home_venue: str = DEFAULT_HOME_VENUE) -> list[Strategy[CommonParams]]:
    """Fresh instances of every registered strategy, in registry order."""
    # Each strategy takes its own params type; the engine hands each the config resolved
    # with that type (STRATEGY_PARAMS), which is what makes this cast sound.
    return [
        cast(Strategy[CommonParams], descriptor.build(home_venue))
        for descriptor in STRATEGIES.values()
    ]
