"""Operations endpoints, the Prometheus adapter, and app-level behaviour (errors, ids, docs)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import structlog
from dependency_injector import providers
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from adapters.http.routers.health import HealthReporter
from adapters.nats.circuit_breaker import BreakerState
from adapters.observability.prometheus import (
    METRIC_NAMES,
    METRICS,
    PrometheusMetrics,
    ScrapeSources,
    event_type_label,
)
from application.health import ComponentStatus, HealthService
from application.ports import ProcessingObserver
from domain.engine import EngineStats
from tests.clock import ManualSeconds
from tests.signals import a_signal
from tests.unit.api.conftest import ApiTestContainer, FakeHealth, SteppingClock, make_client

pytestmark = pytest.mark.unit


# --- liveness and readiness -------------------------------------------------------------------


async def test_healthz_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "alive"


async def test_ready_is_200_with_components(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == {"nats", "config_store", "feed"}


async def test_not_ready_is_503_with_reasons(
    client: httpx.AsyncClient, health: FakeHealth, prometheus: PrometheusMetrics
) -> None:
    health.ready = False
    health.components["nats"] = {"ready": False, "degraded": False, "detail": "not connected"}
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["components"]["nats"]["detail"] == "not connected"
    assert body["reasons"] == ["nats: not connected"]
    assert prometheus.registry.get_sample_value("realtime_strategies_ready") == 0.0
    assert (await client.get("/healthz")).status_code == 200


async def test_ready_body_is_redacted(client: httpx.AsyncClient, health: FakeHealth) -> None:
    health.components["nats"] = {
        "ready": True,
        "detail": "connected",
        "info": {"url": "nats://alice:nats-password@nats:4222"},
    }
    health.components["config_store"] = {
        "ready": False,
        "detail": "mongodb: OperationFailure: mongodb://m:mongo-password@mongo auth failed",
    }
    response = await client.get("/ready")
    assert "nats-password" not in response.text
    assert "mongo-password" not in response.text
    assert response.json()["components"]["nats"]["info"]["url"] == "nats://alice:***@nats:4222"


async def test_broken_readiness_is_503_without_internals(
    client: httpx.AsyncClient, health: FakeHealth
) -> None:
    health.broken = True
    response = await client.get("/ready")
    assert response.status_code == 503
    assert "mongodb://" not in response.text
    assert response.json()["status"] == "not_ready"


async def test_real_health_service_satisfies_the_protocol(
    container: ApiTestContainer, app: FastAPI
) -> None:
    async def nats() -> ComponentStatus:
        return ComponentStatus("nats", ready=False, detail="connecting")

    async def config_store() -> ComponentStatus:
        return ComponentStatus("config_store", ready=True)

    service: HealthReporter = HealthService([nats, config_store], SteppingClock())
    container.health.override(providers.Object(service))
    async with make_client(app) as http:
        response = await http.get("/ready")
        assert response.status_code == 503
        assert response.json()["reasons"] == ["nats: connecting"]
        assert (await http.get("/healthz")).status_code == 200


# --- /metrics ---------------------------------------------------------------------------------


def fully_sourced_metrics() -> PrometheusMetrics:
    stats = EngineStats()
    stats.events_by_type.update({"DepthSnapshot": 10, "Trade": 5})
    stats.signals_by_strategy_action[("orderbook_skew", "buy")] += 2
    stats.outcome_counter("orderbook_skew").update(signal=1, cooldown=1)
    stats.outcome_counter("trade_momentum")["no_signal"] += 1
    stats.strategy_errors["ticker_velocity"] += 1
    sources = ScrapeSources(
        processing=lambda: stats,
        invalid_by_reason=lambda: {"malformed_json": 3, "crossed_book": 1},
        message_errors=lambda: 4,
        last_event_time_ms=lambda: 1_000_000,
        publish_errors=lambda: 4,
        signal_budget_errors=lambda: 2,
        signal_duplicate_acks=lambda: 3,
        signals_dropped=lambda: {"buffer_full": 1},
        signal_buffer_size=lambda: 7,
        circuit_breakers=lambda: {"nats_publish": BreakerState.HALF_OPEN},
        nats_connected=lambda: True,
        config_stores_up=lambda: {"mongodb": False, "mysql": True},
        config_cache=lambda: {"hits": 100, "misses": 3},
        config_events=lambda: {"broadcast_reloads": 2, "writes_refused_overload": 5},
        signal_pauses=lambda: 1,
        ready=lambda: True,
    )
    metrics = PrometheusMetrics(sources, clock=ManualSeconds(1_002.5))
    observer: ProcessingObserver = metrics
    observer.strategy_evaluated("orderbook_skew", 0.00002)
    observer.strategy_evaluated("orderbook_skew", 0.00001)
    observer.strategy_evaluated("trade_momentum", 0.00003)
    metrics.signals_emitted([a_signal(strategy_id="orderbook_skew", confidence=0.82)])
    metrics.message_processed(0.0004)
    return metrics


def test_every_declared_metric_is_exported() -> None:
    metrics = fully_sourced_metrics()
    text, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    exposition = text.decode()
    for name in METRIC_NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in exposition, name
    assert metrics.exported_names() == set(METRIC_NAMES)


def test_metric_names_are_unique_prefixed_and_documented() -> None:
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
    for info in METRICS:
        assert info.name.startswith("realtime_strategies_")
        assert info.help
        assert info.name.endswith("_total") == (info.type == "counter")


def test_values_read_at_scrape_time() -> None:
    metrics = fully_sourced_metrics()
    value = metrics.registry.get_sample_value
    assert value("realtime_strategies_messages_processed_total", {"type": "depth"}) == 10
    assert value("realtime_strategies_messages_processed_total", {"type": "trade"}) == 5
    assert value("realtime_strategies_messages_invalid_total", {"reason": "crossed_book"}) == 1
    assert value("realtime_strategies_messages_errors_total") == 4
    labels = {"strategy": "orderbook_skew", "action": "buy"}
    assert value("realtime_strategies_signals_generated_total", labels) == 2
    assert value("realtime_strategies_consumer_lag_seconds") == pytest.approx(2.5)
    assert value("realtime_strategies_publish_errors_total") == 4
    assert value("realtime_strategies_signal_publish_duplicates_total") == 3
    assert value("realtime_strategies_signal_budget_errors_total") == 2
    assert value("realtime_strategies_signals_dropped_total", {"reason": "buffer_full"}) == 1
    assert value("realtime_strategies_signal_buffer_size") == 7
    assert value("realtime_strategies_circuit_breaker_state", {"name": "nats_publish"}) == 2
    assert value("realtime_strategies_nats_connected") == 1
    assert value("realtime_strategies_config_store_up", {"store": "mongodb"}) == 0
    assert value("realtime_strategies_config_store_up", {"store": "mysql"}) == 1
    assert value("realtime_strategies_config_cache_hits_total") == 100
    assert value("realtime_strategies_config_cache_misses_total") == 3
    events = "realtime_strategies_config_events_total"
    assert value(events, {"event": "writes_refused_overload"}) == 5
    assert value("realtime_strategies_ready") == 1


def test_observer_metrics() -> None:
    metrics = fully_sourced_metrics()
    value = metrics.registry.get_sample_value
    latency = "realtime_strategies_strategy_latency_seconds"
    assert value(f"{latency}_count", {"strategy": "orderbook_skew"}) == 2
    assert value(f"{latency}_bucket", {"strategy": "orderbook_skew", "le": "2.5e-05"}) == 2
    assert value(f"{latency}_bucket", {"strategy": "orderbook_skew", "le": "1e-05"}) == 1
    executions = "realtime_strategies_strategy_executions_total"
    assert value(executions, {"strategy": "orderbook_skew", "result": "signal"}) == 1
    assert value(executions, {"strategy": "orderbook_skew", "result": "cooldown"}) == 1
    assert value(executions, {"strategy": "ticker_velocity", "result": "error"}) == 1
    errors = "realtime_strategies_strategy_errors_total"
    assert value(errors, {"strategy": "ticker_velocity"}) == 1
    cooldown = "realtime_strategies_cooldown_suppressed_total"
    assert value(cooldown, {"strategy": "orderbook_skew"}) == 1
    suppressed = "realtime_strategies_signals_suppressed_total"
    assert value(suppressed, {"strategy": "orderbook_skew", "reason": "cooldown"}) == 1
    assert value(suppressed, {"strategy": "orderbook_skew", "reason": "reversal"}) is None
    assert value(executions, {"strategy": "trade_momentum", "result": "no_signal"}) == 1
    assert value(executions, {"strategy": "trade_momentum", "result": "signal"}) is None
    processing = "realtime_strategies_processing_latency_seconds"
    assert value(f"{processing}_count") == 1
    assert value(f"{processing}_sum") == pytest.approx(0.0004)
    assert value(f"{processing}_bucket", {"le": "0.0005"}) == 1
    assert value(f"{processing}_bucket", {"le": "0.00025"}) == 0
    assert value(f"{processing}_bucket", {"le": "1.0"}) == 1
    confidence = "realtime_strategies_signal_confidence"
    assert value(f"{confidence}_bucket", {"strategy": "orderbook_skew", "le": "0.9"}) == 1
    assert value(f"{confidence}_bucket", {"strategy": "orderbook_skew", "le": "0.8"}) == 0


def test_registries_are_independent() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.strategy_evaluated("orderbook_skew", 0.001)
    labels = {"strategy": "orderbook_skew"}
    name = "realtime_strategies_strategy_latency_seconds_count"
    assert first.registry.get_sample_value(name, labels) == 1
    assert second.registry.get_sample_value(name, labels) is None


def test_broken_source_does_not_break_the_scrape() -> None:
    def broken() -> dict[str, float]:
        raise RuntimeError("sink gone")

    metrics = PrometheusMetrics(
        ScrapeSources(invalid_by_reason=broken, publish_errors=lambda: 2, nats_connected=lambda: 0)
    )
    text, _ = metrics.render()
    families = {f.name for f in text_string_to_metric_families(text.decode())}
    assert "realtime_strategies_publish_errors" in families
    assert "realtime_strategies_messages_invalid" not in families
    assert metrics.scrape_errors == 1
    assert metrics.registry.get_sample_value("realtime_strategies_nats_connected") == 0


def test_absent_sources_are_not_exported_and_lag_can_be_pushed() -> None:
    metrics = PrometheusMetrics(ScrapeSources(last_event_time_ms=lambda: None))
    assert metrics.registry.get_sample_value("realtime_strategies_consumer_lag_seconds") is None
    assert metrics.registry.get_sample_value("realtime_strategies_ready") is None
    pushed = PrometheusMetrics()
    pushed.message_consumed(1.5)
    pushed.set_ready(False)
    assert pushed.registry.get_sample_value("realtime_strategies_consumer_lag_seconds") == 1.5
    assert pushed.registry.get_sample_value("realtime_strategies_ready") == 0
    pushed.message_consumed(-0.2)  # event time slightly ahead of the local clock
    assert pushed.registry.get_sample_value("realtime_strategies_consumer_lag_seconds") == 0
    pushed.signal_emitted(a_signal(strategy_id="trade_momentum", confidence=0.55))
    confidence = "realtime_strategies_signal_confidence_count"
    assert pushed.registry.get_sample_value(confidence, {"strategy": "trade_momentum"}) == 1


def test_lag_is_never_negative() -> None:
    metrics = PrometheusMetrics(
        ScrapeSources(last_event_time_ms=lambda: 5_000_000), clock=ManualSeconds(1_000.0)
    )
    assert metrics.consumer_lag_seconds() == 0.0


def test_event_type_labels() -> None:
    assert event_type_label("DepthSnapshot") == "depth"
    assert event_type_label("VenueQuote") == "quote"
    assert event_type_label("Kline") == "kline"


async def test_metrics_endpoint(client: httpx.AsyncClient, prometheus: PrometheusMetrics) -> None:
    stats = EngineStats(events_by_type=Counter({"Trade": 3}))
    stats.outcome_counter("orderbook_skew")["no_signal"] += 1
    prometheus.sources.processing = lambda: stats
    prometheus.strategy_evaluated("orderbook_skew", 0.0001)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'realtime_strategies_messages_processed_total{type="trade"} 3.0' in text
    assert "realtime_strategies_strategy_latency_seconds_bucket" in text
    assert (
        'realtime_strategies_strategy_executions_total{result="no_signal",strategy="orderbook_skew"}'
        " 1.0" in text
    )


async def test_metrics_endpoint_openmetrics(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# --- app-level behaviour ----------------------------------------------------------------------


class _Exploding:
    async def list_strategies(self) -> Any:
        raise RuntimeError("password=hunter2 at mongodb://db:27017")


async def test_unexpected_error_is_500_envelope_without_internals(
    container: ApiTestContainer, app: FastAPI
) -> None:
    container.config_admin.override(providers.Object(_Exploding()))
    with structlog.testing.capture_logs() as logs:
        async with make_client(app) as http:
            response = await http.get("/api/v1/strategies", headers={"X-Request-ID": "req-123"})
    errors = [e for e in logs if e["event"] == "unhandled_error"]
    assert [e["request_id"] for e in errors] == ["req-123"]
    assert errors[0]["error_type"] == "RuntimeError"
    assert response.status_code == 500
    payload = response.json()
    assert payload == {
        "success": False,
        "data": None,
        "error": {"code": "internal_error", "message": "internal server error", "details": None},
        "metadata": {"request_id": "req-123"},
    }
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-123"


async def test_request_id_generated_or_sanitised(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_unknown_route_and_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "http_404"
    wrong_method = await client.put("/api/v1/strategies")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "http_405"
    assert "GET" in wrong_method.headers["allow"]


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        "/api/v1/strategies": {"get"},
        "/api/v1/strategies/{strategy_id}/schema": {"get"},
        "/api/v1/strategies/{strategy_id}/defaults": {"get"},
        "/api/v1/strategies/{strategy_id}/config": {"get", "post", "delete"},
        "/api/v1/strategies/{strategy_id}/config/{symbol}": {"get", "post", "delete"},
        "/api/v1/strategies/{strategy_id}/audit": {"get"},
        "/api/v1/strategies/{strategy_id}/rollback": {"post"},
        "/api/v1/strategies/cache/refresh": {"post"},
        "/api/v1/metrics/depth/{symbol}": {"get"},
        "/api/v1/metrics/pressure/{symbol}": {"get"},
        "/api/v1/metrics/summary": {"get"},
        "/api/v1/metrics/all": {"get"},
        "/healthz": {"get"},
        "/ready": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for operation in paths[path].values():
            assert operation["summary"]
            assert operation["tags"]
    post = paths["/api/v1/strategies/{strategy_id}/config"]["post"]
    assert set(post["responses"]) >= {"200", "401", "403", "404", "422", "503"}
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert body_schema["additionalProperties"] is False
    assert "example" in body_schema
    for operation in (paths["/api/v1/strategies"]["get"], paths["/healthz"]["get"]):
        for parameter in operation.get("parameters", []):
            assert parameter["name"] not in {"service", "health", "query", "security"}
