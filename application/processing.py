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
_Consumer = tuple[str, Callable[[MarketEvent], str | None], Runner]
"""(strategy id, its config_symbol, its runner)."""
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
    """Plain counters, cheap enough for the hot path; exported by the service."""

    events_by_type: Counter[str] = field(default_factory=Counter)
    signals_by_strategy_action: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    strategy_errors: Counter[str] = field(default_factory=Counter)

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
                (strategy.strategy_id, strategy.config_symbol, self.engine.runner(strategy))
                for strategy in self.engine.strategies_for(event_type)
            ),
        )
        return route

    def handle(self, event: MarketEvent) -> list[Signal]:
        route = self._routes.get(event.__class__)
        if route is None:
            route = self._route(event.__class__)
        type_name, consumers = route
        stats = self.stats
        stats.events_by_type[type_name] += 1
        depth_observer = self.depth_observer
        if depth_observer is not None and isinstance(event, DepthSnapshot):
            depth_observer.on_depth(event)
        signals: list[Signal] = []
        observer = self.observer
        config = self.config
        for strategy_id, config_symbol, run in consumers:
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
            stats.outcomes[(strategy_id, outcome)] += 1
            if observer is not None:
                observer.strategy_evaluated(strategy_id, outcome, perf_counter() - started)
            if signal is not None and outcome == Outcome.SIGNAL:
                stats.signals_by_strategy_action[(strategy_id, signal.action.value)] += 1
                signals.append(signal)
        return signals
