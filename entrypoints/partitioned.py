"""Symbol-partitioned scaling: ``realtime-strategies route`` and ``serve`` as a worker.

- :func:`route` — the stateless router role (any number of replicas, queue group
  ``ROUTER_QUEUE_GROUP``): raw market-data subjects → ``<prefix>.<partition>.<SYMBOL>.<kind>``,
  stored by the market-data stream. Serves ``/healthz``, ``/ready``, ``/metrics`` on
  ``FASTAPI_PORT``.
- :func:`serve_worker` — ``serve`` with ``PARTITIONED_MODE=true`` or ``WORKER_COUNT>0``: the
  whole service (strategies, metrics, API, config) with the partition feed of worker
  ``i`` of ``W`` in place of the raw-subject queue-group feed; signals of the takeover replay
  gated; ``/api/v1/partitions``; metrics reads forwarded to their owner.

The composition root stays :mod:`entrypoints.container`; this module only swaps the feed and
wraps the sink (provider overrides) and adds the partition API. See
docs/adr/0010-symbol-partitioning.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as os_signal
import sys
from typing import Any

import structlog
import uvicorn
from dependency_injector import providers
from pydantic import ValidationError

from adapters.http.partition_api import (
    OwnerProxyMiddleware,
    create_router_app,
    partition_status_router,
)
from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import (
    StreamSpec,
    ensure_stream,
    market_data_stream,
    signal_stream,
)
from adapters.nats.market_feed import Decoder
from adapters.nats.partition_feed import JetStreamPartitionFeed, ReplayGatedSink
from adapters.nats.partition_router import NatsPartitionRouter, RouteFn
from adapters.observability.partition_metrics import RouterMetrics, register_partition_feed
from adapters.wire.routing_keys import (
    BinanceRouteKeys,
    dominance_route,
    onchain_route,
    quote_route,
)
from application.partitioning import BINANCE_KINDS, PartitionLayout, RouteKind
from domain.params import ParamValidationError
from entrypoints.container import Container, build_container, market_subjects
from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings, invalid_settings_message

log = structlog.get_logger("realtime_strategies.partitioned")


def load_settings() -> tuple[Settings, PartitionSettings] | None:
    try:
        return Settings(), PartitionSettings()
    except ValidationError as error:
        print(invalid_settings_message(error, os.environ), file=sys.stderr)
        return None


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


# ------------------------------------------------------------------------------ router


def router_routes(settings: Settings) -> dict[str, RouteFn]:
    """Input subject → routing-key function (empty subjects are off)."""
    wanted: list[tuple[str, RouteFn]] = [
        (settings.nats_consumer_topic, BinanceRouteKeys()),
        (settings.nats_dominance_topic, dominance_route),
        (settings.nats_quotes_topic, quote_route),
        (settings.nats_onchain_topic, onchain_route),
    ]
    return {subject.strip(): fn for subject, fn in wanted if subject.strip()}


def build_router(
    settings: Settings, part: PartitionSettings, connection: NatsConnection
) -> NatsPartitionRouter:
    return NatsPartitionRouter(
        connection,
        layout_of(part),
        router_routes(settings),
        part.router_queue_group,
        shards=part.router_shards,
        shard_index=part.resolve_router_shard(),
        allowed_symbols=settings.symbols(),
        max_bytes=settings.max_message_bytes,
        dead_letter_subject=settings.nats_dead_letter_topic,
        acks=part.router_acks,
        max_pending_acks=part.router_max_pending_acks,
    )


async def run_router(settings: Settings, part: PartitionSettings) -> None:
    from entrypoints.service import ApiServer

    connection = NatsConnection(settings.nats_url, name=f"{settings.nats_consumer_name}-router")
    router = build_router(settings, part, connection)
    metrics = RouterMetrics(router.stats, lambda: connection.is_connected)
    spec = market_stream_spec(part)
    stop = asyncio.Event()
    stream_ok = asyncio.Event()

    def ready() -> tuple[bool, dict[str, Any]]:
        body = {
            "nats": connection.is_connected,
            "stream": stream_ok.is_set(),
            "subscribed": router.is_subscribed,
        }
        ok = all(body.values())
        return ok, {"status": "ready" if ok else "not_ready", **body}

    def status() -> dict[str, Any]:
        return {
            "prefix": part.partition_subject_prefix,
            "partitions": part.partition_count,
            "stream": part.partition_stream,
            "queue_group": router.queue_group,
            "shard": router.shard_index if router.shards else None,
            "shards": router.shards,
            **router.stats(),
        }

    async def prepare() -> None:
        await connection.wait_connected()
        delay = 0.5
        while True:
            try:
                await ensure_stream(
                    connection.jetstream(), spec, create=part.partition_stream_create
                )
                break
            except Exception as exc:  # the stream (or JetStream) may come later
                log.warning("market_stream_not_ready", stream=spec.name, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        stream_ok.set()
        await router.start()

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(settings.heartbeat_interval_seconds)
            log.info("HEARTBEAT: partition router", **router.stats())

    loop = asyncio.get_running_loop()
    for sig in (os_signal.SIGTERM, os_signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    app = create_router_app(ready=ready, render_metrics=metrics.render, status=status)
    server = ApiServer(
        uvicorn.Config(
            app,
            host=settings.fastapi_host,
            port=settings.fastapi_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    await connection.start()
    tasks = [
        asyncio.create_task(prepare(), name="router-prepare"),
        asyncio.create_task(heartbeat(), name="router-heartbeat"),
        asyncio.create_task(server.serve(), name="router-api"),
    ]
    log.info(
        "router_started", prefix=part.partition_subject_prefix, partitions=part.partition_count
    )
    await stop.wait()
    log.info("router_stopping", grace_seconds=settings.shutdown_grace_seconds)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(router.drain(), settings.shutdown_grace_seconds / 2)
    server.should_exit = True
    for task in tasks[:2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await connection.close()
    log.info("router_stopped", **router.stats())


def route() -> int:
    """``realtime-strategies route``."""
    from entrypoints.service import configure_logging

    loaded = load_settings()
    if loaded is None:
        return 2
    settings, part = loaded
    configure_logging(settings.log_level)
    try:
        part.resolve_router_shard()
    except ValueError as error:
        print(f"realtime-strategies: {error}", file=sys.stderr)
        return 2
    asyncio.run(run_router(settings, part))
    return 0


# ------------------------------------------------------------------------------ worker


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


def worker_decoders(container: Container) -> dict[str, Decoder]:
    """Kind token → the decoder the single-process service uses for that input."""
    settings = container.settings()
    subjects = market_subjects(settings, container.decoder())
    binance = subjects[settings.nats_consumer_topic]
    decoders: dict[str, Decoder] = dict.fromkeys(BINANCE_KINDS, binance)
    decoders[RouteKind.DOMINANCE] = subjects[settings.nats_dominance_topic]
    decoders[RouteKind.QUOTES] = subjects[settings.nats_quotes_topic]
    decoders[RouteKind.ONCHAIN] = subjects[settings.nats_onchain_topic]
    return decoders


def build_worker_feed(
    container: Container, part: PartitionSettings, index: int
) -> JetStreamPartitionFeed:
    settings = container.settings()
    return JetStreamPartitionFeed(
        container.nats(),
        layout_of(part),
        part.owned(index),
        worker_decoders(container),
        market_stream_spec(part),
        replay_seconds=part.partition_replay_seconds,
        create_stream=part.partition_stream_create,
        signal_stream=signal_stream_spec(settings, part),
        create_signal_stream=part.signal_stream_create,
        recover_seconds=part.partition_recover_seconds,
        stats=container.decode_stats(),
        dead_letter_subject=settings.nats_dead_letter_topic,
    )


def install_worker(
    container: Container, part: PartitionSettings, index: int
) -> JetStreamPartitionFeed:
    """Swap the feed, gate the sink, add the partition API and metrics. Call before
    :func:`entrypoints.service.run_service` resolves the feed, the sink or the health checks."""
    feed = build_worker_feed(container, part, index)
    container.market_feed.override(providers.Object(feed))
    inner_sink = container.signal_sink()
    sink = ReplayGatedSink(inner_sink, feed)
    container.signal_sink.override(providers.Object(sink))
    register_partition_feed(container.prometheus().registry, feed)

    async def status() -> dict[str, Any]:
        body: dict[str, Any] = {
            "worker_index": index,
            "worker_count": part.workers,
            "partition_count": part.partition_count,
            "prefix": part.partition_subject_prefix,
            "signals_published": getattr(inner_sink, "published", None),
            "events_processed": container.processor().stats.events,
            **feed.status(),
        }
        try:
            body.update(await feed.caught_up())
        except Exception as exc:
            body.update({"caught_up": False, "error": repr(exc)})
        return body

    app = container.api()
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
    log.info(
        "partitioned_worker",
        worker_index=index,
        worker_count=part.workers,
        partitions=list(part.owned(index)),
        stream=part.partition_stream,
        replay_seconds=part.partition_replay_seconds,
        signal_stream=part.signal_stream or None,
    )
    return feed


def serve_worker() -> int:
    """``realtime-strategies serve`` in partitioned mode."""
    from entrypoints.service import configure_logging, configure_tracing, run_service

    loaded = load_settings()
    if loaded is None:
        return 2
    settings, part = loaded
    configure_logging(settings.log_level)
    configure_tracing(settings.otel_exporter)
    try:
        index = part.resolve_worker_index()
        container = build_container(settings)
        container.config_service()  # validates the strategy environment layer now
    except ParamValidationError as error:
        print(f"realtime-strategies: invalid strategy environment: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"realtime-strategies: {error}", file=sys.stderr)
        return 2
    install_worker(container, part, index)
    asyncio.run(run_service(container))
    return 0


def partitioned_mode_enabled() -> bool:
    """Whether ``serve`` should run as a partitioned worker (from the environment)."""
    try:
        return PartitionSettings().enabled
    except ValidationError:
        return True  # let serve_worker report the invalid settings
