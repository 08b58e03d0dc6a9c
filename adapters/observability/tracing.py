"""OpenTelemetry: spans of processed messages and their export without secrets.

- :class:`OpenTelemetryTracing` (the ``MessageTracing`` port): a message's span continues the
  producer's trace context (``_otel_trace_context`` or the ``traceparent`` header) and the
  context of that span goes on with the message's signals.
- :class:`RedactingSpanExporter` wraps any exporter: an exception recorded on a span
  (``exception.message``, ``exception.stacktrace``) or an attribute may hold a connection
  string; every string of a span (name, attributes, event attributes, status description)
  goes through :func:`adapters.redaction.redact` before the wrapped exporter sees it.
- :func:`span_exporter`: console, or OTLP over HTTP/protobuf (default) or gRPC, configured by
  the standard ``OTEL_EXPORTER_OTLP_*`` variables, which the OTLP exporters read themselves
  (docs/adr/0015-otlp-http-protobuf-by-default.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status

from adapters.redaction import redact, redact_value

SPAN_NAME = "process_market_event"

OtlpProtocol = Literal["http/protobuf", "grpc"]


def span_exporter(kind: str, protocol: OtlpProtocol = "http/protobuf") -> SpanExporter:
    """The exporter ``OTEL_EXPORTER`` names: ``console`` (stderr) or ``otlp``.

    The OTLP exporters read ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``,
    ``_TIMEOUT``, ``_COMPRESSION`` and ``_CERTIFICATE`` from the environment themselves
    (defaults: ``http://localhost:4318/v1/traces`` for HTTP, ``localhost:4317`` for gRPC).
    """
    if kind == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if kind != "otlp":
        raise ValueError(f"unknown span exporter {kind!r}: none, console or otlp")
    # imported on use: gRPC loads a native library most processes never need
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def tracing_enabled() -> bool:
    """True when a real tracer provider is installed (spans are recorded and exported)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


STAGE_SPANS: Mapping[str, tuple[str, SpanKind]] = {
    "evaluate": ("evaluate_strategies", SpanKind.INTERNAL),
    "publish": ("publish_signals", SpanKind.PRODUCER),
}
"""Child spans of a message's span, by stage: the strategies' evaluation, the publishing."""


class _MessageSpan:
    __slots__ = ("_span", "_tracer")

    def __init__(self, span: Span, tracer: trace.Tracer) -> None:
        self._span = span
        self._tracer = tracer

    def signals_emitted(self, count: int) -> None:
        self._span.set_attribute("signals", count)

    def outgoing_context(self) -> Mapping[str, str] | None:
        outgoing: dict[str, str] = {}
        inject(outgoing)
        return outgoing or None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        span_name, kind = STAGE_SPANS[name]
        with self._tracer.start_as_current_span(span_name, kind=kind):
            yield


class OpenTelemetryTracing:
    """``MessageTracing`` over the globally installed OpenTelemetry tracer provider.

    ``record_all``: a span for every message (True), only for messages that carry a trace
    context (False), or None — every message when a real tracer provider is installed
    (``OTEL_EXPORTER`` other than none) at the time the run loop starts.
    """

    def __init__(self, record_all: bool | None = None, tracer: trace.Tracer | None = None) -> None:
        self._record_all = record_all
        self.tracer = tracer if tracer is not None else trace.get_tracer("realtime-strategies")

    @property
    def recording(self) -> bool:
        return self._record_all if self._record_all is not None else tracing_enabled()

    @contextmanager
    def message_span(self, trace_context: Mapping[str, str] | None) -> Iterator[_MessageSpan]:
        context = extract(trace_context) if trace_context else None
        with self.tracer.start_as_current_span(
            SPAN_NAME, context=context, kind=SpanKind.CONSUMER
        ) as span:
            yield _MessageSpan(span, self.tracer)


class RedactingSpanExporter(SpanExporter):
    """Exports copies of the spans with every string redacted (``secrets``: known values)."""

    def __init__(self, exporter: SpanExporter, secrets: Sequence[str] = ()) -> None:
        self._exporter = exporter
        self._secrets = tuple(secrets)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([self.redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def redacted(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, redact(status.description, self._secrets))
        return ReadableSpan(
            name=redact(span.name, self._secrets),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(event.name, self._attributes(event.attributes), event.timestamp)
                for event in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            key: redact_value(tuple(value) if isinstance(value, list) else value, self._secrets)
            for key, value in (attributes or {}).items()
        }
