"""Signal governance and input integrity over real NATS (issue 9).

One ``realtime-strategies serve`` (in-memory config store, staleness gate at 60 s) receives,
in this order: a stale skewed depth message (10 minutes old), a forged one dated 2100, a fresh
one, the fresh one again (same message id), sparse forgeries between fresh messages. The
stale event is processed but its signal is counted as ``stale``; the forgeries are rejected
as ``future_dated`` without blocking the real messages after them; the repeat is dropped as
``duplicate``. Only the fresh messages are published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from nats.aio.client import Client as NatsClient

from tests.integration.conftest import NATS_URL
from tests.integration.service_harness import (
    ServiceHarness,
    ServiceProcess,
    Topics,
    async_wait_until,
    metric_sum,
)
from tests.integration.test_hostile_input import memory_service_env
from tests.integration.test_service_end_to_end import (  # the fixtures too
    harness,  # noqa: F401
    nats_client,  # noqa: F401
    subscribe_signals,
    topics,  # noqa: F401
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

YEAR_2100_MS = 4_102_444_800_000


def depth_message(time_ms: int, message_id: str | None = None) -> bytes:
    """A BTCUSDT depth20 message (no ``E``: its event time is the envelope timestamp) whose
    bid side is three times the ask side: orderbook_skew buys on it."""
    stamp = datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return orjson.dumps(
        {
            "stream": "btcusdt@depth20@100ms",
            "data": {
                "lastUpdateId": time_ms,
                "bids": [["61830.10", "3.0"], ["61830.00", "3.0"]],
                "asks": [["61830.20", "1.0"], ["61830.30", "1.0"]],
            },
            "timestamp": stamp[:-3] + "Z",
            "message_id": message_id or str(uuid.uuid4()),
            "source": "binance-websocket",
            "version": "1.0",
        }
    )


def invalid(service: ServiceProcess, reason: str) -> float:
    samples = service.metrics()
    return metric_sum(
        {k: v for k, v in samples.items() if f'reason="{reason}"' in k or f"reason={reason}" in k},
        "realtime_strategies_messages_invalid_total",
    )


def suppressed(service: ServiceProcess, reason: str) -> float:
    samples = service.metrics()
    return metric_sum(
        {k: v for k, v in samples.items() if f"reason={reason}" in k},
        "realtime_strategies_signals_suppressed_total",
    )


async def test_stale_forged_and_duplicated_messages_neither_block_nor_trigger(
    harness: ServiceHarness,  # noqa: F811
    nats_client: NatsClient,  # noqa: F811
    topics: Topics,  # noqa: F811
) -> None:
    env = memory_service_env(
        NATS_URL,
        topics,
        max_signal_age_seconds="60",
        orderbook_skew_cooldown_seconds="0",
        log_level="WARNING",
    )
    service = harness.start("governed", env)
    await asyncio.to_thread(service.wait_ready)
    inbox = await subscribe_signals(nats_client, topics.signals)

    now = int(time.time() * 1000)
    fresh = depth_message(now, "fresh-1")
    messages = [
        depth_message(now - 600_000),  # stale: processed, its signal held
        depth_message(YEAR_2100_MS),  # forged: rejected, must not block what follows
        fresh,
        fresh,  # the same message again: a duplicate
        depth_message(YEAR_2100_MS + 1),  # sparse forgeries between real messages
        depth_message(now + 100),
        depth_message(YEAR_2100_MS + 2),
        depth_message(now + 200),
    ]
    for message in messages:
        await nats_client.publish(topics.consumer, message)
    await nats_client.flush()

    await async_wait_until(
        lambda: len(inbox.signals) >= 3, 30, "3 signals", context=service.describe
    )
    await async_wait_until(
        lambda: invalid(service, "duplicate") >= 1, 30, "the duplicate", context=service.describe
    )
    await asyncio.sleep(0.5)  # anything else would have arrived by now
    times = sorted(s.payload["timestamp"] for s in inbox.signals)
    assert len(times) == 3, times
    assert all(t.startswith(str(datetime.now(UTC).year)) for t in times)
    assert invalid(service, "future_dated") == 3
    assert invalid(service, "duplicate") == 1
    assert invalid(service, "out_of_order") == 0
    assert suppressed(service, "stale") == 1
