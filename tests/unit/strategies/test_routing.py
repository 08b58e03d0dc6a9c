"""Event routing: a strategy's ``consumes`` never hides an event its config_symbol would take.

The engine offers an event only to the strategies whose ``consumes`` covers its type
(``SignalEngine.strategies_for``). That is a pure shortcut, so for every strategy and every
event type outside ``consumes``, ``config_symbol`` must answer None, whatever the state; and
an engine whose strategies are hidden behind wrappers without ``consumes`` (offered every
event) emits the same signals.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, cast

import pytest

from domain.config import EffectiveConfig
from domain.engine import SignalEngine
from domain.market import MarketEvent, Trade
from domain.params import CommonParams
from domain.signal import Signal
from domain.strategies.base import Decision, Held, Strategy
from domain.strategies.registry import STRATEGY_PARAMS, build_strategies
from tests.unit.strategies.support import SAMPLE_TIME_MS, sample_events

pytestmark = pytest.mark.unit


EVENT_TYPES = {type(event) for event in sample_events("BTCUSDT")}


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "ETHBTC"])
def test_config_symbol_is_none_for_every_type_a_strategy_does_not_consume(symbol: str) -> None:
    for strategy in build_strategies():
        consumes = strategy.consumes  # type: ignore[attr-defined]
        assert set(consumes) <= EVENT_TYPES, strategy.strategy_id
        params = STRATEGY_PARAMS[strategy.strategy_id]()
        # Feed every event first, so that stateful answers (quoted symbols...) are primed.
        for event in sample_events(symbol):
            if isinstance(event, consumes):
                strategy.on_event(event, params)
        for event in sample_events(symbol):
            if not isinstance(event, consumes):
                assert strategy.config_symbol(event) is None, (strategy.strategy_id, event)


def default_config(strategy_id: str, symbol: str) -> EffectiveConfig[CommonParams]:
    params = STRATEGY_PARAMS[strategy_id]()
    return EffectiveConfig(strategy_id, symbol, params, 0, "default", False)


class Unrouted:
    """``inner`` without its ``consumes`` (nor any other optional ability)."""

    params_type: ClassVar[type[CommonParams]] = CommonParams

    def __init__(self, inner: Strategy[CommonParams]) -> None:
        self.inner = inner
        self.strategy_id = inner.strategy_id

    def config_symbol(self, event: MarketEvent) -> str | None:
        return self.inner.config_symbol(event)

    def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | Held | None:
        return self.inner.on_event(event, params)


def test_engine_routes_by_consumes_and_offers_everything_to_undeclared_strategies() -> None:
    class Undeclared:
        strategy_id: ClassVar[str] = "undeclared"
        params_type: ClassVar[type[CommonParams]] = CommonParams

        def config_symbol(self, event: MarketEvent) -> str | None:
            return None

        def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | None:
            return None

    strategies = [*build_strategies(), Undeclared()]
    engine = SignalEngine(strategies, default_config)
    for event_type in EVENT_TYPES:
        expected = tuple(
            s
            for s in strategies
            if not hasattr(s, "consumes") or issubclass(event_type, s.consumes)
        )
        assert engine.strategies_for(event_type) == expected
        assert engine.strategies_for(event_type) is engine.strategies_for(event_type)
    trade_route = [s.strategy_id for s in engine.strategies_for(Trade)]
    assert trade_route == ["trade_momentum", "btc_dominance", "onchain_metrics", "undeclared"]


def test_engine_process_gives_the_same_signals_as_asking_every_strategy() -> None:
    routed = SignalEngine(build_strategies(), default_config)
    unrouted = SignalEngine(
        [cast(Strategy[CommonParams], Unrouted(s)) for s in build_strategies()], default_config
    )
    assert all(len(unrouted.strategies_for(t)) == 6 for t in EVENT_TYPES)
    routed_signals: list[Signal] = []
    unrouted_signals: list[Signal] = []
    for step in range(40):
        for event in sample_events("BTCUSDT"):
            shifted = dataclasses.replace(event, event_time_ms=SAMPLE_TIME_MS + step * 40_000)
            routed_signals.extend(routed.process(shifted))
            unrouted_signals.extend(unrouted.process(shifted))
    assert routed_signals
    assert routed_signals == unrouted_signals
