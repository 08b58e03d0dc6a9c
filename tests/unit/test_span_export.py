"""Which span exporter ``OTEL_EXPORTER`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` select (ADR 15).
The HTTP transport is tested end to end against a receiver in
tests/integration/test_telemetry.py."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from pydantic import ValidationError

from adapters.observability.tracing import span_exporter
from entrypoints.settings import Settings

pytestmark = pytest.mark.unit


def test_http_protobuf_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    settings = Settings(otel_exporter="otlp")
    assert settings.otel_exporter_otlp_protocol == "http/protobuf"
    exporter = span_exporter(settings.otel_exporter, settings.otel_exporter_otlp_protocol)
    assert isinstance(exporter, HttpSpanExporter)
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_grpc_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    settings = Settings(otel_exporter="otlp")
    exporter = span_exporter(settings.otel_exporter, settings.otel_exporter_otlp_protocol)
    assert isinstance(exporter, GrpcSpanExporter)
    exporter.shutdown()


def test_console() -> None:
    assert isinstance(span_exporter("console"), ConsoleSpanExporter)


@pytest.mark.parametrize("protocol", ["http/json", "udp", ""])
def test_other_protocols_are_refused(monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    with pytest.raises(ValidationError, match="otel_exporter_otlp_protocol"):
        Settings(otel_exporter="otlp")


def test_unknown_exporters_are_refused() -> None:
    with pytest.raises(ValidationError, match="otel_exporter"):
        Settings(otel_exporter="jaeger")
    with pytest.raises(ValueError, match="unknown span exporter"):
        span_exporter("jaeger")
