"""Telemetry of the real ``realtime-strategies serve`` process.

- ``OTEL_EXPORTER=otlp`` with the standard ``OTEL_EXPORTER_OTLP_*`` variables: spans reach an
  OTLP/HTTP receiver this test starts on loopback (a plain HTTP server decoding the
  ``ExportTraceServiceRequest`` protobuf of opentelemetry-proto): the message's
  consume → evaluate → publish spans, continuing the producer's trace, and a server span per
  API request. The OTLP headers (they may carry a token) reach the receiver and appear
  nowhere in the service's log or ``/ready``.
- A misspelt strategy variable stops ``serve`` with a non-zero exit code and a message naming
  the variable and the closest valid name.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.integration.cli import cli_command
from tests.integration.service_harness import (
    ServiceHarness,
    Topics,
    async_wait_until,
    depth_message,
    service_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTLP_TOKEN = "otlp-token-b1946ac92492d234"


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


@dataclass
class OtlpReceiver:
    """What the loopback OTLP/HTTP receiver got: spans, and the headers of every request."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.name == name]

    def children_of(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.parent_span_id == span.span_id]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans = [
                ReceivedSpan(
                    name=span.name,
                    kind=span.kind,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                )
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            with receiver.lock:
                receiver.spans += spans
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.paths.append(self.path)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[OtlpReceiver, int]]:
    receiver = OtlpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def test_otlp_spans_of_messages_and_api_requests_reach_the_receiver(
    otlp_receiver: tuple[OtlpReceiver, int], harness: ServiceHarness, nats_client: NatsClient
) -> None:
    receiver, port = otlp_receiver
    topics = Topics.unique()
    env = service_env(
        topics,
        config_store="memory",
        otel_exporter="otlp",
        otel_exporter_otlp_endpoint=f"http://127.0.0.1:{port}",
        otel_exporter_otlp_headers=f"authorization=Bearer {OTLP_TOKEN}",
        otel_bsp_schedule_delay="200",
        orderbook_skew_cooldown_seconds="0",
    )
    service = harness.start("traced", env)
    ready = await service.wait_ready_async()

    now = datetime.now(UTC)
    payload = depth_message("BTCUSDT", now, ratio=3.0, update_id=1)  # a buy signal
    await nats_client.publish(topics.consumer, payload, headers={"traceparent": TRACEPARENT})
    await nats_client.flush()
    assert service.request("GET", "/api/v1/strategies").status_code == 200

    def message_span() -> ReceivedSpan | None:
        traced = [s for s in receiver.named("process_market_event") if s.trace_id == TRACE_ID]
        return traced[0] if traced else None

    consumed = await async_wait_until(
        message_span, 30, "the message's span at the receiver", context=service.describe
    )
    stages = await async_wait_until(
        lambda: (
            {s.name: s for s in receiver.children_of(consumed)}
            if len(receiver.children_of(consumed)) == 2
            else None
        ),
        30,
        "the evaluate and publish spans",
        context=service.describe,
    )
    assert set(stages) == {"evaluate_strategies", "publish_signals"}
    assert consumed.parent_span_id == TRACEPARENT.split("-")[2]  # continues the producer's
    assert consumed.kind == Span.SPAN_KIND_CONSUMER
    assert stages["publish_signals"].kind == Span.SPAN_KIND_PRODUCER
    assert consumed.attributes["signals"] >= 1

    def api_span() -> ReceivedSpan | None:
        with receiver.lock:
            found = [
                s
                for s in receiver.spans
                if s.kind == Span.SPAN_KIND_SERVER
                and s.attributes.get("http.route") == "/api/v1/strategies"
            ]
        return found[0] if found else None

    request_span = await async_wait_until(
        api_span, 30, "the API request's span", context=service.describe
    )
    assert request_span.name == "GET /api/v1/strategies"
    assert request_span.attributes["http.response.status_code"] == 200

    # the OTLP headers are sent, never logged nor shown
    with receiver.lock:
        assert receiver.paths[0] == "/v1/traces"
        assert all(h.get("authorization") == f"Bearer {OTLP_TOKEN}" for h in receiver.headers)
        assert all(h.get("content-type") == "application/x-protobuf" for h in receiver.headers)
    configured = service.events("tracing_configured")
    assert configured
    assert configured[0]["protocol"] == "http/protobuf"
    assert configured[0]["endpoint"] == f"http://127.0.0.1:{port}"
    status, body = service.ready_status()
    assert status == 200
    assert OTLP_TOKEN not in str(body) + str(ready)
    assert service.terminate() == 0
    assert OTLP_TOKEN not in service.log_text()
    assert OTLP_TOKEN not in service.stdout_path.read_text(errors="replace")


def test_a_misspelt_strategy_variable_stops_serve(tmp_path: Path) -> None:
    env = service_env(
        Topics.unique(),
        config_store="memory",
        orderbook_skew_buy_threshld="1.3",
        strategy_enabled_ticker_velocty="false",
    )
    result = subprocess.run(
        cli_command("serve"),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ORDERBOOK_SKEW_BUY_THRESHLD" in result.stderr
    assert "closest valid name is ORDERBOOK_SKEW_BUY_THRESHOLD" in result.stderr
    assert "STRATEGY_ENABLED_TICKER_VELOCTY" in result.stderr
    assert "closest valid name is STRATEGY_ENABLED_TICKER_VELOCITY" in result.stderr
