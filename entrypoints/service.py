"""`realtime-strategies serve` (production adapters) and `run-local` (embedded defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from pydantic import ValidationError

from adapters.mongo.config_store import MongoAuditLog, MongoConfigRepository
from adapters.observability.tracing import RedactingSpanExporter
from adapters.redaction import redact_value
from adapters.sql.config_store import SqlConfigRepository
from adapters.sql.migrations import migrate
from domain.params import ParamValidationError
from entrypoints.container import Container, build_container
from entrypoints.runtime import ServiceRuntime
from entrypoints.settings import Settings, invalid_settings_message, known_secrets

log = structlog.get_logger("realtime_strategies.service")
STORE_RETRY_SECONDS = 5.0
STORE_MAINTENANCE_SECONDS = 2.0


def redacting_processor(secrets: Sequence[str]) -> Any:
    """A structlog processor masking credentials in every field of a log event (see
    :mod:`adapters.redaction`), exception text included; it runs just before rendering."""
    known = tuple(secrets)

    def redact_event(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = redact_value(event, known)
        return redacted

    return redact_event


def configure_logging(level: str, secrets: Sequence[str] | None = None) -> None:
    """structlog JSON lines on stderr (stdout stays free for printed signals).

    Standard-library records (uvicorn, the application layer's ``logging`` calls) are
    rendered as the same JSON lines, with their logger name, by a ProcessorFormatter. Every
    line goes through :func:`adapters.redaction.redact` with the configured secrets
    (``secrets`` None: those of the process environment).
    """
    redact_event = redacting_processor(known_secrets(os.environ) if secrets is None else secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def configure_tracing(exporter: str) -> None:
    """A span per message when an exporter is configured; the no-op tracer otherwise.
    Spans are exported with every credential masked (:class:`RedactingSpanExporter`)."""
    if exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "realtime-strategies"}))
    console = ConsoleSpanExporter(out=sys.stderr)
    redacting = RedactingSpanExporter(console, known_secrets(os.environ))
    provider.add_span_processor(BatchSpanProcessor(redacting))
    trace.set_tracer_provider(provider)


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM and drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def prepare_stores(container: Container) -> None:
    """Create/upgrade tables and indexes of the configured stores; retry while they're down."""
    store = container.settings().config_store
    pending: list[Any] = []
    if store in ("failover", "mongodb"):
        pending += [container.mongo_repository(), container.mongo_audit()]
    if store in ("failover", "mysql"):
        pending.append(container.mysql_repository())
    if store == "sqlite":
        Path(container.settings().sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        pending.append(container.sqlite_repository())
    while pending:
        for target in list(pending):
            try:
                if isinstance(target, MongoConfigRepository | MongoAuditLog):
                    await target.ensure_indexes()
                elif isinstance(target, SqlConfigRepository):
                    await migrate(target.engine)
                pending.remove(target)
            except Exception as error:  # retried: the store may come up later
                name = type(target).__name__
                log.warning("config_store_not_prepared", store=name, error=repr(error))
        if pending:
            await asyncio.sleep(STORE_RETRY_SECONDS)


async def maintain_stores(repository: Any, prepared: asyncio.Task[None]) -> None:
    """Reconcile the failover's stores as soon as both answer again, without waiting for a
    request or the next refresh to come by (a recovered MongoDB gets the writes it missed
    within seconds, and ``/ready`` stops reporting the store degraded)."""
    reconcile = getattr(repository, "reconcile_if_needed", None)
    if reconcile is None:
        return
    await asyncio.wait({prepared})  # tables and indexes first
    while True:
        await asyncio.sleep(STORE_MAINTENANCE_SECONDS)
        try:
            await reconcile()
        except Exception as error:  # never raises by contract; keep the loop alive anyway
            log.warning("config_store_maintenance_failed", error=repr(error))


def wire_metrics(container: Container) -> None:
    """Point the Prometheus scrape-time collectors at the live counters (no hot-path cost)."""
    sources = container.prometheus().sources
    processor = container.processor()
    stats = container.decode_stats()
    config_service = container.config_service()
    health = container.health()
    sink = container.signal_sink()
    sources.processing = lambda: processor.stats
    sources.invalid_by_reason = lambda: dict(stats.by_reason)
    sources.messages_by_type = lambda: dict(stats.by_type)
    sources.config_cache = lambda: {
        "hits": config_service.stats.cache_hits,
        "misses": config_service.stats.cache_misses,
    }
    sources.ready = lambda: health.last_ready
    if container.feed_kind() == "nats":
        connection = container.nats()
        sources.nats_connected = lambda: connection.is_connected
        sources.publish_errors = lambda: sink.publish_errors
        sources.signals_dropped = lambda: {"buffer_full": sink.dropped_buffer_full}
        sources.signal_buffer_size = lambda: sink.buffered
        sources.circuit_breakers = lambda: {"nats": sink.circuit_state}
    repository = container.config_repository()
    store_health = getattr(repository, "health", None)
    if callable(store_health):  # FailoverConfigRepository: state of both stores
        sources.config_stores_up = lambda: {
            str(state["name"]): state.get("state") == "up"
            for role in ("primary", "fallback")
            if isinstance(state := store_health().get(role), dict)
        }


async def run_service(container: Container) -> None:
    settings = container.settings()
    kind = container.feed_kind()
    feed = container.market_feed()
    sink = container.signal_sink()
    config_service = container.config_service()
    startup: list[Any] = []
    shutdown: list[Any] = []
    store_task: asyncio.Task[None] | None = None
    maintenance_task: asyncio.Task[None] | None = None

    async def start_stores() -> None:
        nonlocal store_task, maintenance_task
        store_task = asyncio.create_task(prepare_stores(container), name="prepare-stores")
        maintenance_task = asyncio.create_task(
            maintain_stores(container.config_repository(), store_task), name="store-maintenance"
        )
        await asyncio.wait({store_task}, timeout=3.0)

    startup.append(start_stores)
    if kind == "nats":
        connection = container.nats()
        listener = container.config_listener()
        startup += [connection.start, feed.start, listener.start]
        # The runtime has flushed the sink; closing it logs the ids of any signal still
        # undelivered (NATS away for the whole grace period) instead of dropping them silently.
        shutdown += [sink.close, listener.close, connection.close]
    wire_metrics(container)
    server = ApiServer(
        uvicorn.Config(
            container.api(),
            host=settings.fastapi_host,
            port=settings.fastapi_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )

    async def close_stores() -> None:
        for task in (maintenance_task, store_task):
            if task is not None:
                task.cancel()
        # The container owns the clients (the repositories do not close what they were given).
        store = settings.config_store
        closers: list[Any] = []
        if store in ("failover", "mongodb"):
            closers.append(container.mongo().close)
        if store in ("failover", "mysql"):
            closers.append(container.mysql().dispose)
        if store == "sqlite":
            closers.append(container.sqlite().dispose)
        for close in closers:
            try:
                await asyncio.wait_for(close(), 5.0)
            except Exception as error:
                log.warning("config_store_close_failed", error=repr(error))

    shutdown.append(close_stores)
    runtime = ServiceRuntime(
        feed=feed,
        processor=container.processor(),
        sink=sink,
        config_service=config_service,
        observer=container.prometheus(),
        api_server=server,
        startup=startup,
        shutdown=shutdown,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        config_refresh_interval_seconds=settings.config_refresh_interval_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        heartbeat_extra=delivery_stats(container) if kind == "nats" else None,
    )
    freeze_startup_objects()
    await runtime.run()


def delivery_stats(container: Container) -> Callable[[], dict[str, object]]:
    """Heartbeat (and ``service_stopped``) fields of signal delivery: what reached NATS."""
    sink = container.signal_sink()
    connection = container.nats()

    def stats() -> dict[str, object]:
        return {
            "signals_published": sink.published,
            "signals_buffered": sink.buffered,
            "signals_dropped": sink.dropped_buffer_full,
            "publish_failures": sink.publish_errors,
            "nats_state": connection.state.value,
        }

    return stats


def freeze_startup_objects() -> None:
    """Move everything built so far (modules, the app, the container: ~125,000 objects) out
    of the garbage collector's sight. A full collection traverses every tracked object and
    stops the event loop meanwhile: about 90 ms with them, next to nothing without; they live
    as long as the process anyway."""
    gc.collect()
    gc.freeze()


def _settings(**values: Any) -> Settings | None:
    try:
        return Settings(**values)
    except ValidationError as error:
        print(invalid_settings_message(error, os.environ), file=sys.stderr)
        return None


def _container(settings: Settings, **overrides: Any) -> Container | None:
    try:
        container = build_container(settings, **overrides)
        container.config_service()  # validates the strategy environment layer now
    except ParamValidationError as error:
        print(f"realtime-strategies: invalid strategy environment: {error}", file=sys.stderr)
        return None
    return container


def serve() -> int:
    """The production service: NATS in and out, configured stores, API on FASTAPI_PORT."""
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    configure_tracing(settings.otel_exporter)
    container = _container(settings)
    if container is None:
        return 2
    asyncio.run(run_service(container))
    return 0


def run_local(
    *, capture: Path, host: str, port: int, sqlite_path: str, speed: float, once: bool
) -> int:
    """Embedded defaults: replay of a capture at real pace as the feed, SQLite config store,
    API on 127.0.0.1:8080, signals printed. Needs no external server."""
    if not capture.is_file():
        print(f"run-local: capture not found: {capture}", file=sys.stderr)
        return 2
    settings = _settings(
        config_store="sqlite",
        sqlite_path=sqlite_path,
        fastapi_host=host,
        fastapi_port=port,
        trading_symbols="*",
        heartbeat_interval_seconds=30.0,
    )
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    container = _container(
        settings, feed_kind="replay", replay_path=capture, replay_speed=speed, replay_loop=not once
    )
    if container is None:
        return 2
    print(
        f"realtime-strategies run-local: replaying {capture} at {speed}x, "
        f"API http://{host}:{port}/docs, config in {sqlite_path}; signals below (Ctrl-C stops)",
        file=sys.stderr,
    )
    asyncio.run(run_service(container))
    return 0
