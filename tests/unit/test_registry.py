"""The registry lists the six strategies of the specification, consistently."""

from __future__ import annotations

import pytest

from domain.strategies.orderbook_skew import OrderbookSkewParams, OrderbookSkewStrategy
from domain.strategies.registry import (
    STRATEGIES,
    STRATEGY_PARAMS,
    StrategyDescriptor,
    build_strategies,
)

pytestmark = pytest.mark.unit

SPEC_IDS = [
    "orderbook_skew",
    "trade_momentum",
    "ticker_velocity",
    "btc_dominance",
    "cross_exchange_spread",
    "onchain_metrics",
]
COMMON = {
    "enabled",
    "cooldown_seconds",
    "stop_loss_percent",
    "take_profit_percent",
    "position_notional_usdt",
}


def test_six_strategies_with_matching_ids_and_params() -> None:
    strategies = build_strategies()
    assert [s.strategy_id for s in strategies] == SPEC_IDS
    assert list(STRATEGIES) == SPEC_IDS
    assert list(STRATEGY_PARAMS) == SPEC_IDS
    for strategy in strategies:
        descriptor = STRATEGIES[strategy.strategy_id]
        assert descriptor.strategy_id == strategy.strategy_id
        assert (
            strategy.params_type is descriptor.params_type is STRATEGY_PARAMS[strategy.strategy_id]
        )
        assert descriptor.params_type.strategy_id == strategy.strategy_id
        assert strategy.__doc__


def test_names_and_descriptions_are_written_for_people() -> None:
    names = [d.name for d in STRATEGIES.values()]
    assert names == [
        "Order Book Skew",
        "Trade Momentum",
        "Ticker Velocity",
        "BTC Dominance",
        "Cross-Exchange Spread",
        "On-Chain Metrics",
    ]
    for descriptor in STRATEGIES.values():
        assert descriptor.description.endswith(".")
        assert "Parameters of" not in descriptor.description


def test_the_home_venue_reaches_venue_aware_strategies() -> None:
    (spread,) = [s for s in build_strategies("kraken") if s.strategy_id == "cross_exchange_spread"]
    assert spread.home_venue == "kraken"  # type: ignore[attr-defined]


def test_a_descriptor_takes_its_id_from_its_params_and_needs_a_name_and_description() -> None:
    descriptor = StrategyDescriptor(
        name="Skew",
        description="d.",
        params_type=OrderbookSkewParams,
        build=lambda venue: OrderbookSkewStrategy(),
    )
    assert descriptor.strategy_id == "orderbook_skew"
    with pytest.raises(ValueError, match="name and a description"):
        StrategyDescriptor(
            name=" ",
            description="d.",
            params_type=OrderbookSkewParams,
            build=lambda venue: OrderbookSkewStrategy(),
        )


@pytest.mark.parametrize("strategy_id", SPEC_IDS)
def test_every_strategy_has_the_common_parameters_with_valid_defaults(strategy_id: str) -> None:
    params_type = STRATEGY_PARAMS[strategy_id]
    names = {spec.name for spec in params_type.schema()}
    assert names >= COMMON
    defaults = params_type.from_mapping({})
    assert defaults.enabled is True
    assert params_type.field_errors(params_type.defaults()) == []
    for spec in params_type.schema():
        assert spec.description
        if spec.type != "bool":
            assert spec.min is not None
            assert spec.max is not None
            assert spec.min <= spec.default <= spec.max


def test_instances_are_independent() -> None:
    first, second = build_strategies(), build_strategies()
    assert all(a is not b for a, b in zip(first, second, strict=True))
