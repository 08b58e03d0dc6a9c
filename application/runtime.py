"""Use case: run the service — market messages from a feed through the engine, their
signals into a sink — until the feed ends or the service is stopped.

The loop takes the feed's batches (what arrived since the previous one) and processes every
item in order: one event at a time through :meth:`SignalEngine.process
<domain.engine.SignalEngine.process>` (the one engine walk; an event older than
``max_signal_age_seconds`` by the wall clock is processed with the ``stale`` hold, so that
its signals are counted and not published), each signal past
the optional :class:`~application.ports.SignalGate` and, in a partitioned deployment, the
shared :class:`~application.ports.SignalBudget` (``max_signals_per_minute`` over every
process), then published (``await``ed, so a signal is handed to the sink before the next
event is processed). The optional
:class:`~application.ports.MarketTap` s (live outcome scoring) see each event before the
strategies do and each signal once published. A bad event or a failed publish costs that one
item, never the loop.

:meth:`ServiceRuntime.stop` is the service's half of a graceful shutdown, bounded by its
timeout: stop taking new messages (drain the feed, which still hands over everything already
received), process what is left, flush the sink (buffered signals included).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from application.ports import (
    Admission,
    FeedItem,
    MarketFeed,
    MarketTap,
    MessageTracing,
    RunObserver,
    SignalBudget,
    SignalGate,
    SignalSink,
    StoreUnavailableError,
)
from domain.engine import SignalEngine
from domain.governance import Suppression
from domain.signal import Signal

log = structlog.get_logger("realtime_strategies.runtime")
STALE = Suppression.STALE
RATE_CAP = Suppression.RATE_CAP


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class HeartbeatCounters:
    started_monotonic: float = field(default_factory=time.monotonic)
    last_messages: int = 0
    last_signals: int = 0
    last_time: float = field(default_factory=time.monotonic)
    consumer_errors: int = 0
    publisher_errors: int = 0
    budget_errors: int = 0
    """Signals published without the shared budget's slot: it could not be reached (the
    process-local cap still held them)."""


class ServiceRuntime:
    """Runs feed → engine → sink (module doc); reports what it did in :meth:`heartbeat`."""

    def __init__(
        self,
        feed: MarketFeed,
        engine: SignalEngine,
        sink: SignalSink,
        *,
        observer: RunObserver | None = None,
        gate: SignalGate | None = None,
        budget: SignalBudget | None = None,
        tracing: MessageTracing | None = None,
        heartbeat_extra: Callable[[], Mapping[str, object]] | None = None,
        wall_clock_ms: Callable[[], int] = wall_clock_ms,
        max_signal_age_seconds: float = 0.0,
        taps: Sequence[MarketTap] = (),
    ) -> None:
        self.feed = feed
        self.engine = engine
        self.sink = sink
        self.observer = observer
        self.gate = gate
        self.budget = budget
        self.tracing = tracing
        self._heartbeat_extra = heartbeat_extra
        self._wall_ms = wall_clock_ms
        self.max_signal_age_ms = int(max_signal_age_seconds * 1000)
        """The staleness gate: 0 turns it off (the backtest has no wall clock, so no gate)."""
        self.taps = tuple(taps)
        self._event_taps = tuple(tap.on_event for tap in self.taps)
        self._published_taps = tuple(tap.on_published for tap in self.taps)
        self.counters = HeartbeatCounters()
        self.signals_published = 0
        self._finished = asyncio.Event()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Process every item of the feed until it ends (drained or exhausted).

        A message gets a span (continuing its trace context, which is passed on with its
        signals) when it carries a trace context or when spans are recorded; otherwise the
        span would be a no-op that still costs several microseconds per message, so none is
        started.
        """
        process = self.engine.process
        observer = self.observer
        tracing = self.tracing
        trace_all = tracing is not None and tracing.recording
        publish = self._publish
        timer = time.perf_counter
        max_age_ms = self.max_signal_age_ms
        event_taps = self._event_taps
        try:
            async for batch in self.feed.batches():
                if not batch:
                    continue
                now_ms = self._wall_ms() if observer is not None or max_age_ms else 0
                if observer is not None:  # the lag gauge keeps the latest value only
                    observer.message_consumed((now_ms - batch[-1].event.event_time_ms) / 1000.0)
                # Events older than this are stale: their signals are held (and counted).
                stale_before = now_ms - max_age_ms if max_age_ms else -1
                for item in batch:
                    hold = STALE if item.event.event_time_ms < stale_before else None
                    started = timer()
                    carrier = item.trace_context
                    if tracing is not None and (carrier or trace_all):
                        if not await self._process_traced(item, carrier, tracing, hold):
                            continue
                    else:
                        try:
                            event = item.event
                            for tap in event_taps:  # the event first, as the backtest does
                                tap(event)
                            signals = process(event, hold)
                        except Exception:  # one event never stops the loop
                            self._processing_failed(item)
                            continue
                        for emitted in signals:
                            await publish(item, emitted, None)
                    if observer is not None:
                        observer.message_processed(timer() - started)
        finally:
            self._finished.set()

    async def _process_traced(
        self,
        item: FeedItem,
        carrier: Mapping[str, str] | None,
        tracing: MessageTracing,
        hold: str | None,
    ) -> bool:
        """The message in its span (consume), with child spans ``evaluate`` and, when it
        produced signals, ``publish``; False if processing raised."""
        with tracing.message_span(carrier) as span:
            try:
                for tap in self._event_taps:
                    tap(item.event)
                with span.stage("evaluate"):
                    signals = self.engine.process(item.event, hold)
            except Exception:  # one event never stops the loop
                self._processing_failed(item)
                return False
            if not signals:
                return True
            span.signals_emitted(len(signals))
            with span.stage("publish"):
                outgoing = span.outgoing_context()
                for emitted in signals:
                    await self._publish(item, emitted, outgoing)
        return True

    def _processing_failed(self, item: FeedItem) -> None:
        self.counters.consumer_errors += 1
        log.exception("event_processing_failed", event_type=type(item.event).__name__)

    async def _publish(
        self, item: FeedItem, emitted: Signal, trace_context: Mapping[str, str] | None
    ) -> None:
        gate = self.gate
        if gate is not None:
            admission = gate.admit(item, emitted)
            if admission is not Admission.PUBLISH:
                if admission is Admission.PUBLISHED_BEFORE:
                    self._tap_published(emitted)
                return
        if self.budget is not None and not await self._budget_allows(self.budget, emitted):
            return
        try:
            await self.sink.publish(emitted, trace_context)
        except Exception:  # the sink buffers and retries; an error here is counted and logged
            self.counters.publisher_errors += 1
            log.exception("signal_publish_failed", signal_id=emitted.signal_id)
            return
        self.signals_published += 1
        if gate is not None:
            gate.published(item, emitted)
        if self.observer is not None:
            self.observer.signal_emitted(emitted)
        self._tap_published(emitted)

    async def _budget_allows(self, budget: SignalBudget, emitted: Signal) -> bool:
        """Whether the shared per-minute budget has a slot for ``emitted`` (taken if so); a
        refusal is counted as a ``rate_cap`` suppression. An unreachable budget lets the
        signal through (counted, logged): governance's own cap still held it in this
        process, and the sink buffers while NATS is away."""
        cap = self.engine.governance.limits_of(emitted.symbol).max_signals_per_minute
        if cap <= 0:
            return True
        try:
            taken = await budget.take(emitted.event_time_ms, cap, emitted.signal_id)
        except Exception as exc:
            self.counters.budget_errors += 1
            log.warning("signal_budget_unavailable", signal_id=emitted.signal_id, error=str(exc))
            return True
        if not taken:
            self.engine.stats.count_held(emitted.strategy_id, RATE_CAP)
        return taken

    def _tap_published(self, emitted: Signal) -> None:
        for tap in self._published_taps:
            try:
                tap(emitted)
            except Exception:  # scoring never costs a published signal anything
                self.counters.consumer_errors += 1
                log.exception("signal_tap_failed", signal_id=emitted.signal_id)

    # ------------------------------------------------------------------ shutdown

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Drain the feed, let the loop finish what was received, flush the sink; within
        ``timeout`` seconds (half for the drain, a quarter for the rest of the loop, what
        remains for the flush). The feed's drain gets 0.4 of ``timeout`` as its own deadline,
        so that what it does when that passes (end its subscriptions and its batches) runs
        before the guard at half cancels it."""
        deadline = time.monotonic() + timeout
        if not self._finished.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.feed.drain(timeout=0.4 * timeout), timeout / 2)
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                await asyncio.wait_for(self._finished.wait(), remaining / 2)
            except TimeoutError:
                log.error("consumer_did_not_drain_in_time")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.flush(), max(deadline - time.monotonic(), 0.1))

    # ------------------------------------------------------------------ reporting

    def heartbeat(self) -> dict[str, object]:
        """The reference heartbeat fields, computed since the previous heartbeat."""
        stats = self.engine.stats
        now = time.monotonic()
        c = self.counters
        elapsed = max(now - c.last_time, 1e-9)
        messages, signals = stats.events, stats.signals
        body: dict[str, object] = {
            "messages_processed": messages,
            "signals_generated": signals,
            "consumer_errors": c.consumer_errors + sum(stats.strategy_errors.values()),
            "publisher_errors": c.publisher_errors,
            "signal_budget_errors": c.budget_errors,
            "messages_per_second": round((messages - c.last_messages) / elapsed, 2),
            "signals_per_minute": round((signals - c.last_signals) * 60.0 / elapsed, 2),
            "uptime_seconds": round(now - c.started_monotonic, 1),
            "signals_suppressed": stats.suppressed(),
            "strategies": {
                strategy.strategy_id: {
                    "signals": sum(
                        n
                        for (sid, _), n in stats.signals_by_strategy_action.items()
                        if sid == strategy.strategy_id
                    )
                }
                for strategy in self.engine.strategies
            },
        }
        if self._heartbeat_extra is not None:
            body.update(self._heartbeat_extra())
        c.last_messages, c.last_signals, c.last_time = messages, signals, now
        return body


class ConfigRefresher:
    """Keeps the effective configuration fresh: once at start, then every ``interval``
    seconds; a store that does not answer leaves the last known configuration in force."""

    def __init__(self, refresh: Callable[[], Awaitable[object]], interval_seconds: float) -> None:
        self._refresh = refresh
        self.interval = interval_seconds

    async def first(self) -> None:
        try:
            await self._refresh()
        except StoreUnavailableError as error:
            log.warning(
                "config_store_unavailable_at_start",
                error=str(error),
                using="defaults and environment until a store answers",
            )

    async def forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._refresh()
            except StoreUnavailableError as error:
                log.warning("config_refresh_failed", error=str(error), using="last known config")
