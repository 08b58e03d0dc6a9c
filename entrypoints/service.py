"""`realtime-strategies serve` (production adapters) and `run-local` (embedded defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic import ValidationError

from adapters.mcp.http import run_session_manager
from adapters.mongo.config_store import MongoAuditLog, MongoConfigRepository
from adapters.mongo.outcome_store import MongoOutcomeStore
from adapters.observability.tracing import RedactingSpanExporter, span_exporter
from adapters.redaction import redact_value
from adapters.sql.config_store import SqlConfigRepository
from adapters.sql.migrations import migrate
from domain.params import ParamValidationError
from entrypoints.container import Container, Mode, ReplayOptions, build_container
from entrypoints.lifecycle import Hook, Process, api_server, run_process, settle_garbage_collector
from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings, invalid_settings_message, known_secrets

log = structlog.get_logger("realtime_strategies.service")
STORE_RETRY_SECONDS = 5.0
STORE_MAINTENANCE_SECONDS = 2.0
OUTCOME_SAVE_AT_STOP_SECONDS = 2.0


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


def configure_tracing(settings: Settings) -> None:
    """A span per message (and per API request: adapters/http/app.py) when an exporter is
    configured; the no-op
    tracer otherwise. Spans are exported in batches with every credential masked
    (:class:`RedactingSpanExporter`); the OTLP endpoint is logged redacted, its headers
    never."""
    if settings.otel_exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "realtime-strategies"}))
    exporter = span_exporter(settings.otel_exporter, settings.otel_exporter_otlp_protocol)
    redacting = RedactingSpanExporter(exporter, known_secrets(os.environ))
    provider.add_span_processor(BatchSpanProcessor(redacting))
    trace.set_tracer_provider(provider)
    if settings.otel_exporter == "otlp":
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "(exporter default)"
        )
        log.info(
            "tracing_configured",
            exporter="otlp",
            protocol=settings.otel_exporter_otlp_protocol,
            endpoint=endpoint,
        )


async def prepare_stores(container: Container) -> None:
    """Create/upgrade tables and indexes of the configured stores; retry while they're down."""
    store = container.settings().config_store
    pending: list[Any] = []
    if store in ("failover", "mongodb"):
        pending += [
            container.mongo_repository(),
            container.mongo_audit(),
            container.mongo_outcomes(),
        ]
    if store in ("failover", "mysql"):
        pending.append(container.mysql_repository())
    if store == "sqlite":
        Path(container.settings().sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        pending.append(container.sqlite_repository())
    while pending:
        for target in list(pending):
            try:
                if isinstance(target, MongoConfigRepository | MongoAuditLog | MongoOutcomeStore):
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


async def close_stores(container: Container) -> None:
    """Close the clients of the configured stores (the container owns them: the repositories
    do not close what they were given)."""
    store = container.settings().config_store
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


def service_process(container: Container) -> Process:
    """The service (``serve``, a partitioned worker, ``run-local``) as a :class:`Process`:
    start-up (stores, NATS, feed, config listener, first config load), the run loop, the
    API, heartbeat and config refresh; shut-down (sink, listener, connection, stores)."""
    settings = container.settings()
    container.health()  # built now: the liveness uptime counts from the service's start
    feed = container.market_feed()
    runtime = container.runtime()
    refresher = container.config_refresher()
    app = container.api()
    outcomes = container.outcome_recorder()
    tasks: list[asyncio.Task[None]] = []

    async def start_stores() -> None:
        prepared = asyncio.create_task(prepare_stores(container), name="prepare-stores")
        tasks.append(prepared)
        tasks.append(
            asyncio.create_task(
                maintain_stores(container.config_repository(), prepared),
                name="store-maintenance",
            )
        )
        await asyncio.wait({prepared}, timeout=3.0)

    async def save_outcomes() -> None:
        """What was scored since the last write (the run loop has stopped), within
        ``OUTCOME_SAVE_AT_STOP_SECONDS``: the grace period belongs to the signals."""
        saved = False
        with contextlib.suppress(TimeoutError):
            saved = await asyncio.wait_for(outcomes.flush(), OUTCOME_SAVE_AT_STOP_SECONDS)
        if not saved:
            log.warning("outcomes_unsaved_at_stop", records=outcomes.unsaved)

    async def stop_stores() -> None:
        for task in tasks:
            task.cancel()
        await close_stores(container)

    startup: list[Hook] = [start_stores]
    shutdown: list[Hook] = []
    connection = container.messaging()
    if connection is not None:
        listener = container.config_listener()
        sink = container.nats_sink()
        startup.append(connection.start)
        feed_connection = container.feed_messaging()
        if feed_connection is not None and feed_connection is not connection:
            startup.append(feed_connection.start)
        startup += [feed.start, listener.start]
        # The runtime has flushed the sink; closing it logs the ids of any signal still
        # undelivered (NATS away for the whole grace period) instead of dropping them silently.
        shutdown += [sink.close, listener.close, connection.close]
        if feed_connection is not None and feed_connection is not connection:
            shutdown.append(feed_connection.close)
    startup.append(refresher.first)
    shutdown += [save_outcomes, container.config_preview().close, stop_stores]
    mcp_sessions = container.mcp_session_manager()  # mounts /mcp on the API

    async def serve_mcp() -> None:
        await run_session_manager(mcp_sessions)

    return Process(
        name="service",
        job=runtime,
        api=api_server(app, settings.fastapi_host, settings.fastapi_port),
        startup=startup,
        shutdown=shutdown,
        background=[
            refresher.forever,
            serve_mcp,
            outcomes.write_forever,
            outcomes.purge_forever,
        ],
        heartbeat=runtime.heartbeat,
        heartbeat_message="HEARTBEAT: Realtime Strategies Statistics",
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        grace_seconds=settings.shutdown_grace_seconds,
    )


async def run_service(container: Container) -> None:
    process = service_process(container)
    settle_garbage_collector()
    await run_process(process)


def _settings(**values: Any) -> Settings | None:
    try:
        return Settings(**values)
    except ValidationError as error:
        print(invalid_settings_message(error, os.environ), file=sys.stderr)
        return None


def _partition_settings() -> PartitionSettings | None:
    try:
        return PartitionSettings()
    except ValidationError as error:
        print(invalid_settings_message(error, os.environ), file=sys.stderr)
        return None


def _container(settings: Settings, **options: Any) -> Container | None:
    try:
        container = build_container(settings, **options)
        container.config_cache()  # validates the strategy environment layer now
        if container.mode() == Mode.WORKER:
            container.worker.index()  # WORKER_INDEX or the HOSTNAME ordinal, checked now
    except ParamValidationError as error:
        print(f"realtime-strategies: invalid strategy environment: {error}", file=sys.stderr)
        return None
    except ValueError as error:
        print(f"realtime-strategies: {error}", file=sys.stderr)
        return None
    return container


def serve() -> int:
    """The production service: NATS in and out, configured stores, API on FASTAPI_PORT —
    single-process, or a partitioned worker (``PARTITIONED_MODE``/``WORKER_COUNT``)."""
    settings = _settings()
    partitions = _partition_settings()
    if settings is None or partitions is None:
        return 2
    configure_logging(settings.log_level)
    configure_tracing(settings)
    mode = Mode.WORKER if partitions.enabled else Mode.SERVICE
    container = _container(settings, mode=mode, partitions=partitions)
    if container is None:
        return 2
    if mode == Mode.WORKER:
        index = container.worker.index()
        log.info(
            "partitioned_worker",
            worker_index=index,
            worker_count=partitions.workers,
            partitions=list(partitions.owned(index)),
            stream=partitions.partition_stream,
            replay_seconds=partitions.partition_replay_seconds,
            signal_stream=partitions.signal_stream or None,
        )
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
        settings, mode=Mode.LOCAL, replay=ReplayOptions(capture, speed=speed, loop=not once)
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
