"""An in-memory ``SignalSink``: keeps every published signal, in order."""

from __future__ import annotations

from collections.abc import Mapping

from domain.signal import Signal


class InMemorySignalSink:
    """Collects signals in ``signals`` (and their trace contexts in ``trace_contexts``).

    ``flush`` does nothing but count; ``publish`` never fails. For tests, the backtest and
    the in-process service.
    """

    def __init__(self) -> None:
        self.signals: list[Signal] = []
        self.trace_contexts: list[Mapping[str, str] | None] = []
        self.flushes = 0

    async def publish(self, signal: Signal, trace_context: Mapping[str, str] | None = None) -> None:
        self.signals.append(signal)
        self.trace_contexts.append(trace_context)

    async def flush(self) -> None:
        self.flushes += 1

    def clear(self) -> None:
        self.signals.clear()
        self.trace_contexts.clear()

    def by_strategy(self, strategy_id: str) -> list[Signal]:
        return [s for s in self.signals if s.strategy_id == strategy_id]

    def __len__(self) -> int:
        return len(self.signals)
