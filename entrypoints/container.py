"""The composition root: the one place where objects are built (dependency-injector).

:class:`Container` holds what every way of running the service shares — configuration
stores and use cases, decoders, strategies, metrics, the run loop, health and API — and one
sub-container per way of running, with what is particular to it:

- ``service`` (``serve``): the NATS queue-group feed;
- ``worker`` (``serve`` with ``PARTITIONED_MODE``/``WORKER_COUNT``): the partition feed, its
  replay gate and the partition API (docs/adr/0010-symbol-partitioning.md);
- ``local`` (``run-local``): a paced replay of a capture as the feed, signals printed;
- ``router`` (``route``): the partition router with its own connection, metrics and API;
- ``backtest``: the in-memory configuration with a fixed clock and the replay feed
  (:mod:`entrypoints.backtest_container`: the backtest imports none of the service stack).

The way of running is chosen when the container is built (:func:`build_container`'s
``mode``); the shared providers pick their mode's parts through selectors, and nothing is
swapped afterwards. Tests override any provider with a fake (``container.x.override(...)``).
Routers get their use cases from here by name (see ``adapters.http.routers``).
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers
from fastapi import FastAPI

from adapters.console import ConsoleSignalSink
from adapters.failover import (
    FailoverAuditLog,
    FailoverConfigRepository,
    FailoverConfigUnitOfWork,
    FailoverPauseStore,
)
from adapters.http.app import create_app
from adapters.http.partition_api import (
    OwnerProxyMiddleware,
    create_router_app,
    partition_status_router,
)
from adapters.http.routers import WIRED_MODULES
from adapters.http.security import ApiSecurity, is_loopback_host
from adapters.mcp.http import mount_mcp
from adapters.mcp.tools import build_mcp_server
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.outcome_store import InMemoryOutcomeStore
from adapters.memory.pause_store import InMemoryPauseStore
from adapters.memory.replay_feed import ReplayMarketFeed
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from adapters.mongo.config_store import (
    MongoAuditLog,
    MongoConfigRepository,
    MongoConfigUnitOfWork,
    MongoPauseStore,
    create_mongo_client,
)
from adapters.mongo.outcome_store import MongoOutcomeStore
from adapters.nats.checkpoints import PartitionCheckpoints
from adapters.nats.config_broadcast import NatsConfigChangeListener, NatsConfigChangeNotifier
from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import StreamSpec, market_data_stream, signal_stream
from adapters.nats.market_feed import NatsMarketFeed
from adapters.nats.partition_feed import JetStreamPartitionFeed, ReplayGate, kind_decoders
from adapters.nats.partition_router import NatsPartitionRouter, router_routes
from adapters.nats.partition_subjects import PartitionLayout
from adapters.nats.signal_budget import NatsSignalBudget
from adapters.nats.signal_sink import NatsSignalSink
from adapters.observability.partition_metrics import RouterMetrics, register_partition_feed
from adapters.observability.prometheus import PrometheusMetrics, ScrapeSources
from adapters.observability.tracing import OpenTelemetryTracing
from adapters.outcome_failover import FailoverOutcomeStore
from adapters.sql.config_store import (
    SqlAuditLog,
    SqlConfigRepository,
    SqlConfigUnitOfWork,
    SqlPauseStore,
    create_sql_engine,
)
from adapters.sql.outcome_store import SqlOutcomeStore
from adapters.system_clock import SystemClock
from adapters.wire.binance import BinanceDecoder
from adapters.wire.decoders import BINANCE, Decoder, market_decoders, subject_decoders
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.signals import signal_to_wire
from adapters.wire.stats import INTENDED_SKIPS, DecodeStats
from application.checkpoints import StateHolder, WorkerState, state_fingerprint
from application.config_admin import ConfigAdmin
from application.config_cache import EffectiveConfigCache
from application.health import HealthService
from application.live_signals import BroadcastingSignalSink, SignalBroadcast
from application.metrics_query import MarketMetricsQuery
from application.outcomes import OutcomeQuery, OutcomeRecorder
from application.ports import Clock, SignalGate
from application.preview import ConfigPreview
from application.processing import timed
from application.runtime import ConfigRefresher, ServiceRuntime, wall_clock_ms
from application.signal_pauses import SignalPauseAdmin
from domain.engine import SignalEngine
from domain.governance import Governance
from domain.live_outcomes import LiveScorer
from domain.market_window import MarketWindow
from domain.metrics import MarketMetricsBook
from domain.signal import JsonValue, Signal
from domain.strategies.registry import (
    CONFIG_NAMES,
    CONFIG_PARAMS,
    STRATEGY_PARAMS,
    build_strategies,
)
from entrypoints.backtest_container import BacktestParts
from entrypoints.health_checks import build_health_checks
from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings, config_environment, strategy_environment


class Mode(StrEnum):
    """How the process runs (see the module doc)."""

    SERVICE = "service"
    WORKER = "worker"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """The capture ``run-local`` replays as its feed."""

    path: Path
    speed: float = 1.0
    loop: bool = True


def instance_id() -> str:
    """This process's identity in config broadcasts: the pod name (``HOSTNAME``) or host
    name, plus pid and a random suffix, so that two processes on one host (or two pods that
    share a host name) never take each other's changes for their own."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def input_topics(settings: Settings) -> dict[str, str]:
    """Input name → its NATS subject (an empty subject turns that input off)."""
    return {
        BINANCE: settings.nats_consumer_topic,
        InputKind.DOMINANCE: settings.nats_dominance_topic,
        InputKind.QUOTES: settings.nats_quotes_topic,
        InputKind.ONCHAIN: settings.nats_onchain_topic,
    }


