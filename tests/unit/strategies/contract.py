"""The rules every strategy keeps, as one base suite each strategy's tests subclass.

A subclass names its strategy (``strategy_id``; the type and parameters come from the
registry) and gives a ``scenario()``: events in event-time order that make the strategy
emit at least one signal with its default parameters, and ``warmup`` — how many of the
scenario's first events may never produce a signal (the history the strategy needs). The
suite then checks, through the one engine walk (:meth:`SignalEngine.process`):

- identity: registry, params type and instance agree; the abilities it has are real;
- parameters: the schema is documented and in range, defaults and any in-range set
  round-trip through ``to_mapping``/``from_mapping``;
- determinism: the same events give the same signals (ids and payloads), from a fresh
  instance or after ``forget_symbol``;
- event time only: moving every event by a day moves every signal by a day and changes
  nothing else;
- warm-up: no signal from the first ``warmup`` events;
- signal fields: valid for the trade engine (strategy id, symbol whose configuration was
  used, confidence, price, levels, sizing, the configuration stamp, event time);
- routing and configuration: events it does not consume are not its business, and a
  disabled strategy emits nothing;
- the schema: exactly :data:`~tests.unit.strategies.support.COMMON_SCHEMA` and the
  subclass's ``schema`` rows, with the default cooldown ``default_cooldown_ms``;
- any events at all (``event_streams()``, a hypothesis strategy of event lists) with any
  in-range parameters (cross-field-valid ones only if ``cross_field_valid``): nothing
  raises, a held-back decision names a hysteresis reason, every decision is in bounds
  (confidence from ``min_confidence``) and passes the subclass's ``check_decision``.

A strategy of one of the two families subclasses its suite instead, which adds the family's
rules: :class:`ThresholdStrategyContract` (a ``metric`` against ``buy_threshold`` and
``sell_threshold``) and :class:`IntervalStrategyContract` (a ``min_signal_interval``, every
decision a valid signal, ``extreme_event_streams()``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar, Protocol, cast

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.engine import SignalEngine, build_signal
from domain.market import MarketEvent
from domain.params import CommonParams
from domain.signal import Action, Signal
from domain.strategies.base import Decision, Strategy, capabilities_of
from domain.strategies.registry import STRATEGIES
from tests.unit.strategies.support import (
    COMMON_SCHEMA,
    MAX_CONFIDENCE,
    SpecRow,
    assert_decision_in_bounds,
    assert_one_cross_field_error,
    assert_schema_documented,
    config_doc,
    engine_with,
    field_codes,
    params_from_schema,
    property_settings,
    rejection,
    sample_events,
    schema_table,
    static_config,
    ungoverned,
)

DAY_MS = 86_400_000


def shifted(event: MarketEvent, by_ms: int) -> MarketEvent:
    return dataclasses.replace(event, event_time_ms=event.event_time_ms + by_ms)


def without_id(signal: Signal) -> Signal:
    return dataclasses.replace(signal, signal_id="")


class StrategyContract:
    """Base suite; see the module docstring for what a subclass provides."""

    strategy_id: ClassVar[str]
    warmup: ClassVar[int] = 0
    """The scenario's first ``warmup`` events never produce a signal."""

    schema: ClassVar[dict[str, SpecRow]]
    """The strategy's own schema rows, beside :data:`COMMON_SCHEMA`."""
    default_cooldown_ms: ClassVar[int]
    """``cooldown_ms`` of the default parameters."""
    consumed: ClassVar[tuple[type[MarketEvent], ...] | None] = None
    """The only event types the strategy answers (None: not checked here)."""
    cross_field_valid: ClassVar[bool] = True
    """Whether the properties draw only parameters that pass the cross-field rules."""
    min_confidence: ClassVar[float] = 0.0
    """No decision has a lower confidence, whatever the events."""
    property_examples: ClassVar[int] = 300

    def scenario(self) -> Sequence[MarketEvent]:
        raise NotImplementedError

    def event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        """Lists of any events the strategy must take without raising."""
        raise NotImplementedError

    def check_decision(self, decision: Decision, event: MarketEvent, params: CommonParams) -> None:
        """What holds for every decision of this strategy on ``event`` under ``params``,
        beyond :func:`assert_decision_in_bounds`."""

    # --- helpers --------------------------------------------------------------------------

    def new_strategy(self) -> Strategy[CommonParams]:
        return cast(Strategy[CommonParams], STRATEGIES[self.strategy_id].build("binance"))

    def signals_of(
        self, events: Sequence[MarketEvent], engine: SignalEngine | None = None
    ) -> list[list[Signal]]:
        engine = engine if engine is not None else engine_with(self.new_strategy())
        return [engine.process(event) for event in events]

    # --- identity -------------------------------------------------------------------------

    def test_identity_and_abilities(self) -> None:
        descriptor = STRATEGIES[self.strategy_id]
        strategy = self.new_strategy()
        assert strategy.strategy_id == descriptor.params_type.strategy_id == self.strategy_id
        assert strategy.params_type is descriptor.params_type
        assert descriptor.name.strip()
        assert descriptor.description.strip()
        assert type(strategy).__doc__
        capabilities_of(strategy)  # raises on a missing member or a broken ability

    # --- parameters -----------------------------------------------------------------------

    def test_schema_is_documented_and_defaults_are_in_range(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        assert_schema_documented(params_type)
        defaults = params_type()
        assert defaults.cross_field_errors() == []
        for spec in params_type.schema():
            assert getattr(defaults, spec.name) == spec.default, spec.name
            if spec.min is not None and spec.max is not None:
                assert spec.min <= spec.default <= spec.max, spec.name
        assert {spec.name for spec in params_type.schema()} >= {
            "enabled",
            "cooldown_seconds",
            "stop_loss_percent",
            "take_profit_percent",
            "position_notional_usdt",
        }

    def test_schema_matches_the_spec(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        assert schema_table(params_type) == {**COMMON_SCHEMA, **self.schema}
        assert params_type().cooldown_ms == self.default_cooldown_ms

    def test_params_round_trip(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        defaults = params_type()
        candidates = [defaults]
        for spec in params_type.schema():  # each parameter alone at its bounds
            for bound in (spec.min, spec.max):
                if bound is not None:
                    value = int(bound) if spec.type == "int" else float(bound)
                    candidates.append(dataclasses.replace(defaults, **{spec.name: value}))
            if spec.type == "bool":
                candidates.append(dataclasses.replace(defaults, **{spec.name: not spec.default}))
        valid = [params for params in candidates if not params.cross_field_errors()]
        assert len(valid) > len(params_type.schema())
        for params in valid:
            mapping = params.to_mapping()
            assert params_type.from_mapping(mapping) == params
            assert params_type.from_mapping(mapping).to_mapping() == mapping

    def test_each_field_is_validated_alone(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        cases: list[tuple[str, object, str]] = [("no_such_parameter", 1, "unknown_parameter")]
        for spec in params_type.schema():
            if spec.type == "bool":
                cases.append((spec.name, 1, "wrong_type"))
                continue
            assert spec.min is not None
            assert spec.max is not None
            below: float
            above: float
            wrong: object
            if spec.type == "int":
                below, above, wrong = int(spec.min) - 1, int(spec.max) + 1, spec.min + 0.5
            else:
                below = math.nextafter(spec.min, -math.inf)
                above = math.nextafter(spec.max, math.inf)
                wrong = True
            cases += [
                (spec.name, below, "out_of_range"),
                (spec.name, above, "out_of_range"),
                (spec.name, wrong, "wrong_type"),
            ]
        for name, value, code in cases:
            errors = rejection(params_type, {name: value})
            assert field_codes(errors) == [(name, code)], (name, value)

    # --- behaviour over the scenario ------------------------------------------------------

    def test_the_scenario_signals_only_after_the_warm_up(self) -> None:
        scenario = self.scenario()
        assert len(scenario) > self.warmup
        times = [event.event_time_ms for event in scenario]
        assert times == sorted(times), "the scenario must be in event-time order"
        signals = self.signals_of(scenario)
        assert not any(signals[: self.warmup]), "a signal before the warm-up"
        assert any(signals[self.warmup :]), "the scenario must produce a signal"

    def test_same_events_give_the_same_signals(self) -> None:
        scenario = self.scenario()
        first = self.signals_of(scenario)
        assert self.signals_of(scenario) == first
        strategy = self.new_strategy()
        engine = engine_with(strategy)
        self.signals_of(scenario, engine)
        forget = getattr(strategy, "forget_symbol", None)
        if forget is not None:  # a forgotten symbol starts afresh
            for symbol in {signal.symbol for signals in first for signal in signals}:
                forget(symbol)
            engine_again = engine_with(strategy)
            assert [list(map(without_id, s)) for s in self.signals_of(scenario, engine_again)] == [
                list(map(without_id, s)) for s in first
            ]

    def test_only_event_time_matters(self) -> None:
        scenario = self.scenario()
        before = self.signals_of(scenario)
        after = self.signals_of([shifted(event, DAY_MS) for event in scenario])
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            assert [
                dataclasses.replace(without_id(s), event_time_ms=s.event_time_ms + DAY_MS)
                for s in old
            ] == [without_id(s) for s in new]

    def test_signal_fields_are_valid(self) -> None:
        strategy = self.new_strategy()
        engine = engine_with(strategy)
        params_type = STRATEGIES[self.strategy_id].params_type
        emitted = 0
        for event in self.scenario():
            symbol = strategy.config_symbol(event)
            for signal in engine.process(event):
                emitted += 1
                assert signal.strategy_id == self.strategy_id
                assert signal.symbol == symbol
                assert signal.action in (Action.BUY, Action.SELL)
                assert 0.0 <= signal.confidence <= MAX_CONFIDENCE
                assert signal.event_time_ms == event.event_time_ms
                for value in (signal.price, signal.quantity, signal.stop_loss, signal.take_profit):
                    assert 0.0 < value < math.inf
                if signal.action is Action.BUY:
                    assert signal.stop_loss < signal.price < signal.take_profit
                else:
                    assert signal.take_profit < signal.price < signal.stop_loss
                # engine_with runs without the per-strategy governance (support.ungoverned)
                assert signal.config.parameters == ungoverned(params_type).to_mapping()
                assert all(math.isfinite(v) for v in signal.indicators.values())
                assert signal.signal_id
        assert emitted

    def test_a_disabled_strategy_emits_nothing(self) -> None:
        off = config_doc(self.strategy_id, None, 1, enabled=False)
        engine = engine_with(self.new_strategy(), global_doc=off)
        assert not any(self.signals_of(self.scenario(), engine))

    def test_it_answers_only_the_events_it_consumes(self) -> None:
        if self.consumed is None:
            pytest.skip("no single set of consumed event types")
        strategy = self.new_strategy()
        params = ungoverned(STRATEGIES[self.strategy_id].params_type)
        for event in sample_events("ETHUSDT"):
            if isinstance(event, self.consumed):
                assert strategy.config_symbol(event) == "ETHUSDT"
            else:
                assert strategy.config_symbol(event) is None, event
                assert strategy.on_event(event, params) is None, event

    # --- any events -----------------------------------------------------------------------

    def assert_events_keep_the_rules(
        self, events: Sequence[MarketEvent], params: CommonParams
    ) -> None:
        """Offer each event (``config_symbol``, then ``on_event``) to a fresh strategy and
        check every answer."""
        strategy = self.new_strategy()
        for event in events:
            strategy.config_symbol(event)
            decision = strategy.on_event(event, params)
            if isinstance(decision, str):
                assert decision in ("unconfirmed", "not_rearmed")
                continue
            if decision is None:
                continue
            hypothesis.event(f"decision: {decision.action.value}")
            self.assert_decision_keeps_the_rules(decision, event, params)

    def assert_decision_keeps_the_rules(
        self, decision: Decision, event: MarketEvent, params: CommonParams
    ) -> None:
        """What every decision on any events must keep: in bounds, and the subclass's
        ``check_decision`` (a family of strategies adds its rules here)."""
        assert_decision_in_bounds(decision, min_confidence=self.min_confidence)
        self.check_decision(decision, event, params)

    def test_any_events_never_raise_and_decisions_keep_the_rules(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        any_params = params_from_schema(params_type, cross_field_valid=self.cross_field_valid)

        @property_settings(self.property_examples, slow_generation=True)
        @given(events=self.event_streams(), params=any_params)
        def check(events: list[MarketEvent], params: CommonParams) -> None:
            self.assert_events_keep_the_rules(events, params)

        check()

    @pytest.mark.parametrize("event", sample_events("BTCUSDT"), ids=lambda e: type(e).__name__)
    def test_events_it_does_not_consume_are_not_its_business(self, event: MarketEvent) -> None:
        strategy = self.new_strategy()
        consumes = getattr(strategy, "consumes", None)
        if consumes is not None and not isinstance(event, consumes):
            assert strategy.config_symbol(event) is None
        params = STRATEGIES[self.strategy_id].params_type()
        strategy.config_symbol(event)
        decision = strategy.on_event(event, params)  # never raises on a valid event
        if isinstance(decision, str):  # held back by the strategy's hysteresis
            assert decision in ("unconfirmed", "not_rearmed")
        elif decision is not None:
            assert 0.0 <= decision.confidence <= MAX_CONFIDENCE


class Thresholds(Protocol):
    """The parameters of a threshold strategy that the family rules read."""

    @property
    def buy_threshold(self) -> float: ...

    @property
    def sell_threshold(self) -> float: ...


class ThresholdStrategyContract(StrategyContract):
    """The suite of a threshold strategy (``orderbook_skew``, ``trade_momentum``,
    ``ticker_velocity``): it buys when its ``metric`` (an indicator of each decision) is
    above ``buy_threshold`` and sells when it is below ``sell_threshold``, and refuses a
    ``sell_threshold`` that is not below ``buy_threshold``."""

    metric: ClassVar[str]
    """The indicator compared with the thresholds."""

    def assert_decision_keeps_the_rules(
        self, decision: Decision, event: MarketEvent, params: CommonParams
    ) -> None:
        super().assert_decision_keeps_the_rules(decision, event, params)
        thresholds = cast(Thresholds, params)
        value = decision.indicators[self.metric]
        if decision.action is Action.BUY:
            assert value > thresholds.buy_threshold
        else:
            assert value < thresholds.sell_threshold

    def test_sell_threshold_must_be_below_buy_threshold(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        defaults = params_type()
        buy = cast(Thresholds, defaults).buy_threshold
        for sell in (buy, buy + 0.1):  # the rule holds on any instance, in range or not
            inverted = dataclasses.replace(defaults, sell_threshold=sell)
            assert_one_cross_field_error(inverted.cross_field_errors(), "sell_threshold")
        below = dataclasses.replace(defaults, sell_threshold=math.nextafter(buy, -math.inf))
        assert below.cross_field_errors() == []
        table = schema_table(params_type)
        lowest_buy, highest_sell = table["buy_threshold"][2], table["sell_threshold"][3]
        assert lowest_buy is not None
        assert highest_sell is not None
        if lowest_buy <= highest_sell:  # an inverted pair in range: validation refuses it
            both = {"buy_threshold": lowest_buy, "sell_threshold": lowest_buy}
            assert_one_cross_field_error(rejection(params_type, both), "sell_threshold")


class IntervalStrategyContract(StrategyContract):
    """The suite of a strategy with a ``min_signal_interval`` (``btc_dominance``,
    ``cross_exchange_spread``, ``onchain_metrics``): its cooldown is the larger of that
    interval and ``cooldown_seconds``, no decision has a confidence below 0.5, and every
    decision, on any events with any valid parameters, builds a valid signal — also on the
    extreme but valid values of ``extreme_event_streams()``."""

    min_confidence = 0.5

    def extreme_event_streams(self) -> st.SearchStrategy[list[MarketEvent]]:
        """Lists of events with extreme but valid values (prices, amounts)."""
        raise NotImplementedError

    def assert_decision_keeps_the_rules(
        self, decision: Decision, event: MarketEvent, params: CommonParams
    ) -> None:
        super().assert_decision_keeps_the_rules(decision, event, params)
        build_signal(self.strategy_id, decision, event.event_time_ms, static_config(params))

    def test_cooldown_is_the_larger_of_interval_and_cooldown_seconds(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        table = schema_table(params_type)
        shortest, longest = (int(b) for b in table["min_signal_interval"][2:] if b is not None)
        longest_cooldown = table["cooldown_seconds"][3]
        assert longest_cooldown is not None
        assert longest_cooldown > shortest
        for seconds, cooldown_seconds in (
            (shortest, 0),  # the interval alone
            (longest, 0),
            (shortest, int(longest_cooldown)),  # cooldown_seconds above the interval
            (longest, shortest),  # cooldown_seconds below it
        ):
            values = {"min_signal_interval": seconds, "cooldown_seconds": cooldown_seconds}
            params = params_type.from_mapping(values)
            assert params.cooldown_ms == max(seconds, cooldown_seconds) * 1000, values

    def test_extreme_but_valid_values_never_raise(self) -> None:
        params_type = STRATEGIES[self.strategy_id].params_type
        any_params = params_from_schema(params_type, cross_field_valid=True)

        @property_settings(200)
        @given(events=self.extreme_event_streams(), params=any_params)
        def check(events: list[MarketEvent], params: CommonParams) -> None:
            self.assert_events_keep_the_rules(events, params)

        check()
