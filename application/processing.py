"""Operational view of the engine walk: the latency of each strategy evaluation.

The walk itself is :meth:`domain.engine.SignalEngine.process`, the same in the service, the
partition workers, the backtest and the tests. Timing reads the clock, so it is not domain:
:func:`timed` is the engine's :class:`~domain.engine.Instrument` that reports each
evaluation to a :class:`~application.ports.ProcessingObserver` (Prometheus in the service;
the backtest runs without one, so that no timing is taken at all).
"""

from __future__ import annotations

from time import perf_counter

from application.ports import ProcessingObserver
from domain.engine import Evaluation, Instrument, Result
from domain.market import MarketEvent


def timed(observer: ProcessingObserver) -> Instrument:
    """An instrument that times every evaluation (config lookup included) for ``observer``.

    A failing evaluation is not timed: the exception goes on to the engine, which isolates
    and counts it (:attr:`~domain.engine.EngineStats.strategy_errors`).
    """

    def instrument(strategy_id: str, evaluation: Evaluation) -> Evaluation:
        evaluated = observer.strategy_evaluated

        def timed_evaluation(event: MarketEvent, symbol: str) -> Result:
            started = perf_counter()
            result = evaluation(event, symbol)
            evaluated(strategy_id, perf_counter() - started)
            return result

        return timed_evaluation

    return instrument
