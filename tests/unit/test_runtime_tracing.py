"""The service runtime's per-message span: taken only when it can matter.

A message with a trace context gets a span continuing it, and its signals carry that context
on; with tracing off and no context, no span is started (a no-op span still costs several
microseconds per message) and the signals carry none — what the no-op span gave anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from entrypoints import runtime
from entrypoints.runtime import ServiceRuntime, tracing_enabled

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class Item:
    event: Any
    trace_context: Mapping[str, str] | None


@dataclass
class Event:
    event_time_ms: int = 1_723_161_255_000


@dataclass
class FakeSignal:
    signal_id: str


class Feed:
    def __init__(self, items: list[Item]) -> None:
        self._items = items

    async def items(self) -> AsyncIterator[Item]:
        for item in self._items:
            yield item

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        return None


class Processor:
    """Two signals for every event."""

    def __init__(self) -> None:
        self.handled = 0

    def handle(self, event: Any) -> list[FakeSignal]:
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
    """Wraps the module's tracer and counts the spans started."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spans = 0

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> AbstractContextManager[Any]:
        self.spans += 1
        manager: AbstractContextManager[Any] = self.inner.start_as_current_span(*args, **kwargs)
        return manager


@pytest.fixture
def counting_tracer(monkeypatch: pytest.MonkeyPatch) -> CountingTracer:
    counting = CountingTracer(runtime.tracer)
    monkeypatch.setattr(runtime, "tracer", counting)
    return counting


def make_runtime(items: list[Item], sink: Sink, tracing: bool | None) -> ServiceRuntime:
    return ServiceRuntime(
        feed=Feed(items),
        processor=cast(Any, Processor()),
        sink=sink,
        config_service=cast(Any, None),
        tracing=tracing,
    )


ITEMS = [
    Item(Event(), None),
    Item(Event(), {"traceparent": TRACEPARENT}),
    Item(Event(), {}),
]


async def test_no_span_without_context_when_tracing_is_off(
    counting_tracer: CountingTracer,
) -> None:
    sink = Sink()
    service = make_runtime(ITEMS, sink, tracing=False)
    await service.consume()
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
    sink = Sink()
    service = make_runtime(ITEMS, sink, tracing=True)
    await service.consume()
    assert counting_tracer.spans == 3
    assert service.signals_published == 6
    traced = sink.published[2][1]
    assert traced is not None
    assert traced["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


async def test_default_follows_the_installed_tracer_provider(
    counting_tracer: CountingTracer,
) -> None:
    sink = Sink()
    service = make_runtime(ITEMS, sink, tracing=None)
    await service.consume()
    assert counting_tracer.spans == (3 if tracing_enabled() else 1)