def mysql_engine(settings: Settings) -> Any:
    return create_sql_engine(settings.mysql_uri.get_secret_value())


def sqlite_engine(settings: Settings) -> Any:
    return create_sql_engine(settings.sqlite_path)


def mongo_client(settings: Settings) -> Any:
    return create_mongo_client(settings.mongodb_uri.get_secret_value())


def signal_payload(settings: Settings) -> Callable[[Signal], dict[str, JsonValue]]:
    """The trade-engine JSON of a signal as this service publishes it (stored with its
    outcome and served by ``/signals/recent``)."""
    source = settings.signal_source

    def payload(signal: Signal) -> dict[str, JsonValue]:
        return signal_to_wire(signal, source)

    return payload


def strategy_ids(registry: Mapping[str, object]) -> Callable[[], tuple[str, ...]]:
    ids = tuple(registry)
    return lambda: ids


def api_security(settings: Settings) -> ApiSecurity:
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else None
    return ApiSecurity(token or None, bound_to_loopback=is_loopback_host(settings.fastapi_host))


def worker_index(part: PartitionSettings) -> int:
    return part.resolve_worker_index()


def owned_partitions(part: PartitionSettings, index: int) -> tuple[int, ...]:
    return part.owned(index)


def router_name(settings: Settings) -> str:
    return f"{settings.nats_consumer_name}-router"


def feed_connection_name(settings: Settings) -> str:
    return f"{settings.nats_consumer_name}-feed"


def layout_of(part: PartitionSettings) -> PartitionLayout:
    return PartitionLayout(part.partition_subject_prefix, part.partition_count)


def market_stream_spec(part: PartitionSettings) -> StreamSpec:
    return market_data_stream(
        part.partition_stream,
        part.partition_subject_prefix,
        part.partition_replay_seconds or 60.0,
        max_bytes=part.partition_stream_max_bytes,
        replicas=part.partition_stream_replicas,
    )


def signal_stream_spec(settings: Settings, part: PartitionSettings) -> StreamSpec | None:
    if not part.signal_stream.strip():
        return None
    return signal_stream(
        part.signal_stream.strip(),
        settings.nats_publisher_topic,
        duplicate_window_seconds=part.signal_duplicate_window_seconds,
        max_age_seconds=max(
            86_400.0, part.partition_replay_seconds + part.partition_recover_seconds
        ),
    )


def input_stream_spec(settings: Settings, part: PartitionSettings) -> StreamSpec | None:
    """The router's input stream (failover mode), over the raw input subjects; None without."""
    name = part.router_input_stream.strip()
    if not name:
        return None
    subjects = tuple(t.strip() for t in input_topics(settings).values() if t.strip())
    retention = part.router_input_retention_seconds
    return StreamSpec(
        name=name,
        subjects=subjects,
        max_age_seconds=retention,
        duplicate_window_seconds=min(120.0, retention),
        replicas=part.partition_stream_replicas,
        description="realtime-strategies raw market input, read by the leader router of "
        "each shard (failover: a standby resumes from its committed position)",
    )


def router_holder(settings: Settings) -> str:
    """Lease holder id: the pod name (HOSTNAME) and a per-process suffix."""
    host = os.environ.get("HOSTNAME", "").strip() or router_name(settings)
    return f"{host}-{uuid.uuid4().hex[:8]}"


def signal_acks(settings: Settings, part: PartitionSettings) -> bool:
    """A worker publishes signals with JetStream acks when asked, and always with a signal
    stream — its signals must survive a takeover and a dropped connection
    (a core publish written into a socket the server then closes, e.g. a worker cut off as a
    slow consumer while it replays, is lost without a trace; an acked one is sent again with
    the same Nats-Msg-Id and stored once)."""
    return settings.nats_signal_jetstream or bool(part.signal_stream.strip())


