"""The composition root: one dependency-injector container for service, demo and tests.

Adapters are chosen by two settings: ``config_store`` (failover | mongodb | mysql | sqlite |
memory) and the container's ``feed_kind`` (``nats`` for the service, ``replay`` for the
embedded demo). Tests override any provider with a fake (``container.x.override(...)``).
Routers get their use cases from here by name (see ``adapters.http.routers``).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from adapters.console import ConsoleSignalSink
from adapters.failover import FailoverAuditLog, FailoverConfigRepository
from adapters.http.app import create_app
from adapters.http.routers import WIRED_MODULES
from adapters.http.security import ApiSecurity, is_loopback_host
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.replay_feed import ReplayMarketFeed
from adapters.mongo.config_store import MongoAuditLog, MongoConfigRepository, create_mongo_client
from adapters.nats.config_broadcast import NatsConfigChangeListener, NatsConfigChangeNotifier
from adapters.nats.connection import NatsConnection
from adapters.nats.market_feed import NatsMarketFeed
from adapters.nats.signal_sink import NatsSignalSink
from adapters.observability.prometheus import PrometheusMetrics
from adapters.sql.config_store import SqlAuditLog, SqlConfigRepository, create_sql_engine
from adapters.system_clock import SystemClock
from adapters.wire.binance import BinanceDecoder
from adapters.wire.market_inputs import decode_dominance, decode_onchain, decode_quote
from adapters.wire.stats import DecodeStats
from application.config_service import ConfigService
from application.health import HealthService
from application.metrics_query import MarketMetricsQuery
from application.processing import MarketEventProcessor
from domain.engine import SignalEngine
from domain.metrics import MarketMetricsBook
from domain.strategies.registry import STRATEGY_PARAMS, build_strategies
from entrypoints.health_checks import build_health_checks
from entrypoints.settings import Settings, strategy_environment


def instance_id() -> str:
    """This process's identity in config broadcasts: the pod name (``HOSTNAME``) or host
    name, plus pid and a random suffix, so that two processes on one host (or two pods that
    share a host name) never take each other's changes for their own."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def market_subjects(settings: Settings, decoder: BinanceDecoder) -> dict[str, Any]:
    return {
        settings.nats_consumer_topic: decoder.decode_envelope,
        settings.nats_dominance_topic: decode_dominance,
        settings.nats_quotes_topic: decode_quote,
        settings.nats_onchain_topic: decode_onchain,
    }


def mysql_engine(settings: Settings) -> Any:
    return create_sql_engine(settings.mysql_uri.get_secret_value())


def sqlite_engine(settings: Settings) -> Any:
    return create_sql_engine(settings.sqlite_path)


def mongo_client(settings: Settings) -> Any:
    return create_mongo_client(settings.mongodb_uri.get_secret_value())


def api_security(settings: Settings) -> ApiSecurity:
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else None
    return ApiSecurity(token or None, bound_to_loopback=is_loopback_host(settings.fastapi_host))


class Container(containers.DeclarativeContainer):
    """Every object of the running service, built lazily, once (singletons)."""

    settings = providers.Dependency(instance_of=Settings)
    environ: providers.Provider[Mapping[str, str]] = providers.Object(os.environ)
    feed_kind = providers.Object("nats")  # "nats" | "replay"
    replay_path: providers.Object[Path | None] = providers.Object(None)
    replay_speed = providers.Object(1.0)
    replay_loop = providers.Object(True)

    clock = providers.Singleton(SystemClock)
    strategy_params = providers.Object(STRATEGY_PARAMS)
    strategy_env = providers.Singleton(strategy_environment, strategy_params, environ)

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
    audit_log = providers.Selector(
        settings.provided.config_store,
        # Linked to the repository: one health state, one lock, and the repository's
        # reconciliation also copies the audit records written while a store was down.
        failover=providers.Singleton(
            FailoverAuditLog, mongo_audit, mysql_audit, repository=failover_repository
        ),
        mongodb=mongo_audit,
        mysql=mysql_audit,
        sqlite=sqlite_audit,
        memory=memory_audit,
    )

    # --- NATS -----------------------------------------------------------------------------
    nats = providers.Singleton(
        NatsConnection, settings.provided.nats_url, name=settings.provided.nats_consumer_name
    )
    instance = providers.Singleton(instance_id)  # one id for the notifier and the listener
    config_notifier = providers.Selector(
        feed_kind,
        nats=providers.Singleton(
            NatsConfigChangeNotifier,
            nats,
            instance,
            subject=settings.provided.nats_config_change_topic,
        ),
        replay=providers.Object(None),
    )

    # --- use cases --------------------------------------------------------------------------
    config_service = providers.Singleton(
        ConfigService,
        registry=strategy_params,
        repository=config_repository,
        audit=audit_log,
        clock=clock,
        environment=strategy_env,
        notifier=config_notifier,
        cache_ttl_seconds=settings.provided.config_cache_ttl_seconds,
    )
    config_listener = providers.Singleton(
        NatsConfigChangeListener,
        nats,
        config_service.provided.apply_remote_change,
        instance,
        subject=settings.provided.nats_config_change_topic,
    )
    metrics_book = providers.Singleton(
        MarketMetricsBook, history_seconds=settings.provided.metrics_history_seconds
    )
    metrics_query = providers.Singleton(MarketMetricsQuery, metrics_book)
    prometheus = providers.Singleton(PrometheusMetrics)
    engine = providers.Singleton(
        SignalEngine, providers.Callable(build_strategies, settings.provided.home_venue)
    )
    processor = providers.Singleton(
        MarketEventProcessor,
        engine,
        config_service.provided.effective,
        metrics_book,
        prometheus,
    )

    # --- feed and sink ----------------------------------------------------------------------
    decode_stats = providers.Singleton(DecodeStats)
    decoder = providers.Singleton(
        BinanceDecoder,
        symbols=settings.provided.symbols.call(),
        max_bytes=settings.provided.max_message_bytes,
    )
    market_feed = providers.Selector(
        feed_kind,
        nats=providers.Singleton(
            NatsMarketFeed,
            nats,
            providers.Callable(market_subjects, settings, decoder),
            settings.provided.nats_consumer_group,
            stats=decode_stats,
            dead_letter_subject=settings.provided.nats_dead_letter_topic,
        ),
        replay=providers.Singleton(
            ReplayMarketFeed,
            replay_path,
            decoder,
            decode_stats,
            loop=replay_loop,
            pace=True,
            speed=replay_speed,
        ),
    )
    signal_sink = providers.Selector(
        feed_kind,
        nats=providers.Singleton(
            NatsSignalSink,
            nats,
            subject_prefix=settings.provided.nats_publisher_topic,
            source=settings.provided.signal_source,
            buffer_size=settings.provided.signal_buffer_size,
            use_jetstream=settings.provided.nats_signal_jetstream,
        ),
        replay=providers.Singleton(ConsoleSignalSink, settings.provided.signal_source),
    )

    # --- operations and API ----------------------------------------------------------------
    health = providers.Singleton(
        HealthService,
        providers.Callable(build_health_checks, feed_kind, nats, config_repository, market_feed),
        clock,
    )
    api_security = providers.Singleton(api_security, settings)
    api = providers.Singleton(create_app, title="realtime-strategies", version="0.1.0")


def build_container(settings: Settings, **overrides: Any) -> Container:
    """A container for ``settings``, its routers wired; ``overrides`` set Object providers."""
    container = Container(settings=settings)
    for name, value in overrides.items():
        getattr(container, name).override(providers.Object(value))
    container.wire(modules=list(WIRED_MODULES))
    return container
