"""Signal governance: the gate's rules, hysteresis, and the defaults on real data."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from application.backtest import BacktestResult, run_backtest
from domain.engine import SignalEngine
from domain.governance import Governance, GovernanceParams, Pause, Suppression
from domain.market import DepthSnapshot, MarketEvent
from domain.params import CommonParams, ParamValidationError
from domain.signal import Action
from domain.strategies.hysteresis import Hysteresis
from domain.strategies.orderbook_skew import OrderbookSkewParams, OrderbookSkewStrategy
from domain.strategies.registry import STRATEGY_PARAMS
from entrypoints.backtest_container import BacktestParts
from tests.data import CAPTURE
from tests.unit.strategies.support import config_doc, engine_with

pytestmark = pytest.mark.unit

T0 = 1_723_161_600_000
HOUR_MS = 3_600_000


# --- the gate --------------------------------------------------------------------------------


def test_cooldown_is_side_independent_and_symmetric_in_time() -> None:
    gate = Governance()
    assert gate.cooldown("s", "X", Action.BUY, T0, 10_000, 20_000) is None
    assert gate.admit("s", "X", Action.BUY, T0, None) is None
    assert gate.cooldown("s", "X", Action.BUY, T0 + 5_000, 10_000, 20_000) == "cooldown"
    assert gate.cooldown("s", "X", Action.SELL, T0 + 5_000, 10_000, 20_000) == "cooldown"
    assert gate.cooldown("s", "X", Action.SELL, T0 + 15_000, 10_000, 20_000) == "reversal"
    assert gate.cooldown("s", "X", Action.BUY, T0 + 15_000, 10_000, 20_000) is None
    assert gate.cooldown("s", "X", Action.SELL, T0 + 20_000, 10_000, 20_000) is None
    assert gate.cooldown("other", "X", Action.BUY, T0 + 1, 10_000, 20_000) is None
    assert gate.cooldown("s", "Y", Action.BUY, T0 + 1, 10_000, 20_000) is None


def test_a_far_future_emission_blocks_only_its_own_cooldown() -> None:
    """A signal stamped in 2100 must not hold every later real signal inside its cooldown."""
    gate = Governance(GovernanceParams(0, 0))
    year_2100 = 4_102_444_800_000
    assert gate.admit("s", "X", Action.BUY, year_2100, None) is None
    assert gate.cooldown("s", "X", Action.BUY, T0, 300_000, 900_000) is None
    assert gate.cooldown("s", "X", Action.BUY, year_2100 - 1_000, 300_000, 900_000) == "cooldown"


def test_rate_caps_per_symbol_per_hour_and_service_wide_per_minute() -> None:
    gate = Governance(GovernanceParams(max_signals_per_symbol_per_hour=2, max_signals_per_minute=3))
    assert gate.admit("a", "X", Action.BUY, T0, None) is None
    assert gate.admit("b", "X", Action.BUY, T0 + 1_000, None) is None
    assert gate.admit("c", "X", Action.BUY, T0 + 2_000, None) == "rate_cap"
    assert gate.admit("c", "Y", Action.BUY, T0 + 2_000, None) is None
    assert gate.admit("c", "Z", Action.BUY, T0 + 3_000, None) == "rate_cap"  # 3 per minute
    assert gate.admit("c", "Z", Action.BUY, T0 + 61_000, None) is None
    assert gate.admit("c", "X", Action.BUY, T0 + HOUR_MS - 1, None) == "rate_cap"
    assert gate.admit("c", "X", Action.BUY, T0 + HOUR_MS, None) is None  # a sliding hour
    uncapped = Governance(GovernanceParams(0, 0))
    for i in range(100):
        assert uncapped.admit("a", "X", Action.BUY, T0 + i, None) is None


def test_pauses_cover_what_they_name_and_holds_are_counted_as_given() -> None:
    gate = Governance(GovernanceParams(0, 0))
    gate.set_pauses([Pause(strategy_id="a"), Pause(symbol="Y")])
    assert gate.admit("a", "X", Action.BUY, T0, None) == "paused"
    assert gate.admit("b", "Y", Action.BUY, T0, None) == "paused"
    assert gate.admit("b", "X", Action.BUY, T0, "stale") == "stale"
    assert gate.admit("b", "X", Action.BUY, T0, None) is None
    gate.set_pauses([Pause()])
    assert gate.admit("z", "Q", Action.SELL, T0, None) == "paused"
    gate.set_pauses([])
    assert gate.admit("z", "Q", Action.SELL, T0, None) is None
    assert Pause().label() == "*/*"
    with pytest.raises(ValueError, match="upper-case"):
        Pause(symbol="btcusdt")


@pytest.mark.parametrize("symbol", ["BTCUSDTÉ", "Ⅻ", "X" * 33, "BTC-USDT", ""])
def test_a_pause_takes_only_what_the_one_symbol_rule_accepts(symbol: str) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        Pause(symbol=symbol)
    assert Pause(symbol="X" * 32).covers("any", "X" * 32)


def test_state_round_trips_through_plain_data() -> None:
    gate = Governance()
    gate.admit("a", "X", Action.BUY, T0, None)
    gate.admit("b", "Y", Action.SELL, T0 + 5, None)
    copy = Governance.from_state(gate.to_state())
    assert copy.to_state() == gate.to_state()
    assert copy.cooldown("a", "X", Action.SELL, T0 + 1, 10, 10) == "cooldown"
    hysteresis = Hysteresis()
    hysteresis.judge("X", T0, 2.0, Action.BUY, 1.1, 0.9, 0.0)
    again = Hysteresis()
    again.load_state(hysteresis.to_state())
    assert again.to_state() == hysteresis.to_state() == {"X": [0, 1, -1, -1]}


def test_governance_limits_are_validated_with_field_details() -> None:
    with pytest.raises(ParamValidationError) as caught:
        GovernanceParams.from_mapping(
            {"max_signals_per_minute": -1, "max_signals_per_symbol_per_hour": "2"}
        )
    assert {(e.field, e.code) for e in caught.value.errors} == {
        ("max_signals_per_minute", "out_of_range"),
        ("max_signals_per_symbol_per_hour", "wrong_type"),
    }


@pytest.mark.parametrize("params_type", list(STRATEGY_PARAMS.values()))
def test_every_strategy_has_the_common_governance_parameters(
    params_type: type[CommonParams],
) -> None:
    names = {spec.name for spec in params_type.schema()}
    assert {"cooldown_seconds", "reversal_cooldown_seconds", "min_confidence"} <= names
    defaults = params_type()
    assert defaults.min_confidence == 0.6
    assert defaults.reversal_ms >= defaults.cooldown_ms
    with pytest.raises(ParamValidationError):
        params_type.from_mapping({"min_confidence": 1.5})


# --- hysteresis --------------------------------------------------------------------------------


def skew(time_ms: int, ratio: float) -> DepthSnapshot:
    return DepthSnapshot("BTCUSDT", time_ms, ((100.0, ratio),), ((100.01, 1.0),))


def test_a_ratio_hovering_around_the_threshold_fires_once_not_every_snapshot() -> None:
    strategy = OrderbookSkewStrategy()
    params = OrderbookSkewParams(confirm_seconds=1.0, rearm_margin=0.1)
    # 1.19 / 1.25 alternating every 100 ms for a minute: the condition keeps becoming true.
    hovering = [skew(T0 + i * 100, 1.19 if i % 2 else 1.25) for i in range(600)]
    results = [strategy.on_event(e, params) for e in hovering]
    assert [r for r in results if r is not None and not isinstance(r, str)] == []
    # Held above the threshold: fires once after 1 s, then is not re-armed.
    held = [skew(T0 + 60_000 + i * 100, 1.3) for i in range(100)]
    results = [strategy.on_event(e, params) for e in held]
    decisions = [r for r in results if r is not None and not isinstance(r, str)]
    assert len(decisions) == 1
    assert results.index(decisions[0]) == 10  # 1 000 ms after the crossing
    assert set(results[:10]) == {"unconfirmed"}
    assert set(results[11:]) == {"not_rearmed"}
    # Back inside the band, but not by the margin: still not re-armed.
    strategy.on_event(skew(T0 + 80_000, 1.15), params)
    assert strategy.on_event(skew(T0 + 80_100, 1.3), params) == "not_rearmed"
    # Back by the margin (ratio <= 1.1): re-armed, fires after confirmation.
    strategy.on_event(skew(T0 + 81_000, 1.05), params)
    assert strategy.on_event(skew(T0 + 82_000, 1.3), params) == "unconfirmed"
    decision = strategy.on_event(skew(T0 + 83_000, 1.3), params)
    assert decision is not None
    assert not isinstance(decision, str)
    assert decision.action is Action.BUY


def test_the_engine_counts_hysteresis_and_cooldown_suppressions_by_reason() -> None:
    layer = config_doc("orderbook_skew", None, 1, cooldown_seconds=0, confirm_seconds=1.0)
    engine = engine_with(OrderbookSkewStrategy(), global_doc=layer, governed=True)
    for i in range(40):
        engine.process(skew(T0 + i * 100, 1.3))
    counts = engine.stats.suppressed()
    assert engine.stats.signals == 1
    assert counts["unconfirmed"] == 10
    assert counts["not_rearmed"] == 29
    assert set(counts) == set(Suppression.ALL)


def test_a_hold_passed_to_process_keeps_state_warm_and_counts_the_reason() -> None:
    layer = config_doc("orderbook_skew", None, 1, cooldown_seconds=0, confirm_seconds=0.0)
    engine = engine_with(OrderbookSkewStrategy(), global_doc=layer, governed=True)
    assert engine.process(skew(T0, 1.3), hold="stale") == []
    assert engine.stats.suppressed()["stale"] == 1
    # the side fired (and disarmed) while held: the strategy's state moved on
    assert engine.process(skew(T0 + 100, 1.3)) == []
    assert engine.stats.suppressed()["not_rearmed"] == 1


# --- the bundled capture at defaults ----------------------------------------------------------


def replay(**limits: int) -> BacktestResult:
    parts = BacktestParts(
        governance_limits=GovernanceParams(**limits) if limits else GovernanceParams()
    )
    events: list[MarketEvent] = list(parts.feed(CAPTURE).iter_events())
    engine: SignalEngine = parts.engine()
    return run_backtest(events, engine)


@pytest.fixture(scope="module")
def default_run() -> BacktestResult:
    if not CAPTURE.exists():
        pytest.skip(f"bundled capture missing: {CAPTURE}")
    return replay()


def test_defaults_on_real_data_respect_cooldown_and_reversal(default_run: BacktestResult) -> None:
    signals = default_run.signals
    assert signals, "the defaults still produce signals on the bundled capture"
    by_key = defaultdict(list)
    for signal in signals:
        by_key[(signal.strategy_id, signal.symbol)].append(signal)
    for (strategy_id, _), own in by_key.items():
        params = STRATEGY_PARAMS[strategy_id]()
        for a, b in itertools.pairwise(own):
            gap = b.event_time_ms - a.event_time_ms
            assert gap >= params.cooldown_ms
            if a.action is not b.action:
                assert gap >= params.reversal_ms


def test_defaults_on_real_data_respect_confidence_and_the_hourly_cap(
    default_run: BacktestResult,
) -> None:
    signals = default_run.signals
    assert all(s.confidence >= 0.6 for s in signals)
    cap = GovernanceParams().max_signals_per_symbol_per_hour
    times_by_symbol = defaultdict(list)
    for signal in signals:
        times_by_symbol[signal.symbol].append(signal.event_time_ms)
    for times in times_by_symbol.values():
        for start in times:
            assert sum(1 for t in times if start <= t < start + HOUR_MS) <= cap
    suppressed = default_run.suppressed
    assert suppressed["unconfirmed"] > 0
    assert suppressed["not_rearmed"] > 0
    assert suppressed["cooldown"] > 0


def test_the_cap_is_what_limits_the_defaults_on_the_capture() -> None:
    if not CAPTURE.exists():
        pytest.skip(f"bundled capture missing: {CAPTURE}")
    capped = replay()
    uncapped = replay(max_signals_per_symbol_per_hour=0, max_signals_per_minute=0)
    assert len(capped.signals) <= GovernanceParams().max_signals_per_symbol_per_hour
    assert len(uncapped.signals) >= len(capped.signals)
    assert capped.suppressed["rate_cap"] > 0