def signal_budget(connection: NatsConnection, part: PartitionSettings) -> NatsSignalBudget | None:
    """A worker's share of the deployment's per-minute signal budget (ADR 25); None when
    ``SIGNAL_BUDGET_BUCKET`` is empty (each worker then caps alone)."""
    bucket = part.signal_budget_bucket.strip()
    if not bucket:
        return None
    return NatsSignalBudget(
        connection,
        bucket=bucket,
        create_bucket=part.signal_budget_bucket_create,
        replicas=part.partition_stream_replicas,
        horizon_seconds=part.signal_budget_horizon_seconds,
    )


def budget_fields(budget: NatsSignalBudget | None) -> Callable[[], Mapping[str, object]]:
    """The heartbeat field of a worker's signal budget: slots taken and refused, lost
    compare-and-sets, foreign values overwritten (nothing without a budget)."""
    if budget is None:
        return dict
    return lambda: {"signal_budget": dict(budget.stats)}


def config_events(cache: EffectiveConfigCache, admin: ConfigAdmin) -> dict[str, int]:
    """The configuration counters exported as ``config_events_total{event}``."""
    c, a = cache.stats, admin.stats
    return {
        "broadcast_reloads": c.remote_reloads,
        "broadcasts_ignored": c.remote_changes_ignored,
        "refreshes": c.refreshes,
        "refresh_failures": c.refresh_failures,
        "invalid_stored_configs": c.invalid_stored_configs,
        "version_conflicts": a.version_conflicts,
        "notify_failures": a.notify_failures,
        "writes_refused_overload": a.writes_refused_overload,
    }


def worker_state(
    engine: SignalEngine,
    book: MarketMetricsBook,
    decoder: BinanceDecoder,
    input_decoder: MarketInputDecoder,
    scorer: LiveScorer,
    part: PartitionSettings,
    settings: Settings,
) -> WorkerState:
    """What a worker checkpoints per partition: the engine (strategies and governance), the
    market-metrics book, the order/duplicate memory of the Binance decoder and of the
    market-input decoder (dominance, quotes, on-chain events), and the live scorer's pending
    signals with its trade model. A snapshot is tried on fresh copies first (``scratch``)."""
    holders: dict[str, StateHolder] = {
        "engine": engine,
        "metrics": book,
        "decoder": decoder,
        "market_inputs": input_decoder,
        "live_outcomes": scorer,
    }

    def scratch() -> dict[str, StateHolder]:
        return {
            "engine": SignalEngine(
                build_strategies(settings.home_venue),
                engine.config,
                governance=Governance(engine.governance.limits),
            ),
            "metrics": MarketMetricsBook(
                history_seconds=book.history_seconds, max_symbols=book.max_symbols
            ),
            "decoder": BinanceDecoder(),
            "market_inputs": MarketInputDecoder(),
            "live_outcomes": LiveScorer(
                scorer.settings,
                max_pending_per_symbol=scorer.max_pending_per_symbol,
                max_symbols=scorer.max_symbols,
            ),
        }

    return WorkerState(
        holders,
        layout_of(part).partition,
        state_fingerprint(engine.strategies, list(holders)),
        scratch=scratch,
    )


def governed(cache: EffectiveConfigCache) -> Governance:
    """The governance gate: the limits in force come from the config cache (runtime
    configuration), and so do the pauses (now and after every change: a local pause, another
    replica's broadcast, a refresh)."""
    governance = Governance(limits_for=cache.governance_limits)
    cache.add_pause_listener(governance.set_pauses)
    return governance


def scrape_sources(container: Container) -> ScrapeSources:
    """What Prometheus reads at scrape time (no hot-path cost): the live counters of the
    engine, decoders, config cache, readiness, signal delivery and stores, looked up in
    ``container`` when scraped (the metrics are built before the engine they observe)."""
    stats = container.decode_stats()
    sources = ScrapeSources(
        processing=lambda: container.engine().stats,
        invalid_by_reason=lambda: dict(stats.by_reason),
        message_errors=lambda: (
            sum(n for reason, n in stats.by_reason.items() if reason not in INTENDED_SKIPS)
            + container.runtime().counters.consumer_errors
        ),
        messages_by_type=lambda: dict(stats.by_type),
        config_cache=lambda: {
            "hits": container.config_cache().stats.cache_hits,
            "misses": container.config_cache().stats.cache_misses,
        },
        config_events=lambda: config_events(container.config_cache(), container.config_admin()),
        signal_pauses=lambda: len(container.config_cache().pauses),
        ready=lambda: container.health().last_ready,
    )
    if container.mode() != Mode.LOCAL:
        connection = container.nats()
        sink = container.nats_sink()
        sources.nats_connected = lambda: connection.is_connected
        sources.publish_errors = lambda: sink.publish_errors
        if container.mode() == Mode.WORKER and container.worker_budget() is not None:
            sources.signal_budget_errors = lambda: container.runtime().counters.budget_errors
        sources.signal_duplicate_acks = lambda: sink.duplicates
        sources.signals_dropped = lambda: {
            "buffer_full": sink.dropped_buffer_full,
            "rejected": sink.rejected,
        }
        sources.signal_buffer_size = lambda: sink.buffered
        sources.circuit_breakers = lambda: {"nats": sink.circuit_state}
    store_health = getattr(container.config_repository(), "health", None)
    if callable(store_health):  # FailoverConfigRepository: state of both stores
        sources.config_stores_up = lambda: {
            str(state["name"]): state.get("state") == "up"
            for role in ("primary", "fallback")
            if isinstance(state := store_health().get(role), dict)
        }
    return sources


