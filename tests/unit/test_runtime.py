"""The run loop (``application.runtime.ServiceRuntime``).

Its per-message span is taken only when it can matter.

A message with a trace context gets a span continuing it, and its signals carry that context
on; with tracing off and no context, no span is started (a no-op span still costs several
microseconds per message) and the signals carry none — what the no-op span gave anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.observability.tracing import SPAN_NAME, OpenTelemetryTracing, tracing_enabled
from application.ports import Admission
from application.runtime import ServiceRuntime
from domain.market import DepthSnapshot
from domain.strategies.orderbook_skew import OrderbookSkewStrategy
from tests.unit.strategies.support import config_doc, engine_with

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class Item:
    event: Any
    trace_context: Mapping[str, str] | None
    message_id: str | None = None
    received_at_ns: int = 0


@dataclass
class Event:
    event_time_ms: int = 1_723_161_255_000


@dataclass
class FakeSignal:
    signal_id: str


class Feed:
    def __init__(self, items: list[Item]) -> None:
        self._items = items

    async def batches(self) -> AsyncIterator[list[Item]]:
        yield self._items[:2]
        yield self._items[2:]

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        return None


class Engine:
    """Two signals for every event."""

    def __init__(self) -> None:
        self.handled = 0

    def process(self, event: Any, hold: str | None = None) -> list[FakeSignal]:
        self.handled += 1
        return [FakeSignal(f"s{self.handled}a"), FakeSignal(f"s{self.handled}b")]


@dataclass
class Sink:
    published: list[tuple[str, Mapping[str, str] | None]] = field(default_factory=list)

    async def publish(self, signal: Any, trace_context: Mapping[str, str] | None = None) -> None:
        self.published.append((signal.signal_id, trace_context))

    async def flush(self) -> None:
        return None


class CountingTracer:
    """Wraps the module's tracer and counts the spans started: ``spans`` the messages' own,
    ``stages`` their child spans."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spans = 0
        self.stages = 0

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> AbstractContextManager[Any]:
        if args[0] == SPAN_NAME:
            self.spans += 1
        else:
            self.stages += 1
        manager: AbstractContextManager[Any] = self.inner.start_as_current_span(*args, **kwargs)
        return manager


@pytest.fixture
def counting_tracer() -> CountingTracer:
    return CountingTracer(OpenTelemetryTracing().tracer)


ITEMS = [
    Item(Event(), None),
    Item(Event(), {"traceparent": TRACEPARENT}),
    Item(Event(), {}),
]


async def run_items(tracing: bool | None, tracer: CountingTracer) -> tuple[ServiceRuntime, Sink]:
    """A runtime that has run :data:`ITEMS` to the end with ``tracing``, and its sink."""
    sink = Sink()
    service = ServiceRuntime(
        Feed(ITEMS),
        cast(Any, Engine()),
        sink,
        tracing=OpenTelemetryTracing(tracing, cast(Any, tracer)),
    )
    await service.run()
    return service, sink


async def test_no_span_without_context_when_tracing_is_off(
    counting_tracer: CountingTracer,
) -> None:
    service, sink = await run_items(False, counting_tracer)
    assert counting_tracer.spans == 1  # only the message that carries a trace context
    contexts = [context for _, context in sink.published]
    assert [contexts[i] for i in (0, 1, 4, 5)] == [None, None, None, None]
    for context in contexts[2:4]:
        assert context is not None
        assert context["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert [signal_id for signal_id, _ in sink.published] == [
        "s1a",
        "s1b",
        "s2a",
        "s2b",
        "s3a",
        "s3b",
    ]
    assert service.signals_published == 6


