"""The one engine walk: enabled and cooldown, failure isolation, stats, the depth observer,
bounded per-symbol state, strategy abilities checked at construction, and the application's
timing instrument around it."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import pytest

from application.processing import timed
from domain.config import EffectiveConfig, resolve
from domain.engine import Evaluation, Outcome, Result, SignalEngine
from domain.governance import Governance, GovernanceParams
from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.params import CommonParams
from domain.signal import Action
from domain.strategies.base import Decision, Strategy, StrategyContractError, capabilities_of
from tests.unit.test_domain_core import DemoParams, doc

pytestmark = pytest.mark.unit


class DemoStrategy:
    """Buys every trade above 100, sells below 50."""

    strategy_id: ClassVar[str] = "demo"
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


class ExplodingStrategy(DemoStrategy):
    strategy_id: ClassVar[str] = "exploding"

    def on_event(self, event: MarketEvent, params: CommonParams) -> Decision | None:
        raise RuntimeError("bug")


class ForgettingStrategy(DemoStrategy):
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget_symbol(self, symbol: str) -> None:
        self.forgotten.append(symbol)


def trade(price: float, t_ms: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol, t_ms, t_ms, price, 1.0, False)


def effective(**values: float | int | bool) -> EffectiveConfig[CommonParams]:
    return resolve(DemoParams, "demo", "BTCUSDT", None, doc(None, 2, **values))


def engine_of(*strategies: object, **options: Any) -> SignalEngine:
    config = effective()
    return SignalEngine(
        [cast(Strategy[CommonParams], s) for s in strategies], lambda _s, _sym: config, **options
    )


# --- the walk ---------------------------------------------------------------------------


def test_engine_applies_enabled_and_cooldown() -> None:
    current = effective()
    engine = SignalEngine([DemoStrategy()], lambda _s, _sym: current)
    assert len(engine.process(trade(101, 0))) == 1
    assert engine.process(trade(102, 5_000)) == []
    assert len(engine.process(trade(103, 10_000))) == 1
    current = effective(enabled=False)
    assert engine.process(trade(104, 50_000)) == []
    assert engine.stats.outcomes == {
        ("demo", Outcome.SIGNAL): 2,
        ("demo", Outcome.COOLDOWN): 1,
        ("demo", Outcome.DISABLED): 1,
    }


def test_engine_isolates_a_failing_strategy_and_counts() -> None:
    engine = engine_of(ExplodingStrategy(), DemoStrategy())
    signals = engine.process(trade(150, 1))
    assert [s.strategy_id for s in signals] == ["demo"]
    assert engine.stats.strategy_errors["exploding"] == 1
    assert engine.stats.signals_by_strategy_action[("demo", "buy")] == 1
    assert engine.stats.events_by_type["Trade"] == 1
    assert (engine.stats.events, engine.stats.signals) == (1, 1)


def test_a_decision_that_cannot_be_built_into_a_signal_records_nothing_in_governance() -> None:
    """A forged trade at 1e-307 makes a sell no signal can carry (its quantity overflows):
    it is counted as the strategy's error and takes neither a cooldown nor a rate-cap slot,
    so the next real decision is published."""
    governance = Governance(GovernanceParams(max_signals_per_symbol_per_hour=1))
    engine = engine_of(DemoStrategy(), governance=governance)
    assert engine.process(trade(1e-307, 0)) == []
    assert engine.stats.strategy_errors["demo"] == 1
    [signal] = engine.process(trade(40.0, 1_000))
    assert (signal.action, signal.price) == (Action.SELL, 40.0)


def test_engine_feeds_depth_to_the_depth_observer_only() -> None:
    seen: list[DepthSnapshot] = []

    class Book:
        def on_depth(self, snapshot: DepthSnapshot) -> None:
            seen.append(snapshot)

    engine = engine_of(depth_observer=Book())
    snapshot = DepthSnapshot("BTCUSDT", 1, ((10.0, 1.0),), ((11.0, 1.0),))
    engine.process(snapshot)
    engine.process(trade(150, 2))
    assert seen == [snapshot]
    assert engine.stats.events_by_type == {"DepthSnapshot": 1, "Trade": 1}


# --- bounded per-symbol state -----------------------------------------------------------


def test_engine_forgets_the_least_recently_seen_symbol_beyond_its_bound() -> None:
    strategy = ForgettingStrategy()
    engine = engine_of(strategy, max_symbols=3)
    for index, symbol in enumerate(["AUSDT", "BUSDT", "CUSDT", "AUSDT", "DUSDT", "EUSDT"]):
        engine.process(trade(150, index * 100_000, symbol))
    # B was the least recently seen when D arrived, then C when E arrived; A was refreshed.
    assert strategy.forgotten == ["BUSDT", "CUSDT"]
    assert engine.evicted_symbols == 2
    assert engine.governance.symbols == 3
    # A forgotten symbol starts afresh: its cooldown is gone too.
    engine.process(trade(150, 500_001, "BUSDT"))
    assert engine.stats.signals_by_strategy_action[("demo", "buy")] == 7


def test_a_flood_of_new_symbols_keeps_the_cooldown_gate_bounded() -> None:
    engine = engine_of(
        DemoStrategy(), max_symbols=50, governance=Governance(GovernanceParams(0, 0))
    )
    for index in range(1_000):
        engine.process(trade(150, index, f"S{index}USDT"))
    assert engine.governance.symbols == 50
    assert engine.evicted_symbols == 950


def test_max_symbols_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_symbols"):
        engine_of(DemoStrategy(), max_symbols=0)


# --- abilities, checked when the engine is built ----------------------------------------


class NotCallableProposal(DemoStrategy):
    propose = None


class WrongArityForget(DemoStrategy):
    def forget_symbol(self) -> None:
        pass


class ConsumesNotATuple(DemoStrategy):
    consumes = Trade


class ConsumesAString(DemoStrategy):
    consumes = (str,)


class NoOnEvent:
    strategy_id: ClassVar[str] = "broken"
    params_type: ClassVar[type[CommonParams]] = DemoParams

    def config_symbol(self, event: MarketEvent) -> str | None:
        return None


class EmptyId(DemoStrategy):
    strategy_id: ClassVar[str] = ""


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (NotCallableProposal(), r"'demo' \(NotCallableProposal\): ProposingStrategy.propose is"),
        (
            WrongArityForget(),
            r"SymbolStateStrategy.forget_symbol must take 1 argument\(s\), its signature is \(\)",
        ),
        (ConsumesNotATuple(), r"is a RoutedStrategy, but consumes is not a non-empty tuple"),
        (ConsumesAString(), r"consumes is not a non-empty tuple of market event types"),
        (NoOnEvent(), r"NoOnEvent is not a Strategy: it has no on_event"),
        (EmptyId(), r"EmptyId: strategy_id must be a non-empty str"),
    ],
)
def test_a_strategy_that_does_not_implement_what_it_has_fails_at_construction(
    strategy: object, message: str
) -> None:
    with pytest.raises(StrategyContractError, match=message):
        engine_of(strategy)


def test_abilities_are_found_once() -> None:
    plain = capabilities_of(DemoStrategy())
    assert (plain.consumes, plain.propose, plain.forget_symbol) == (None, None, None)
    forgetting = ForgettingStrategy()
    assert capabilities_of(forgetting).forget_symbol == forgetting.forget_symbol


# --- the application's timing instrument ------------------------------------------------


class RecordingObserver:
    def __init__(self) -> None:
        self.evaluated: list[tuple[str, float]] = []

    def strategy_evaluated(self, strategy_id: str, seconds: float) -> None:
        self.evaluated.append((strategy_id, seconds))


def test_timed_reports_every_evaluation_that_returned_and_changes_nothing() -> None:
    observer = RecordingObserver()
    instrumented = engine_of(ExplodingStrategy(), DemoStrategy(), instrument=timed(observer))
    plain = engine_of(ExplodingStrategy(), DemoStrategy())
    events = [trade(150, 0), trade(75, 1_000), trade(150, 2_000), trade(40, 3_000)]
    assert [instrumented.process(e) for e in events] == [plain.process(e) for e in events]
    # outcomes and failures are the engine's counts, the same with or without the timing
    assert instrumented.stats == plain.stats
    assert instrumented.stats.strategy_errors == {"exploding": 4}
    assert instrumented.stats.outcomes == {
        ("demo", "signal"): 1,
        ("demo", "no_signal"): 1,
        ("demo", "cooldown"): 2,  # the opposite action too: the cooldown is side-independent
    }
    assert [sid for sid, _ in observer.evaluated] == ["demo"] * 4  # a raise is not timed
    assert all(seconds >= 0.0 for _, seconds in observer.evaluated)


def test_an_instrument_wraps_each_strategy_once_with_its_id() -> None:
    wrapped: list[str] = []

    def instrument(strategy_id: str, evaluation: Evaluation) -> Evaluation:
        wrapped.append(strategy_id)

        def passthrough(event: MarketEvent, symbol: str) -> Result:
            return evaluation(event, symbol)

        return passthrough

    engine = engine_of(ExplodingStrategy(), DemoStrategy(), instrument=instrument)
    for t in range(3):
        engine.process(trade(150, t))
    assert wrapped == ["exploding", "demo"]
