"""The registry lists the six strategies of the specification, consistently."""

from __future__ import annotations

import pytest

from domain.strategies.registry import STRATEGY_NAMES, STRATEGY_PARAMS, build_strategies

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
    assert list(STRATEGY_PARAMS) == SPEC_IDS
    assert set(STRATEGY_NAMES) == set(SPEC_IDS)
    for strategy in strategies:
        params_type = STRATEGY_PARAMS[strategy.strategy_id]
        assert strategy.params_type is params_type
        assert params_type.strategy_id == strategy.strategy_id
        assert strategy.description
        assert strategy.__doc__


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
