"""A whole admin API in one process: real config use cases on in-memory stores, a metrics book fed
with a few depth snapshots, a fake health reporter, Prometheus metrics in their own registry.

The container is the service's own, with fakes in place of a few providers; it is wired to the
router modules for the duration of one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dependency_injector import containers, providers
from fastapi import FastAPI

from adapters.http.app import create_app
from adapters.http.routers import WIRED_MODULES
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.observability.prometheus import PrometheusMetrics
from domain.market import DepthSnapshot
from domain.metrics import MarketMetricsBook
from entrypoints.container import Container, Mode
from entrypoints.settings import Settings

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REMOTE_CLIENT = ("10.1.2.3", 40000)
LOCAL_CLIENT = ("127.0.0.1", 40000)


class SteppingClock:
    """Wall clock for audit timestamps: advances one second per reading (distinct times)."""

    def __init__(self) -> None:
        self._now = datetime(2025, 10, 17, 14, 45, tzinfo=UTC)

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


@dataclass
class FakeHealth:
    """A :class:`HealthReporter` whose verdict the test sets."""

    ready: bool = True
    components: dict[str, object] = field(
        default_factory=lambda: {
            "nats": {"ready": True, "degraded": False, "detail": ""},
            "config_store": {"ready": True, "degraded": False, "detail": ""},
            "feed": {"ready": True, "degraded": False, "detail": ""},
        }
    )
    broken: bool = False

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        if self.broken:
            raise RuntimeError("probe exploded: mongodb://user:pw@db")
        body: dict[str, object] = {
            "status": "ready" if self.ready else "not_ready",
            "components": self.components,
        }
        if not self.ready:
            body["reasons"] = ["nats: not connected"]
        return self.ready, body

    def liveness(self) -> dict[str, object]:
        return {"status": "alive", "uptime_seconds": 1.0}


def depth(symbol: str, t: int, bid_qty: float, ask_qty: float, price: float) -> DepthSnapshot:
    bids = tuple((price - i * 0.5, bid_qty) for i in range(10))
    asks = tuple((price + 0.5 + i * 0.5, ask_qty) for i in range(10))
    return DepthSnapshot(symbol, t, bids, asks)


def seeded_book() -> MarketMetricsBook:
    """BTCUSDT bullish (history over 2 minutes), ETHUSDT bearish, SOLUSDT neutral."""
    book = MarketMetricsBook(history_seconds=3600)
    for t in range(0, 120_001, 1_000):
        book.on_depth(depth("BTCUSDT", 1_723_161_254_000 + t, 8.0, 2.0, 60_000.0))
    book.on_depth(depth("ETHUSDT", 1_723_161_300_000, 2.0, 8.0, 2_600.0))
    book.on_depth(depth("SOLUSDT", 1_723_161_310_000, 5.0, 5.0, 150.0))
    return book


@containers.copy(Container)
class ApiTestContainer(Container):
    """The service's own container (:class:`~entrypoints.container.Container`) as ``run-local``
    builds it on the in-memory stores, with the admin token set, a stepping clock, a seeded
    metrics book and Prometheus metrics in their own registry (the ``container`` fixture adds
    a :class:`FakeHealth`)."""

    settings = providers.Dependency(
        instance_of=Settings,
        default=Settings(
            config_store="memory",
            admin_api_token=TOKEN,
            fastapi_host="0.0.0.0",  # not loopback: the token is required
            preview_window_seconds=900.0,
            preview_max_events=20_000,
            preview_timeout_seconds=30.0,
        ),
    )
    mode = providers.Object(Mode.LOCAL.value)
    environ = providers.Object({})  # no environment layer from the test runner's variables
    clock = providers.Singleton(SteppingClock)
    metrics_book = providers.Singleton(seeded_book)
    prometheus = providers.Singleton(PrometheusMetrics)


@contextmanager
def wired(container: ApiTestContainer) -> Iterator[ApiTestContainer]:
    container.wire(modules=list(WIRED_MODULES))
    try:
        yield container
    finally:
        container.unwire()


@pytest.fixture
def container() -> Iterator[ApiTestContainer]:
    api = ApiTestContainer()
    api.health.override(providers.Singleton(FakeHealth))
    with wired(api) as wired_container:
        yield wired_container


@pytest.fixture
def app(container: ApiTestContainer) -> FastAPI:
    return create_app(title="realtime-strategies", version="test")


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` of ``response``'s failure envelope (``success`` false, ``data`` null)."""
    payload = response.json()
    assert payload["success"] is False
    assert payload["data"] is None
    error: dict[str, Any] = payload["error"]
    return error


def make_client(
    app: FastAPI, client: tuple[str, int] = REMOTE_CLIENT, base_url: str = "http://api.test"
) -> httpx.AsyncClient:
    """A client of ``app`` calling from ``client``; ``base_url`` sets the ``Host`` header."""
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as http:
        yield http


@pytest.fixture
def repository(container: ApiTestContainer) -> InMemoryConfigRepository:
    repo: InMemoryConfigRepository = container.config_repository()
    return repo


@pytest.fixture
def audit_log(container: ApiTestContainer) -> InMemoryAuditLog:
    log: InMemoryAuditLog = container.audit_log()
    return log


@pytest.fixture
def health(container: ApiTestContainer) -> FakeHealth:
    reporter = container.health()
    assert isinstance(reporter, FakeHealth)
    return reporter


@pytest.fixture
def prometheus(container: ApiTestContainer) -> PrometheusMetrics:
    metrics: PrometheusMetrics = container.prometheus()
    return metrics