def delivery_stats(
    sink: NatsSignalSink, connection: NatsConnection
) -> Callable[[], dict[str, object]]:
    """Heartbeat (and ``service_stopped``) fields of signal delivery: what reached NATS."""

    def stats() -> dict[str, object]:
        return {
            "signals_published": sink.published,
            "signals_buffered": sink.buffered,
            "signals_dropped": sink.dropped_buffer_full,
            "signals_rejected": sink.rejected,
            "publish_failures": sink.publish_errors,
            "signal_duplicate_acks": sink.duplicates,
            "nats_state": connection.state.value,
        }

    return stats


def heartbeat_fields(
    *sources: Callable[[], Mapping[str, object]],
) -> Callable[[], dict[str, object]]:
    """The extra heartbeat (and ``service_stopped``) fields of several sources, merged."""

    def fields() -> dict[str, object]:
        merged: dict[str, object] = {}
        for source in sources:
            merged.update(source())
        return merged

    return fields


def worker_api(
    app: FastAPI,
    feed: JetStreamPartitionFeed,
    part: PartitionSettings,
    index: int,
    sink: NatsSignalSink,
    engine: SignalEngine,
    metrics: PrometheusMetrics,
) -> FastAPI:
    """The service API of a worker: plus ``/api/v1/partitions``, metrics reads of other
    workers' symbols forwarded to their owner, and the partition feed's metrics."""
    register_partition_feed(metrics.registry, feed)

    async def status() -> dict[str, Any]:
        body: dict[str, Any] = {
            "worker_index": index,
            "worker_count": part.workers,
            "partition_count": part.partition_count,
            "prefix": part.partition_subject_prefix,
            "signals_published": sink.published,
            "events_processed": engine.stats.events,
            **feed.status(),
        }
        try:
            body.update(await feed.caught_up())
        except Exception as exc:
            body.update({"caught_up": False, "error": repr(exc)})
        return body

    app.include_router(partition_status_router(status))
    if part.worker_url_template and part.workers > 1:
        app.add_middleware(
            OwnerProxyMiddleware,
            worker_index=index,
            worker_count=part.workers,
            partitions=part.partition_count,
            url_template=part.worker_url_template,
            timeout=part.worker_proxy_timeout_seconds,
        )
    return app


class ServiceParts(containers.DeclarativeContainer):
    """``serve``: the market feed is a queue-group subscription of the raw subjects."""

    settings = providers.Dependency(instance_of=Settings)
    connection = providers.Dependency(instance_of=NatsConnection)
    decoders: providers.Provider[Mapping[str, Decoder]] = providers.Dependency()
    decode_stats = providers.Dependency(instance_of=DecodeStats)

    feed = providers.Singleton(
        NatsMarketFeed,
        connection,
        providers.Callable(subject_decoders, decoders, providers.Callable(input_topics, settings)),
        settings.provided.nats_consumer_group,
        stats=decode_stats,
        dead_letter_subject=settings.provided.nats_dead_letter_topic,
    )
    gate: providers.Provider[SignalGate | None] = providers.Object(None)


