"""Span export without secrets: :class:`RedactingSpanExporter` wraps any exporter.

An exception recorded on a span (``exception.message``, ``exception.stacktrace``) or an
attribute may hold a connection string; every string of a span (name, attributes, event
attributes, status description) goes through :func:`adapters.redaction.redact` before the
wrapped exporter sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from adapters.redaction import redact, redact_value


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