async def test_a_span_per_message_when_tracing_is_on(counting_tracer: CountingTracer) -> None:
    service, sink = await run_items(True, counting_tracer)
    assert counting_tracer.spans == 3
    assert counting_tracer.stages == 6  # evaluate and publish of each
    assert service.signals_published == 6
    traced = sink.published[2][1]
    assert traced is not None
    assert traced["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


async def test_default_follows_the_installed_tracer_provider(
    counting_tracer: CountingTracer,
) -> None:
    await run_items(None, counting_tracer)
    assert counting_tracer.spans == (3 if tracing_enabled() else 1)


class FailingEngine(Engine):
    """Raises on the second event."""

    def process(self, event: Any, hold: str | None = None) -> list[FakeSignal]:
        if self.handled == 1:
            self.handled += 1
            raise RuntimeError("strategy bug")
        return super().process(event)


class FailingSink(Sink):
    async def publish(self, signal: Any, trace_context: Mapping[str, str] | None = None) -> None:
        if signal.signal_id.endswith("a"):
            raise ConnectionError("nats away")
        await super().publish(signal, trace_context)


class HoldBack:
    """A gate admitting only the signals of the first item."""

    def __init__(self, first: Item) -> None:
        self.first = first
        self.asked = 0
        self.told: list[str] = []

    def admit(self, item: Any, signal: Any) -> Admission:
        self.asked += 1
        return Admission.PUBLISH if item is self.first else Admission.HOLD

    def published(self, item: Any, signal: Any) -> None:
        self.told.append(signal.signal_id)


async def test_a_failing_event_or_publish_costs_that_one_only() -> None:
    sink = FailingSink()
    items = [Item(Event(), None) for _ in range(3)]
    service = ServiceRuntime(Feed(items), cast(Any, FailingEngine()), sink)
    await service.run()
    assert [signal_id for signal_id, _ in sink.published] == ["s1b", "s3b"]
    assert service.counters.consumer_errors == 1
    assert service.counters.publisher_errors == 2
    assert service.signals_published == 2


async def test_the_gate_decides_before_publishing() -> None:
    sink = Sink()
    items = [Item(Event(), None) for _ in range(3)]
    gate = HoldBack(items[0])
    service = ServiceRuntime(Feed(items), cast(Any, Engine()), sink, gate=gate)
    await service.run()
    assert [signal_id for signal_id, _ in sink.published] == ["s1a", "s1b"]
    assert gate.asked == 6
    assert gate.told == ["s1a", "s1b"]  # what it let through, once handed to the sink
    assert service.signals_published == 2


class EndlessFeed:
    """Batches until drained; then what was received (one more batch) and the end."""

    def __init__(self) -> None:
        self.draining = False
        self.served = 0
        self.busy = asyncio.Event()

    async def batches(self) -> AsyncIterator[list[Item]]:
        while not self.draining:
            self.served += 1
            if self.served == 5:
                self.busy.set()
            yield [Item(Event(), None)]
            await asyncio.sleep(0)
        self.served += 1
        yield [Item(Event(), None)]

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        self.draining = True


class FlushCounting(Sink):
    flushed_after: int | None = None

    async def flush(self) -> None:
        self.flushed_after = len(self.published)


class UndrainableFeed(EndlessFeed):
    """A feed whose subscriptions never drain: its drain gives up at its own deadline and
    then ends ``batches()``, as the NATS feeds do."""

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await asyncio.sleep(timeout)
        await super().drain(timeout)


@pytest.mark.parametrize("feed_type", [EndlessFeed, UndrainableFeed])
async def test_stop_drains_the_feed_processes_what_was_received_then_flushes(
    feed_type: type[EndlessFeed],
) -> None:
    feed = feed_type()
    sink = FlushCounting()
    service = ServiceRuntime(feed, cast(Any, Engine()), sink)
    running = asyncio.create_task(service.run())
    await feed.busy.wait()
    await service.stop(timeout=1.0)
    assert feed.draining, "the stop's guard cancelled the drain before it ended"
    assert running.done()
    assert len(sink.published) == 2 * feed.served  # the batch after the drain too
    assert sink.flushed_after == len(sink.published)


async def test_message_span_has_evaluate_and_publish_children_and_the_signals_follow() -> None:
    """consume → evaluate → publish: the message's span continues the producer's trace, the
    stages are its children, and the signals carry the publish span's context."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    sink = Sink()
    items = [Item(Event(), {"traceparent": TRACEPARENT})]
    tracing = OpenTelemetryTracing(True, provider.get_tracer("test"))
    service = ServiceRuntime(Feed(items), cast(Any, Engine()), sink, tracing=tracing)
    await service.run()
    spans = {span.name: span for span in exported.get_finished_spans()}
    assert set(spans) == {SPAN_NAME, "evaluate_strategies", "publish_signals"}
    message = spans[SPAN_NAME]
    assert message.kind == SpanKind.CONSUMER
    assert message.context is not None
    assert format(message.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert message.attributes == {"signals": 2}
    for stage in ("evaluate_strategies", "publish_signals"):
        parent = spans[stage].parent
        assert parent is not None
        assert parent.span_id == message.context.span_id
    assert spans["publish_signals"].kind == SpanKind.PRODUCER
    publish_context = spans["publish_signals"].context
    assert publish_context is not None
    for _, context in sink.published:
        assert context is not None
        assert context["traceparent"].split("-")[2] == format(publish_context.span_id, "016x")


@dataclass
class Observer:
    processed: list[float] = field(default_factory=list)
    consumed: list[float] = field(default_factory=list)
    emitted: list[Any] = field(default_factory=list)

    def message_consumed(self, lag_seconds: float) -> None:
        self.consumed.append(lag_seconds)

    def message_processed(self, seconds: float) -> None:
        self.processed.append(seconds)

    def signal_emitted(self, signal: Any) -> None:
        self.emitted.append(signal)


@pytest.mark.parametrize("traced", [False, True])
async def test_every_processed_message_reports_its_processing_time(traced: bool) -> None:
    """A failing event reports none (it is counted as a consumer error instead)."""
    observer = Observer()
    items = [Item(Event(), None) for _ in range(3)]
    tracing = OpenTelemetryTracing(traced)
    service = ServiceRuntime(
        Feed(items), cast(Any, FailingEngine()), Sink(), observer=observer, tracing=tracing
    )
    await service.run()
    assert len(observer.processed) == 2
    assert all(seconds >= 0 for seconds in observer.processed)
    assert len(observer.consumed) == 2  # one lag reading per batch
    assert len(observer.emitted) == 4


async def test_events_older_than_the_max_age_are_processed_but_their_signals_held() -> None:
    """The staleness gate (MAX_SIGNAL_AGE_SECONDS): strategies still see the stale event, its
    signals are counted as ``stale`` and not published; fresh events publish as usual."""
    strategy = OrderbookSkewStrategy()
    layer = config_doc("orderbook_skew", None, 1, cooldown_seconds=0, confirm_seconds=0.0)
    engine = engine_with(strategy, global_doc=layer)
    now_ms = 1_723_161_255_000 + 3_600_000
    stale = DepthSnapshot("BTCUSDT", now_ms - 61_000, ((100.0, 3.0),), ((100.01, 1.0),))
    inside = DepthSnapshot("BTCUSDT", now_ms - 60_000, ((100.0, 1.0),), ((100.01, 1.0),))
    fresh = DepthSnapshot("BTCUSDT", now_ms - 1_000, ((100.0, 3.0),), ((100.01, 1.0),))
    items = [Item(stale, None), Item(inside, None), Item(fresh, None)]
    sink = Sink()
    runtime = ServiceRuntime(
        Feed(items),
        engine,
        sink,
        wall_clock_ms=lambda: now_ms,
        max_signal_age_seconds=60,
    )
    await runtime.run()
    assert len(sink.published) == 1  # the fresh one
    assert engine.stats.suppressed()["stale"] == 1
    assert runtime.heartbeat()["signals_suppressed"] == engine.stats.suppressed()


@dataclass
class RecordingTap:
    seen: list[str] = field(default_factory=list)
    fail_on_published: bool = False

    def on_event(self, event: Any) -> None:
        self.seen.append("event")

    def on_published(self, signal: Any) -> None:
        self.seen.append(signal.signal_id)
        if self.fail_on_published:
            raise RuntimeError("tap bug")


class RefusingGate:
    """Publishes the ``…a`` signals, holds the ``…b`` ones, and the ``…c`` ones were
    published before (a takeover replay): the taps see those."""

    def admit(self, item: Any, signal: Any) -> Admission:
        if signal.signal_id.endswith("b"):
            return Admission.HOLD
        if signal.signal_id.endswith("c"):
            return Admission.PUBLISHED_BEFORE
        return Admission.PUBLISH

    def published(self, item: Any, signal: Any) -> None:
        return None


class ReplayEngine(Engine):
    """A published signal, a held one and one published before (a takeover replay)."""

    def process(self, event: Any, hold: str | None = None) -> list[FakeSignal]:
        self.handled += 1
        return [FakeSignal(f"s{self.handled}{kind}") for kind in "abc"]


async def test_a_signal_published_before_is_scored_on_but_not_sent_again() -> None:
    """A takeover replay regenerates signals its predecessor published: not sent again, but
    the taps see them, so that their live outcomes are scored on (they were not)."""
    tap = RecordingTap()
    sink = Sink()
    service = ServiceRuntime(
        Feed(ITEMS[:2]), cast(Any, ReplayEngine()), sink, gate=RefusingGate(), taps=[tap]
    )
    await service.run()
    assert tap.seen == ["event", "s1a", "s1c", "event", "s2a", "s2c"]
    assert [signal_id for signal_id, _ in sink.published] == ["s1a", "s2a"]
    assert service.signals_published == 2


async def test_taps_see_each_event_before_its_signals_and_only_published_signals(
    counting_tracer: CountingTracer,
) -> None:
    tap = RecordingTap(fail_on_published=True)
    sink = Sink()
    service = ServiceRuntime(
        Feed(ITEMS),
        cast(Any, Engine()),
        sink,
        gate=RefusingGate(),
        tracing=OpenTelemetryTracing(False, cast(Any, counting_tracer)),
        taps=[tap],
    )
    await service.run()
    assert tap.seen == ["event", "s1a", "event", "s2a", "event", "s3a"]
    assert [signal_id for signal_id, _ in sink.published] == ["s1a", "s2a", "s3a"]
    assert service.counters.consumer_errors == 3  # the tap's errors, counted, never fatal