class WorkerParts(containers.DeclarativeContainer):
    """``serve`` as worker ``index`` of a partitioned deployment: its partitions of the
    market-data stream, replayed then live; the replay's signals gated."""

    settings = providers.Dependency(instance_of=Settings)
    partitions = providers.Dependency(instance_of=PartitionSettings)
    connection = providers.Dependency(instance_of=NatsConnection)
    decoders: providers.Provider[Mapping[str, Decoder]] = providers.Dependency()
    decode_stats = providers.Dependency(instance_of=DecodeStats)
    state = providers.Dependency(instance_of=WorkerState)

    index = providers.Singleton(worker_index, partitions)
    checkpoints = providers.Singleton(
        PartitionCheckpoints,
        connection,
        state,
        bucket=partitions.provided.partition_checkpoint_bucket,
        interval_seconds=partitions.provided.partition_checkpoint_interval_seconds,
        partition_count=partitions.provided.partition_count,
        restore=partitions.provided.partition_checkpoint_restore,
        create_bucket=partitions.provided.partition_checkpoint_bucket_create,
        replicas=partitions.provided.partition_stream_replicas,
    )
    feed = providers.Singleton(
        JetStreamPartitionFeed,
        connection,
        providers.Callable(layout_of, partitions),
        providers.Callable(owned_partitions, partitions, index),
        providers.Callable(kind_decoders, decoders),
        providers.Callable(market_stream_spec, partitions),
        replay_seconds=partitions.provided.partition_replay_seconds,
        create_stream=partitions.provided.partition_stream_create,
        signal_stream=providers.Callable(signal_stream_spec, settings, partitions),
        create_signal_stream=partitions.provided.signal_stream_create,
        recover_seconds=partitions.provided.partition_recover_seconds,
        stats=decode_stats,
        dead_letter_subject=settings.provided.nats_dead_letter_topic,
        checkpoints=checkpoints,
    )
    gate = providers.Singleton(ReplayGate, feed)


class LocalParts(containers.DeclarativeContainer):
    """``run-local``: a capture replayed at its pace as the feed, signals printed."""

    settings = providers.Dependency(instance_of=Settings)
    replay = providers.Dependency(instance_of=ReplayOptions)
    decoder = providers.Dependency(instance_of=BinanceDecoder)
    decode_stats = providers.Dependency(instance_of=DecodeStats)

    feed = providers.Singleton(
        ReplayMarketFeed,
        replay.provided.path,
        decoder,
        decode_stats,
        loop=replay.provided.loop,
        pace=True,
        speed=replay.provided.speed,
    )
    sink = providers.Singleton(ConsoleSignalSink, settings.provided.signal_source)
    gate: providers.Provider[SignalGate | None] = providers.Object(None)


class RouterParts(containers.DeclarativeContainer):
    """``route``: raw subjects → partition subjects, with its own connection and API."""

    settings = providers.Dependency(instance_of=Settings)
    partitions = providers.Dependency(instance_of=PartitionSettings)

    connection = providers.Singleton(
        NatsConnection,
        settings.provided.nats_url,
        name=providers.Callable(router_name, settings),
    )
    router = providers.Singleton(
        NatsPartitionRouter,
        connection,
        providers.Callable(layout_of, partitions),
        providers.Callable(router_routes, providers.Callable(input_topics, settings)),
        partitions.provided.router_queue_group,
        shards=partitions.provided.router_shards,
        shard_index=partitions.provided.resolve_router_shard.call(),
        allowed_symbols=settings.provided.symbols.call(),
        max_bytes=settings.provided.max_message_bytes,
        dead_letter_subject=settings.provided.nats_dead_letter_topic,
        stream=providers.Callable(market_stream_spec, partitions),
        create_stream=partitions.provided.partition_stream_create,
        acks=partitions.provided.router_acks,
        max_pending_acks=partitions.provided.router_max_pending_acks,
        ack_timeout=partitions.provided.router_ack_timeout_seconds,
        ack_retries=partitions.provided.router_ack_retries,
        input_stream=providers.Callable(input_stream_spec, settings, partitions),
        create_input_stream=partitions.provided.router_input_stream_create,
        lease_bucket=partitions.provided.router_lease_bucket,
        position_bucket=partitions.provided.router_position_bucket,
        lease_ttl=partitions.provided.router_lease_ttl_seconds,
        holder=providers.Callable(router_holder, settings),
        bucket_replicas=partitions.provided.partition_stream_replicas,
    )
    metrics = providers.Singleton(RouterMetrics, router.provided.stats, router.provided.connected)
    api = providers.Singleton(
        create_router_app,
        ready=router.provided.readiness,
        render_metrics=metrics.provided.render,
        status=router.provided.status,
    )


