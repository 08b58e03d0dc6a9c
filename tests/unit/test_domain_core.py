"""Core domain machinery: parameter schema and validation, config resolution, cooldown,
signal construction and evaluation (the engine walk is in ``test_engine.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from domain.config import ConfigDocument, EffectiveConfig, merge_patch, next_version, resolve
from domain.engine import build_signal
from domain.evaluation import PriceSeries, forward_returns, horizon_stats
from domain.params import CommonParams, ParamValidationError, ParamValue, param, parse_text
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


def doc(symbol: str | None, version: int, **parameters: float | int | bool) -> ConfigDocument:
    return ConfigDocument("demo", symbol, parameters, version, T0, "test", "memory")


def resolve_demo(
    symbol: str,
    env: Mapping[str, ParamValue] | None = None,
    global_doc: ConfigDocument | None = None,
    symbol_doc: ConfigDocument | None = None,
) -> EffectiveConfig[DemoParams]:
    """:func:`resolve` of :class:`DemoParams` for ``symbol`` over the given layers."""
    return resolve(DemoParams, "demo", symbol, env, global_doc, symbol_doc)


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
        ({"window": 2.5}, "window", "wrong_type"),
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
    effective = resolve_demo(
        "BTCUSDT", env, doc(None, 3, buy_threshold=2.0), doc("BTCUSDT", 4, window=9)
    )
    assert effective.params.buy_threshold == 2.0  # global beats env
    assert effective.params.window == 9  # symbol beats env
    assert effective.params.sell_threshold == 0.8  # default inherited
    assert (effective.version, effective.source, effective.is_override) == (4, "memory", True)


def test_resolution_sources() -> None:
    assert resolve_demo("X").source == "default"
    assert resolve_demo("X", {"window": 3}).source == "environment"
    tomb = doc("X", 5)
    effective = resolve_demo("X", None, doc(None, 2, window=4), tomb)
    assert (effective.is_override, effective.version, effective.params.window) == (False, 5, 4)


def test_override_cannot_break_a_cross_field_rule_with_global_values() -> None:
    with pytest.raises(ParamValidationError):
        resolve_demo("X", None, doc(None, 1, buy_threshold=1.0), doc("X", 2, sell_threshold=1.0))


def test_merge_patch_and_next_version() -> None:
    assert merge_patch({"a": 1, "b": 2}, {"a": None, "c": 3}) == {"b": 2, "c": 3}
    assert next_version([]) == 1
    assert next_version([doc(None, 3), doc("X", 7)]) == 8


# --- cooldown and signals ---------------------------------------------------------------


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
