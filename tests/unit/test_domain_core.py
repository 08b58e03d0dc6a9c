"""Core domain machinery: parameter schema and validation, config resolution, cooldown,
signal construction, evaluation, and the processing use case's isolation of failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from application.processing import MarketEventProcessor
from domain.config import ConfigDocument, EffectiveConfig, merge_patch, next_version, resolve
from domain.cooldown import CooldownGate
from domain.engine import Outcome, SignalEngine, build_signal
from domain.evaluation import PriceSeries, forward_returns, horizon_stats
from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.params import CommonParams, ParamValidationError, param, parse_text
from domain.signal import Action, Signal, Strength, signal_id_for
from domain.strategies.base import Decision

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DemoParams(CommonParams):
    strategy_id: ClassVar[str] = "demo"
    cooldown_seconds: int = param(10, min=0, max=3600, description="cooldown")
    buy_threshold: float = param(1.2, min=1.0, max=3.0, description="buy above")
    sell_threshold: float = param(0.8, min=0.3, max=1.0, description="sell below")
    window: int = param(5, min=1, max=50, description="window")

    def cross_field_errors(self) -> list:  # type: ignore[type-arg]
        from domain.params import FieldError

        if self.sell_threshold >= self.buy_threshold:
            return [FieldError("__root__", "cross_field", "sell_threshold must be < buy")]
        return []


class DemoStrategy:
    """Buys every trade above 100, sells below 50."""

    strategy_id: ClassVar[str] = "demo"
    description: ClassVar[str] = "demo"
    params_type: ClassVar[type[CommonParams]] = DemoParams

    def config_symbol(self, event: MarketEvent) -> str | None:
        return event.symbol if isinstance(event, Trade) else None

    def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | None:
        assert isinstance(event, Trade)
        if event.price > 100:
            return Decision(event.symbol, Action.BUY, 0.8, event.price, event.price)
        if event.price < 50:
            return Decision(event.symbol, Action.SELL, 0.6, event.price, event.price)
        return None


def trade(price: float, t_ms: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol, t_ms, t_ms, price, 1.0, False)


def doc(symbol: str | None, version: int, **parameters: float | int | bool) -> ConfigDocument:
    return ConfigDocument("demo", symbol, parameters, version, T0, "test", "memory")


# --- parameters -------------------------------------------------------------------------


def test_schema_is_generated_from_the_dataclass() -> None:
    schema = {s.name: s for s in DemoParams.schema()}
    assert schema["buy_threshold"].type == "float"
    assert (schema["buy_threshold"].min, schema["buy_threshold"].max) == (1.0, 3.0)
    assert schema["window"].type == "int"
    assert schema["enabled"].type == "bool"
    assert schema["stop_loss_percent"].default == 1.0
    assert schema["take_profit_percent"].default == 1.5
    assert schema["position_notional_usdt"].default == 100.0


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"nope": 1}, "nope", "unknown_parameter"),
        ({"window": True}, "window", "wrong_type"),
        ({"enabled": 1}, "enabled", "wrong_type"),
        ({"window": 2.0}, "window", "wrong_type"),
        ({"buy_threshold": "1.5"}, "buy_threshold", "wrong_type"),
        ({"buy_threshold": float("nan")}, "buy_threshold", "not_a_value"),
        ({"buy_threshold": 3.5}, "buy_threshold", "out_of_range"),
        ({"sell_threshold": 1.0, "buy_threshold": 1.0}, "__root__", "cross_field"),
    ],
)
def test_validation_reports_field_and_code(
    values: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(ParamValidationError) as caught:
        DemoParams.from_mapping(values)
    assert (caught.value.errors[0].field, caught.value.errors[0].code) == (field, code)


def test_int_is_accepted_for_float_and_stored_as_float() -> None:
    params = DemoParams.from_mapping({"buy_threshold": 2})
    assert params.buy_threshold == 2.0
    assert isinstance(params.buy_threshold, float)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ParamValidationError) as caught:
        DemoParams.from_mapping({"nope": 1, "window": 0, "enabled": "yes"})
    assert {e.field for e in caught.value.errors} == {"nope", "window", "enabled"}


def test_parse_text_types_values_by_schema() -> None:
    spec = {s.name: s for s in DemoParams.schema()}
    assert parse_text(spec["enabled"], "false") is False
    assert parse_text(spec["window"], " 7 ") == 7
    assert parse_text(spec["buy_threshold"], "1.5") == 1.5
    with pytest.raises(ParamValidationError):
        parse_text(spec["window"], "7.5")
    with pytest.raises(ParamValidationError):
        parse_text(spec["buy_threshold"], "inf")


def test_cooldown_ms_is_the_larger_of_cooldown_and_min_signal_interval() -> None:
    assert DemoParams().cooldown_ms == 10_000


# --- configuration resolution -----------------------------------------------------------


def test_resolution_merges_field_by_field_most_specific_last() -> None:
    env = {"window": 7, "buy_threshold": 1.5}
    effective = resolve(
        DemoParams,
        "demo",
        "BTCUSDT",
        env,
        doc(None, 3, buy_threshold=2.0),
        doc("BTCUSDT", 4, window=9),
    )
    assert effective.params.buy_threshold == 2.0  # global beats env
    assert effective.params.window == 9  # symbol beats env
    assert effective.params.sell_threshold == 0.8  # default inherited
    assert (effective.version, effective.source, effective.is_override) == (4, "memory", True)


def test_resolution_sources() -> None:
    assert resolve(DemoParams, "demo", "X").source == "default"
    assert resolve(DemoParams, "demo", "X", {"window": 3}).source == "environment"
    tomb = doc("X", 5)
    effective = resolve(DemoParams, "demo", "X", None, doc(None, 2, window=4), tomb)
    assert (effective.is_override, effective.version, effective.params.window) == (False, 5, 4)


def test_override_cannot_break_a_cross_field_rule_with_global_values() -> None:
    with pytest.raises(ParamValidationError):
        resolve(
            DemoParams,
            "demo",
            "X",
            None,
            doc(None, 1, buy_threshold=1.0),
            doc("X", 2, sell_threshold=1.0),
        )


def test_merge_patch_and_next_version() -> None:
    assert merge_patch({"a": 1, "b": 2}, {"a": None, "c": 3}) == {"b": 2, "c": 3}
    assert next_version([]) == 1
    assert next_version([doc(None, 3), doc("X", 7)]) == 8


# --- cooldown and signals ---------------------------------------------------------------


def test_cooldown_gate_per_symbol_and_action() -> None:
    gate = CooldownGate()
    assert gate.admit("s", "X", Action.BUY, 1_000, 10_000)
    assert not gate.admit("s", "X", Action.BUY, 5_000, 10_000)
    assert gate.admit("s", "X", Action.SELL, 5_000, 10_000)
    assert gate.admit("s", "Y", Action.BUY, 5_000, 10_000)
    assert not gate.admit("s", "X", Action.BUY, 500, 0)  # older than the last emission
    assert gate.admit("s", "X", Action.BUY, 11_000, 10_000)


def effective(**values: float | int | bool) -> EffectiveConfig[CommonParams]:
    return resolve(DemoParams, "demo", "BTCUSDT", None, doc(None, 2, **values))


def test_build_signal_sizes_and_places_levels() -> None:
    decision = Decision("BTCUSDT", Action.BUY, 0.75, 50_000.0, 50_001.0)
    signal = build_signal("demo", decision, 1_700_000_000_000, effective())
    assert signal.stop_loss == pytest.approx(49_500.0)
    assert signal.take_profit == pytest.approx(50_750.0)
    assert signal.quantity == pytest.approx(0.002)
    assert signal.strength is Strength.STRONG
    assert signal.config.version == 2
    sell = build_signal("demo", Decision("BTCUSDT", Action.SELL, 0.4, 100.0, 100.0), 1, effective())
    assert (sell.stop_loss, sell.take_profit) == pytest.approx((101.0, 98.5))
    assert sell.strength is Strength.WEAK


def test_signal_id_is_deterministic_and_changes_with_each_input() -> None:
    base = signal_id_for("demo", "BTCUSDT", Action.BUY, 1, 1)
    assert base == signal_id_for("demo", "BTCUSDT", Action.BUY, 1, 1)
    variants = {
        signal_id_for("other", "BTCUSDT", Action.BUY, 1, 1),
        signal_id_for("demo", "ETHUSDT", Action.BUY, 1, 1),
        signal_id_for("demo", "BTCUSDT", Action.SELL, 1, 1),
        signal_id_for("demo", "BTCUSDT", Action.BUY, 2, 1),
        signal_id_for("demo", "BTCUSDT", Action.BUY, 1, 2),
    }
    assert base not in variants
    assert len(variants) == 5


def test_signal_rejects_levels_on_the_wrong_side() -> None:
    good = build_signal("demo", Decision("BTCUSDT", Action.BUY, 0.7, 10.0, 10.0), 1, effective())
    with pytest.raises(ValueError, match="wrong side"):
        Signal(**{**{f: getattr(good, f) for f in good.__slots__}, "stop_loss": 11.0})


def test_engine_applies_enabled_and_cooldown() -> None:
    engine = SignalEngine([DemoStrategy()])
    cfg = effective()
    lookup = lambda _s, _sym: cfg  # noqa: E731
    assert len(engine.process(trade(101, 0), lookup)) == 1
    assert engine.process(trade(102, 5_000), lookup) == []
    assert len(engine.process(trade(103, 10_000), lookup)) == 1
    disabled = effective(enabled=False)
    outcome, _ = engine.evaluate(engine.strategies[0], trade(104, 50_000), disabled)
    assert outcome == Outcome.DISABLED


# --- the processing use case ------------------------------------------------------------


class ExplodingStrategy(DemoStrategy):
    strategy_id: ClassVar[str] = "exploding"

    def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | None:
        raise RuntimeError("bug")


def test_processor_isolates_a_failing_strategy_and_counts() -> None:
    engine = SignalEngine([ExplodingStrategy(), DemoStrategy()])
    cfg = effective()
    processor = MarketEventProcessor(engine, lambda _s, _sym: cfg)
    signals = processor.handle(trade(150, 1))
    assert [s.strategy_id for s in signals] == ["demo"]
    assert processor.stats.strategy_errors["exploding"] == 1
    assert processor.stats.signals_by_strategy_action[("demo", "buy")] == 1
    assert processor.stats.events_by_type["Trade"] == 1


def test_processor_feeds_depth_to_the_metrics_observer() -> None:
    seen: list[DepthSnapshot] = []

    class Book:
        def on_depth(self, snapshot: DepthSnapshot) -> None:
            seen.append(snapshot)

    processor = MarketEventProcessor(SignalEngine([]), lambda _s, _sym: effective(), Book())
    snapshot = DepthSnapshot("BTCUSDT", 1, ((10.0, 1.0),), ((11.0, 1.0),))
    processor.handle(snapshot)
    assert seen == [snapshot]


# --- evaluation -------------------------------------------------------------------------


def test_forward_returns_are_signed_and_undefined_past_the_data() -> None:
    series = PriceSeries()
    for t, p in [(0, 100.0), (1_000, 101.0), (10_000, 99.0), (60_000, 102.0)]:
        series.add(t, p)
    buy = build_signal("demo", Decision("BTCUSDT", Action.BUY, 0.7, 100.0, 100.0), 0, effective())
    sell = build_signal("demo", Decision("BTCUSDT", Action.SELL, 0.7, 100.0, 100.0), 0, effective())
    outcomes = forward_returns([buy, sell], {"BTCUSDT": series}, (1, 10, 60, 300))
    assert outcomes[0].returns[:3] == pytest.approx((0.01, -0.01, 0.02))
    assert outcomes[0].returns[3] is None
    assert outcomes[1].returns[:3] == pytest.approx((-0.01, 0.01, -0.02))
    stats = horizon_stats(outcomes, (1, 10, 60, 300))
    assert (stats[0].evaluated, stats[0].hits, stats[0].hit_rate) == (2, 1, 0.5)
    assert stats[3].evaluated == 0
    assert stats[3].hit_rate is None


def test_price_series_ignores_out_of_order_points() -> None:
    series = PriceSeries()
    series.add(10, 1.0)
    series.add(5, 2.0)
    series.add(10, 3.0)
    assert series.price_at(10) == 3.0
    assert series.price_at(4) is None


# --- bounded per-symbol state -----------------------------------------------------------


class ForgettingStrategy(DemoStrategy):
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget_symbol(self, symbol: str) -> None:
        self.forgotten.append(symbol)


def test_engine_forgets_the_least_recently_seen_symbol_beyond_its_bound() -> None:
    strategy = ForgettingStrategy()
    engine = SignalEngine([strategy], max_symbols=3)
    processor = MarketEventProcessor(engine, lambda _s, _sym: effective())
    for index, symbol in enumerate(["AUSDT", "BUSDT", "CUSDT", "AUSDT", "DUSDT", "EUSDT"]):
        processor.handle(trade(150, index * 100_000, symbol))
    # B was the least recently seen when D arrived, then C when E arrived; A was refreshed.
    assert strategy.forgotten == ["BUSDT", "CUSDT"]
    assert engine.evicted_symbols == 2
    assert engine.cooldowns.symbols == 3
    # A forgotten symbol starts afresh: its cooldown is gone too.
    processor.handle(trade(150, 500_001, "BUSDT"))
    assert processor.stats.signals_by_strategy_action[("demo", "buy")] == 7


def test_a_flood_of_new_symbols_keeps_the_cooldown_gate_bounded() -> None:
    engine = SignalEngine([DemoStrategy()], max_symbols=50)
    processor = MarketEventProcessor(engine, lambda _s, _sym: effective())
    for index in range(1_000):
        processor.handle(trade(150, index, f"S{index}USDT"))
    assert engine.cooldowns.symbols == 50
    assert engine.evicted_symbols == 950