class Container(containers.DeclarativeContainer):
    """Every object of the running process, built lazily, once (singletons)."""

    __self__ = providers.Self()
    settings = providers.Dependency(instance_of=Settings)
    partitions = providers.Dependency(instance_of=PartitionSettings)
    mode = providers.Object(Mode.SERVICE.value)
    replay = providers.Dependency(instance_of=ReplayOptions)
    environ: providers.Provider[Mapping[str, str]] = providers.Object(os.environ)

    clock: providers.Provider[Clock] = providers.Singleton(SystemClock)
    strategy_params = providers.Object(STRATEGY_PARAMS)
    strategy_env = providers.Singleton(strategy_environment, strategy_params, environ)
    # What the admin API configures: the strategies and the governance limits.
    config_params = providers.Object(CONFIG_PARAMS)
    config_env = providers.Singleton(config_environment, strategy_env, settings)

    # --- configuration stores -----------------------------------------------------------
    mongo = providers.Singleton(mongo_client, settings)
    mongo_repository = providers.Singleton(
        MongoConfigRepository, mongo, settings.provided.mongodb_database
    )
    mongo_audit = providers.Singleton(MongoAuditLog, mongo, settings.provided.mongodb_database)
    mysql = providers.Singleton(mysql_engine, settings)
    mysql_repository = providers.Singleton(SqlConfigRepository, mysql)
    mysql_audit = providers.Singleton(SqlAuditLog, mysql)
    sqlite = providers.Singleton(sqlite_engine, settings)
    sqlite_repository = providers.Singleton(SqlConfigRepository, sqlite)
    sqlite_audit = providers.Singleton(SqlAuditLog, sqlite)
    memory_repository = providers.Singleton(InMemoryConfigRepository)
    memory_audit = providers.Singleton(InMemoryAuditLog)
    memory_pauses = providers.Singleton(InMemoryPauseStore)

    failover_repository = providers.Singleton(
        FailoverConfigRepository, mongo_repository, mysql_repository
    )
    config_repository = providers.Selector(
        settings.provided.config_store,
        failover=failover_repository,
        mongodb=mongo_repository,
        mysql=mysql_repository,
        sqlite=sqlite_repository,
        memory=memory_repository,
    )
    # Linked to the repository: one health state, one lock, and the repository's
    # reconciliation also copies the audit records written while a store was down.
    failover_audit = providers.Singleton(
        FailoverAuditLog, mongo_audit, mysql_audit, repository=failover_repository
    )
    audit_log = providers.Selector(
        settings.provided.config_store,
        failover=failover_audit,
        mongodb=mongo_audit,
        mysql=mysql_audit,
        sqlite=sqlite_audit,
        memory=memory_audit,
    )
    mongo_pauses = providers.Singleton(MongoPauseStore, mongo, settings.provided.mongodb_database)
    mysql_pauses = providers.Singleton(SqlPauseStore, mysql)
    failover_pauses = providers.Singleton(
        FailoverPauseStore, mongo_pauses, mysql_pauses, failover_repository
    )
    pause_store = providers.Selector(
        settings.provided.config_store,
        failover=failover_pauses,
        mongodb=mongo_pauses,
        mysql=mysql_pauses,
        sqlite=providers.Singleton(SqlPauseStore, sqlite),
        memory=memory_pauses,
    )
    mongo_unit_of_work = providers.Singleton(
        MongoConfigUnitOfWork, mongo, settings.provided.mongodb_database
    )
    mysql_unit_of_work = providers.Singleton(SqlConfigUnitOfWork, mysql)
    config_unit_of_work = providers.Selector(
        settings.provided.config_store,
        failover=providers.Singleton(
            FailoverConfigUnitOfWork,
            failover_repository,
            failover_audit,
            mongo_unit_of_work,
            mysql_unit_of_work,
            failover_pauses,
        ),
        mongodb=mongo_unit_of_work,
        mysql=mysql_unit_of_work,
        sqlite=providers.Singleton(SqlConfigUnitOfWork, sqlite),
        memory=providers.Singleton(
            InMemoryConfigUnitOfWork, memory_repository, memory_audit, memory_pauses
        ),
    )

    # --- published signals and their outcomes (issue 14; same stores as the config) -------
    mongo_outcomes = providers.Singleton(
        MongoOutcomeStore, mongo, settings.provided.mongodb_database
    )
    mysql_outcomes = providers.Singleton(SqlOutcomeStore, mysql)
    sqlite_outcomes = providers.Singleton(SqlOutcomeStore, sqlite)
    memory_outcomes = providers.Singleton(InMemoryOutcomeStore)
    outcome_store = providers.Selector(
        settings.provided.config_store,
        failover=providers.Singleton(FailoverOutcomeStore, mongo_outcomes, mysql_outcomes),
        mongodb=mongo_outcomes,
        mysql=mysql_outcomes,
        sqlite=sqlite_outcomes,
        memory=memory_outcomes,
    )

    # --- decoding: one decoder per input, with the TRADING_SYMBOLS allow-list -----------
    decode_stats = providers.Singleton(DecodeStats)
    # One integrity rule for every input: future-dated input is judged by the wall clock.
    integrity = providers.Singleton(
        IntegrityOptions,
        clock_ms=providers.Object(wall_clock_ms),
        future_tolerance_ms=settings.provided.future_tolerance_ms,
    )
    decoder = providers.Singleton(
        BinanceDecoder,
        symbols=settings.provided.symbols.call(),
        max_bytes=settings.provided.max_message_bytes,
        integrity=integrity,
    )
    input_decoder = providers.Singleton(
        MarketInputDecoder,
        symbols=settings.provided.symbols.call(),
        max_bytes=settings.provided.max_message_bytes,
        integrity=integrity,
    )
    decoders = providers.Singleton(market_decoders, decoder, input_decoder)

    # --- NATS (service and worker) ----------------------------------------------------------
    nats = providers.Singleton(
        NatsConnection, settings.provided.nats_url, name=settings.provided.nats_consumer_name
    )
    # A worker reads its partitions on a connection of its own: a replay at full speed can make
    # the server cut a reader off as a slow consumer, and that must not take the signal
    # publisher's pending acknowledgements (or the config listener) down with it.
    worker_feed_nats = providers.Singleton(
        NatsConnection,
        settings.provided.nats_url,
        name=providers.Callable(feed_connection_name, settings),
    )
    instance = providers.Singleton(instance_id)  # one id for the notifier and the listener
    nats_sink = providers.Singleton(
        NatsSignalSink,
        nats,
        subject_prefix=settings.provided.nats_publisher_topic,
        source=settings.provided.signal_source,
        buffer_size=settings.provided.signal_buffer_size,
        use_jetstream=providers.Selector(
            mode,
            service=settings.provided.nats_signal_jetstream,
            worker=providers.Callable(signal_acks, settings, partitions),
            local=settings.provided.nats_signal_jetstream,
        ),
        jetstream_timeout=settings.provided.nats_signal_ack_timeout_seconds,
    )
    nats_notifier = providers.Singleton(
        NatsConfigChangeNotifier, nats, instance, subject=settings.provided.nats_config_change_topic
    )

    # --- the ways of running ------------------------------------------------------------------
    service = providers.Container(
        ServiceParts,
        settings=settings,
        connection=nats,
        decoders=decoders,
        decode_stats=decode_stats,
    )
    worker = providers.Container(
        WorkerParts,
        settings=settings,
        partitions=partitions,
        connection=worker_feed_nats,
        decoders=decoders,
        decode_stats=decode_stats,
        state=providers.Singleton(
            worker_state,
            providers.Callable(lambda c: c.engine(), __self__),
            providers.Callable(lambda c: c.metrics_book(), __self__),
            decoder,
            input_decoder,
            providers.Callable(lambda c: c.live_scorer(), __self__),
            partitions,
            settings,
        ),
    )
    local = providers.Container(
        LocalParts, settings=settings, replay=replay, decoder=decoder, decode_stats=decode_stats
    )
    router = providers.Container(RouterParts, settings=settings, partitions=partitions)
    backtest = providers.Container(BacktestParts)

    market_feed = providers.Selector(
        mode, service=service.feed, worker=worker.feed, local=local.feed
    )
    signal_gate = providers.Selector(
        mode, service=service.gate, worker=worker.gate, local=local.gate
    )
    # One process keeps the per-minute cap exactly on its own; workers share it (ADR 25).
    worker_budget = providers.Singleton(signal_budget, nats, partitions)
    budget = providers.Selector(
        mode, service=providers.Object(None), worker=worker_budget, local=providers.Object(None)
    )
    # Every published signal also goes to the console's live watchers (in-process).
    signal_broadcast = providers.Singleton(SignalBroadcast)
    signal_sink = providers.Singleton(
        BroadcastingSignalSink,
        providers.Selector(mode, service=nats_sink, worker=nats_sink, local=local.sink),
        signal_broadcast,
    )
    messaging = providers.Selector(mode, service=nats, worker=nats, local=providers.Object(None))
    feed_messaging = providers.Selector(
        mode, service=nats, worker=worker_feed_nats, local=providers.Object(None)
    )
    config_notifier = providers.Selector(
        mode, service=nats_notifier, worker=nats_notifier, local=providers.Object(None)
    )

    # --- use cases --------------------------------------------------------------------------
    config_cache = providers.Singleton(
        EffectiveConfigCache,
        registry=config_params,
        repository=config_repository,
        clock=clock,
        environment=config_env,
        cache_ttl_seconds=settings.provided.config_cache_ttl_seconds,
        pause_store=pause_store,
    )
    config_admin = providers.Singleton(
        ConfigAdmin,
        cache=config_cache,
        unit_of_work=config_unit_of_work,
        audit=audit_log,
        clock=clock,
        notifier=config_notifier,
        names=CONFIG_NAMES,
    )
    pause_admin = providers.Singleton(
        SignalPauseAdmin,
        cache=config_cache,
        unit_of_work=config_unit_of_work,
        clock=clock,
        notifier=config_notifier,
    )
    config_listener = providers.Singleton(
        NatsConfigChangeListener,
        nats,
        config_cache.provided.apply_remote_change,
        instance,
        subject=settings.provided.nats_config_change_topic,
    )
    config_refresher = providers.Singleton(
        ConfigRefresher,
        config_cache.provided.refresh,
        settings.provided.config_refresh_interval_seconds,
    )
    metrics_book = providers.Singleton(
        MarketMetricsBook, history_seconds=settings.provided.metrics_history_seconds
    )
    metrics_query = providers.Singleton(MarketMetricsQuery, metrics_book)
    health = providers.Singleton(
        HealthService,
        providers.Callable(
            build_health_checks,
            mode,
            messaging,
            config_repository,
            market_feed,
            feed_messaging,
            config_cache,
        ),
        clock,
    )
    prometheus = providers.Singleton(
        PrometheusMetrics, providers.Callable(scrape_sources, __self__)
    )
    # The gate asks the config cache for the limits in force and holds its pauses.
    governance = providers.Singleton(governed, config_cache)
    engine = providers.Singleton(
        SignalEngine,
        providers.Callable(build_strategies, settings.provided.home_venue),
        config_cache.provided.effective,
        depth_observer=metrics_book,
        instrument=providers.Callable(timed, prometheus),
        governance=governance,
    )
    tracing = providers.Singleton(OpenTelemetryTracing)
    live_scorer = providers.Singleton(
        LiveScorer, max_pending_per_symbol=settings.provided.signal_outcome_max_pending
    )
    outcome_recorder = providers.Singleton(
        OutcomeRecorder,
        live_scorer,
        outcome_store,
        providers.Callable(signal_payload, settings),
        retention_days=settings.provided.signal_outcome_retention_days,
        observer=prometheus,
    )
    outcome_query = providers.Singleton(
        OutcomeQuery, outcome_store, providers.Callable(strategy_ids, strategy_params)
    )
    market_window = providers.Singleton(
        MarketWindow,
        settings.provided.preview_window_seconds,
        settings.provided.preview_max_events,
    )
    config_preview = providers.Singleton(
        ConfigPreview,
        config_cache,
        config_admin,
        market_window,
        home_venue=settings.provided.home_venue,
        timeout_seconds=settings.provided.preview_timeout_seconds,
    )
    # The heartbeat's extra fields where signals go to NATS: their delivery and the outcomes.
    nats_heartbeat = providers.Callable(
        heartbeat_fields,
        providers.Callable(delivery_stats, nats_sink, nats),
        outcome_recorder.provided.stats,
    )
    runtime = providers.Singleton(
        ServiceRuntime,
        market_feed,
        engine,
        signal_sink,
        observer=prometheus,
        gate=signal_gate,
        budget=budget,
        tracing=tracing,
        # run-local replays a recorded capture: its events are old by the wall clock.
        max_signal_age_seconds=providers.Selector(
            mode,
            service=settings.provided.max_signal_age_seconds,
            worker=settings.provided.max_signal_age_seconds,
            local=providers.Object(0.0),
        ),
        heartbeat_extra=providers.Selector(
            mode,
            service=nats_heartbeat,
            worker=providers.Callable(
                heartbeat_fields, nats_heartbeat, providers.Callable(budget_fields, worker_budget)
            ),
            local=providers.Callable(heartbeat_fields, outcome_recorder.provided.stats),
        ),
        taps=providers.List(outcome_recorder, market_window),
    )

    # --- API ------------------------------------------------------------------------------
    api_security = providers.Singleton(api_security, settings)
    service_api = providers.Singleton(create_app, title="realtime-strategies", version="0.1.0")
    mcp_server = providers.Singleton(
        build_mcp_server,
        config_admin,
        metrics_query,
        api_security,
        config_params,
        pauses=pause_admin,
        outcomes=outcome_query,
        preview=config_preview,
    )
    # /mcp on the service's API (every mode that serves it); the process runs the manager.
    mcp_session_manager = providers.Singleton(
        mount_mcp, service_api, mcp_server, settings.provided.fastapi_host
    )
    api = providers.Selector(
        mode,
        service=service_api,
        local=service_api,
        worker=providers.Singleton(
            worker_api,
            service_api,
            worker.feed,
            partitions,
            worker.index,
            nats_sink,
            engine,
            prometheus,
        ),
    )


def build_container(
    settings: Settings,
    *,
    mode: Mode = Mode.SERVICE,
    partitions: PartitionSettings | None = None,
    replay: ReplayOptions | None = None,
) -> Container:
    """The container of a process running in ``mode``, its HTTP routers wired."""
    container = Container(settings=settings, mode=mode.value)
    if partitions is not None:
        container.partitions.override(partitions)
    if replay is not None:
        container.replay.override(replay)
    container.wire(modules=list(WIRED_MODULES))
    return container
