"""Use case: take one market event through the enabled strategies with the effective config.

The same :class:`MarketEventProcessor` runs in the live service and in the backtest, so
both emit identical signals for identical input. It is synchronous and CPU-only: I/O (the
feed, the sink) stays in the runner around it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Protocol

from domain.config import EffectiveConfig
from domain.engine import Outcome, Runner, SignalEngine
from domain.market import DepthSnapshot, MarketEvent
from domain.params import CommonParams
from domain.signal import Signal

ConfigLookup = Callable[[str, str], EffectiveConfig[CommonParams]]
_Consumer = tuple[str, Callable[[MarketEvent], str | None], Runner, dict[str, int]]
"""(strategy id, its config_symbol, its runner, its outcome counts)."""
_Route = tuple[str, tuple[_Consumer, ...]]
"""(event type name, the consumers of that type in engine order)."""


class DepthObserver(Protocol):
    """Receives every depth snapshot (the market-metrics book)."""

    def on_depth(self, snapshot: DepthSnapshot) -> object: ...


class ProcessingObserver(Protocol):
    """Outbound port for operational metrics (Prometheus in the service, none in backtests)."""

    def strategy_evaluated(self, strategy_id: str, outcome: str, seconds: float) -> None: ...

    def strategy_failed(self, strategy_id: str, error: BaseException) -> None: ...


@dataclass(slots=True)
class ProcessingStats:
    """Plain counters, cheap enough for the hot path; exported by the service.

    Evaluation outcomes, counted up to three times per event, live in ``outcome_counts``:
    per strategy a plain dict with every outcome (zeros included), whose ``d[k] += 1`` CPython
    specialises; a ``Counter`` with tuple keys costs several times as much per increment.
    ``outcomes`` reads them as a Counter of (strategy, outcome) without the zeros.
    """

    events_by_type: Counter[str] = field(default_factory=Counter)
    signals_by_strategy_action: Counter[tuple[str, str]] = field(default_factory=Counter)
    strategy_errors: Counter[str] = field(default_factory=Counter)
    outcome_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def outcomes(self) -> Counter[tuple[str, str]]:
        """Evaluations per (strategy, outcome) (a snapshot)."""
        return Counter(
            {
                (strategy_id, outcome): count
                for strategy_id, counts in self.outcome_counts.items()
                for outcome, count in counts.items()
                if count
            }
        )

    def outcome_counter(self, strategy_id: str) -> dict[str, int]:
        """The (live) outcome counts of ``strategy_id``, created with every outcome at 0."""
        counts = self.outcome_counts.get(strategy_id)
        if counts is None:
            counts = self.outcome_counts[strategy_id] = dict.fromkeys(Outcome.ALL, 0)
        return counts

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def signals(self) -> int:
        return sum(self.signals_by_strategy_action.values())


class MarketEventProcessor:
    """Runs every strategy that consumes an event, with its effective config per symbol.

    A strategy that raises is isolated: the error is counted and reported to the observer
    and the other strategies still run (a bug in one strategy costs its signal, not the
    message). ``observer`` receives per-strategy latency; with ``observer=None`` no timing
    is taken at all (the backtest's fast path).

    Per event type, the processor keeps the strategies that consume it (the engine's
    ``strategies_for``) with their ``config_symbol`` and runner bound once, so an event costs
    a dict lookup plus one call per interested strategy.
    """

    def __init__(
        self,
        engine: SignalEngine,
        config: ConfigLookup,
        depth_observer: DepthObserver | None = None,
        observer: ProcessingObserver | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.depth_observer = depth_observer
        self.observer = observer
        self.stats = ProcessingStats()
        self._routes: dict[type, _Route] = {}

    def _route(self, event_type: type) -> _Route:
        route = self._routes[event_type] = (
            event_type.__name__,
            tuple(
                (
                    strategy.strategy_id,
                    strategy.config_symbol,
                    self.engine.runner(strategy),
                    self.stats.outcome_counter(strategy.strategy_id),
                )
                for strategy in self.engine.strategies_for(event_type)
            ),
        )
        return route

    def handle(self, event: MarketEvent) -> list[Signal]:
        route = self._routes.get(event.__class__)
        if route is None:
            route = self._route(event.__class__)
        type_name, consumers = route
        symbol_seen = getattr(event, "symbol", None)
        if symbol_seen is not None:
            self.engine.touch(symbol_seen)
        stats = self.stats
        # Counter is a dict subclass, so ``c[k] += 1`` takes CPython's generic subscript path
        # twice; get() and one store are cheaper, with the same count.
        events_by_type = stats.events_by_type
        events_by_type[type_name] = events_by_type.get(type_name, 0) + 1
        depth_observer = self.depth_observer
        if depth_observer is not None and isinstance(event, DepthSnapshot):
            depth_observer.on_depth(event)
        signals: list[Signal] = []
        observer = self.observer
        config = self.config
        for strategy_id, config_symbol, run, outcome_counts in consumers:
            symbol = config_symbol(event)
            if symbol is None:
                continue
            started = perf_counter() if observer is not None else 0.0
            try:
                outcome, signal = run(event, config(strategy_id, symbol))
            except Exception as error:  # isolate one strategy's bug
                stats.strategy_errors[strategy_id] += 1
                if observer is not None:
                    observer.strategy_failed(strategy_id, error)
                continue
            outcome_counts[outcome] += 1
            if observer is not None:
                observer.strategy_evaluated(strategy_id, outcome, perf_counter() - started)
            if signal is not None and outcome == Outcome.SIGNAL:
                stats.signals_by_strategy_action[(strategy_id, signal.action.value)] += 1
                signals.append(signal)
        return signals
