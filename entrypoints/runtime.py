"""The service's main loop: consume → process → publish, plus config refresh, heartbeat,
the HTTP API, and a graceful shutdown on SIGTERM/SIGINT.

Shutdown order (bounded by ``shutdown_grace_seconds``): stop taking new messages (drain the
subscription, which hands over everything already received), process what is queued, flush
the signal sink (buffered signals included), stop the API, then close connections and stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as os_signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind

from application.config_service import ConfigService
from application.ports import StoreUnavailableError
from application.processing import MarketEventProcessor
from domain.market import MarketEvent
from domain.signal import Signal

log = structlog.get_logger("realtime_strategies.runtime")
tracer = trace.get_tracer("realtime-strategies")


class FeedItemLike(Protocol):
    @property
    def event(self) -> MarketEvent: ...

    @property
    def trace_context(self) -> Mapping[str, str] | None: ...


class ItemFeed(Protocol):
    """A market feed that also hands out the trace context of each message."""

    def items(self) -> AsyncIterator[FeedItemLike]: ...

    async def drain(self, timeout: float = 10.0) -> None: ...  # noqa: ASYNC109


class Publisher(Protocol):
    async def publish(
        self, signal: Signal, trace_context: Mapping[str, str] | None = None
    ) -> None: ...

    async def flush(self) -> None: ...


class RuntimeObserver(Protocol):
    """Where the runtime reports consumer lag and published signals (Prometheus)."""

    def message_consumed(self, lag_seconds: float) -> None: ...

    def signal_emitted(self, signal: Signal) -> None: ...


Hook = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class HeartbeatCounters:
    started_monotonic: float = field(default_factory=time.monotonic)
    last_messages: int = 0
    last_signals: int = 0
    last_time: float = field(default_factory=time.monotonic)
    consumer_errors: int = 0
    publisher_errors: int = 0


class ServiceRuntime:
    """Runs the service until its feed ends or a termination signal arrives."""

    def __init__(
        self,
        *,
        feed: ItemFeed,
        processor: MarketEventProcessor,
        sink: Publisher,
        config_service: ConfigService,
        observer: RuntimeObserver | None = None,
        api_server: Any | None = None,
        startup: Sequence[Hook] = (),
        shutdown: Sequence[Hook] = (),
        heartbeat_interval_seconds: float = 60.0,
        config_refresh_interval_seconds: float = 60.0,
        shutdown_grace_seconds: float = 20.0,
        heartbeat_extra: Callable[[], Mapping[str, object]] | None = None,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        tracing: bool | None = None,
    ) -> None:
        self.feed = feed
        self.processor = processor
        self.sink = sink
        self.config_service = config_service
        self.observer = observer
        self.api_server = api_server
        self._startup = tuple(startup)
        self._shutdown = tuple(shutdown)
        self.heartbeat_interval = heartbeat_interval_seconds
        self.refresh_interval = config_refresh_interval_seconds
        self.grace = shutdown_grace_seconds
        self._heartbeat_extra = heartbeat_extra
        self._wall_ms = wall_clock_ms
        # A span per message even without a trace context: True/False, or None for "when a
        # real tracer provider is installed" (OTEL_EXPORTER other than none).
        self.tracing = tracing
        self.stopping = asyncio.Event()
        self.counters = HeartbeatCounters()
        self.signals_published = 0

    def request_stop(self) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ main loop

    async def consume(self) -> None:
        """Process every item of the feed; a bad event or failed publish costs that one item.

        A message gets a span (continuing its trace context, which is passed on in its
        signals) when it carries a trace context or when tracing is on; otherwise the span
        would be a no-op that still costs several microseconds per message, so it is skipped.
        """
        processor = self.processor
        observer = self.observer
        tracing = self.tracing if self.tracing is not None else tracing_enabled()
        async for item in self.feed.items():
            event = item.event
            if observer is not None:
                observer.message_consumed((self._wall_ms() - event.event_time_ms) / 1000.0)
            carrier = item.trace_context
            if carrier or tracing:
                await self._consume_traced(event, carrier)
                continue
            try:
                signals = processor.handle(event)
            except Exception:  # one event never stops the consumer
                self.counters.consumer_errors += 1
                log.exception("event_processing_failed", event_type=type(event).__name__)
                continue
            for emitted in signals:
                await self._publish(emitted, None)

    async def _consume_traced(self, event: MarketEvent, carrier: Mapping[str, str] | None) -> None:
        context = extract(carrier) if carrier else None
        with tracer.start_as_current_span(
            "process_market_event", context=context, kind=SpanKind.CONSUMER
        ) as span:
            try:
                signals = self.processor.handle(event)
            except Exception:  # one event never stops the consumer
                self.counters.consumer_errors += 1
                log.exception("event_processing_failed", event_type=type(event).__name__)
                return
            if not signals:
                return
            span.set_attribute("signals", len(signals))
            outgoing: dict[str, str] = {}
            inject(outgoing)
            for emitted in signals:
                await self._publish(emitted, outgoing or None)

    async def _publish(self, emitted: Signal, trace_context: Mapping[str, str] | None) -> None:
        try:
            await self.sink.publish(emitted, trace_context)
        except Exception:  # the sink buffers and retries; an error here is counted and logged
            self.counters.publisher_errors += 1
            log.exception("signal_publish_failed", signal_id=emitted.signal_id)
            return
        self.signals_published += 1
        if self.observer is not None:
            self.observer.signal_emitted(emitted)

    async def refresh_config_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.config_service.refresh()
            except StoreUnavailableError as error:
                log.warning("config_refresh_failed", error=str(error), using="last known config")

    async def heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            log.info("HEARTBEAT: Realtime Strategies Statistics", **self.heartbeat())

    def heartbeat(self) -> dict[str, object]:
        """The reference heartbeat fields, computed since the previous heartbeat."""
        stats = self.processor.stats
        now = time.monotonic()
        c = self.counters
        elapsed = max(now - c.last_time, 1e-9)
        messages, signals = stats.events, stats.signals
        body: dict[str, object] = {
            "messages_processed": messages,
            "signals_generated": signals,
            "consumer_errors": c.consumer_errors + sum(stats.strategy_errors.values()),
            "publisher_errors": c.publisher_errors,
            "messages_per_second": round((messages - c.last_messages) / elapsed, 2),
            "signals_per_minute": round((signals - c.last_signals) * 60.0 / elapsed, 2),
            "uptime_seconds": round(now - c.started_monotonic, 1),
            "strategies": {
                strategy.strategy_id: {
                    "signals": sum(
                        n
                        for (sid, _), n in stats.signals_by_strategy_action.items()
                        if sid == strategy.strategy_id
                    )
                }
                for strategy in processor_strategies(self.processor)
            },
        }
        if self._heartbeat_extra is not None:
            body.update(self._heartbeat_extra())
        c.last_messages, c.last_signals, c.last_time = messages, signals, now
        return body

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (os_signal.SIGTERM, os_signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        for hook in self._startup:
            await hook()
        try:
            await self.config_service.refresh()
        except StoreUnavailableError as error:
            log.warning(
                "config_store_unavailable_at_start",
                error=str(error),
                using="defaults and environment until a store answers",
            )
        background = [
            asyncio.create_task(self.refresh_config_forever(), name="config-refresh"),
            asyncio.create_task(self.heartbeat_forever(), name="heartbeat"),
        ]
        if self.api_server is not None:
            background.append(asyncio.create_task(self.api_server.serve(), name="api"))
        consumer = asyncio.create_task(self.consume(), name="consumer")
        stopper = asyncio.create_task(self.stopping.wait(), name="stop-signal")
        log.info("service_started")
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await self._shutdown_sequence(consumer, background)
        stopper.cancel()

    async def _shutdown_sequence(
        self, consumer: asyncio.Task[None], background: list[asyncio.Task[Any]]
    ) -> None:
        log.info("service_stopping", grace_seconds=self.grace)
        deadline = time.monotonic() + self.grace
        if not consumer.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.feed.drain(timeout=self.grace / 2), self.grace / 2)
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                await asyncio.wait_for(consumer, remaining / 2)
            except TimeoutError:
                log.error("consumer_did_not_drain_in_time")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.flush(), max(deadline - time.monotonic(), 0.1))
        if self.api_server is not None:
            self.api_server.should_exit = True
        for task in background:
            if task.get_name() != "api":
                task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for hook in self._shutdown:
            with contextlib.suppress(Exception):
                await hook()
        log.info("service_stopped", **self.heartbeat())


def tracing_enabled() -> bool:
    """True when a real tracer provider is installed (spans are recorded and exported)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def processor_strategies(processor: MarketEventProcessor) -> Sequence[Any]:
    return processor.engine.strategies
