"""The strategy environment layer (``entrypoints.settings.strategy_environment``): typed
variables are read; a variable that looks like a strategy's but names nothing stops start-up
with the closest valid name."""

from __future__ import annotations

import pytest

from domain.params import ParamValidationError
from domain.strategies.registry import STRATEGY_PARAMS
from entrypoints.settings import strategy_environment, strategy_variables

pytestmark = pytest.mark.unit


def test_valid_variables_make_the_layer() -> None:
    layers = strategy_environment(
        STRATEGY_PARAMS,
        {
            "ORDERBOOK_SKEW_BUY_THRESHOLD": "1.3",
            "STRATEGY_ENABLED_TICKER_VELOCITY": "false",
            "NATS_URL": "nats://x:4222",  # not a strategy variable: ignored
            "PATH": "/usr/bin",
        },
    )
    assert layers == {
        "orderbook_skew": {"buy_threshold": 1.3},
        "ticker_velocity": {"enabled": False},
    }


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("ORDERBOOK_SKEW_BUY_THRESHLD", "ORDERBOOK_SKEW_BUY_THRESHOLD"),
        ("orderbook_skew_buy_threshld", "ORDERBOOK_SKEW_BUY_THRESHOLD"),  # names are case-blind
        ("TRADE_MOMENTUM_COOLDOWN", "TRADE_MOMENTUM_COOLDOWN_SECONDS"),
        ("STRATEGY_ENABLED_TICKER_VELOCTY", "STRATEGY_ENABLED_TICKER_VELOCITY"),
        ("STRATEGY_ENABLED_ORDERBOOK", "STRATEGY_ENABLED_ORDERBOOK_SKEW"),
    ],
)
def test_an_unknown_strategy_variable_names_the_closest_valid_one(
    variable: str, closest: str
) -> None:
    with pytest.raises(ParamValidationError) as raised:
        strategy_environment(STRATEGY_PARAMS, {variable: "1"})
    (error,) = raised.value.errors
    assert error.field == variable.upper()
    assert error.code == "unknown_parameter"
    assert error.message.endswith(f"the closest valid name is {closest}")
    assert variable.upper() in str(raised.value)
    assert closest in strategy_variables(STRATEGY_PARAMS)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(ParamValidationError) as raised:
        strategy_environment(
            STRATEGY_PARAMS,
            {
                "ORDERBOOK_SKEW_BUY_THRESHLD": "1.3",
                "ORDERBOOK_SKEW_BUY_THRESHOLD": "not a number",
                "BTC_DOMINANCE_WINDOW": "5",
            },
        )
    fields = sorted(error.field for error in raised.value.errors)
    assert fields == [
        "BTC_DOMINANCE_WINDOW",
        "ORDERBOOK_SKEW_BUY_THRESHLD",
        "ORDERBOOK_SKEW_BUY_THRESHOLD",
    ]


def test_every_documented_variable_is_valid() -> None:
    names = strategy_variables(STRATEGY_PARAMS)
    assert len(names) == len(set(names))
    assert "STRATEGY_ENABLED_ONCHAIN_METRICS" in names
    assert "ORDERBOOK_SKEW_ENABLED" in names
