"""``realtime-strategies route``: the partition router process.

Raw market-data subjects → ``<prefix>.<partition>.<SYMBOL>.<kind>``, stored by the
market-data stream; serves ``/healthz``, ``/ready``, ``/metrics`` and ``/api/v1/router`` on
``FASTAPI_PORT``. Its objects come from the ``router`` sub-container of
:mod:`entrypoints.container`; a partitioned *worker* is ``serve`` (see
:func:`entrypoints.service.serve`). See docs/adr/0010-symbol-partitioning.md.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import ValidationError

from entrypoints.container import Container, build_container
from entrypoints.lifecycle import Process, api_server, run_process, settle_garbage_collector
from entrypoints.partition_settings import PartitionSettings
from entrypoints.service import configure_logging
from entrypoints.settings import Settings, invalid_settings_message


def router_process(container: Container) -> Process:
    settings = container.settings()
    parts = container.router
    router = parts.router()
    connection = parts.connection()
    return Process(
        name="router",
        job=router,
        api=api_server(parts.api(), settings.fastapi_host, settings.fastapi_port),
        startup=[connection.start],
        shutdown=[connection.close],
        heartbeat=router.stats,
        heartbeat_message="HEARTBEAT: partition router",
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        grace_seconds=settings.shutdown_grace_seconds,
    )


def route() -> int:
    """``realtime-strategies route``."""
    try:
        settings, partitions = Settings(), PartitionSettings()
    except ValidationError as error:
        print(invalid_settings_message(error, os.environ), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        partitions.resolve_router_shard()
    except ValueError as error:
        print(f"realtime-strategies: {error}", file=sys.stderr)
        return 2
    container = build_container(settings, partitions=partitions)
    process = router_process(container)
    settle_garbage_collector()
    asyncio.run(run_process(process))
    return 0
