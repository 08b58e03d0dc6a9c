"""Router failover on the real NATS (docs/adr/0019-router-failover.md): a leader and a standby
router of one shard, leadership through a JetStream KV lease, the raw input captured by an
input stream. SIGKILL the leader mid-stream: the standby takes over, and the market-data
stream holds every input message exactly once, each symbol's in producer order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from bench.fanout import SYMBOLS_50, capture_lines, fan_out
from tests.integration.partition_cluster import Cluster, Proc
from tests.integration.service_harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def nc(nats_url: str, cluster: Cluster) -> Any:
    client = await nats.connect(nats_url, max_reconnect_attempts=-1)
    yield client
    js = client.jetstream()
    for name in (
        cluster.market_stream,
        cluster.input_stream,
        f"KV_{cluster.lease_bucket}",
        f"KV_{cluster.position_bucket}",
    ):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
    await client.drain()


def symbol_of(raw: bytes) -> str:
    return raw[len(b'{"stream":"') : raw.index(b"@")].decode().upper()


def roles(routers: list[Proc]) -> list[str] | None:
    answers = [r.get("/api/v1/router") for r in routers if r.running]
    if any(a is None or a.status_code != 200 for a in answers):
        return None
    return [a.json()["role"] for a in answers if a is not None]


@pytest.mark.timeout(900)
async def test_a_killed_router_leader_is_replaced_without_loss_duplicates_or_reordering(
    nc: Client, cluster: Cluster
) -> None:
    messages = list(fan_out(capture_lines()[:1500], SYMBOLS_50[:20]))  # 30,000
    routers = [cluster.router(f"router-{n}", **cluster.failover_env()) for n in "ab"]
    routers[0].start()
    cluster.wait_ready(routers[:1])
    wait_until(lambda: roles(routers[:1]) == ["leader"], 60, "router-a leads")
    routers[1].start()
    cluster.wait_ready(routers[1:])
    assert roles(routers) == ["leader", "standby"]

    async def publish_at(rate: float) -> None:
        """The producer, at ``rate`` msg/s: it goes on while the leader dies."""
        began = time.perf_counter()
        for i, raw in enumerate(messages):
            await nc.publish(cluster.raw_topic, raw)
            if i % 300 == 299:
                await nc.flush(timeout=30)
                delay = began + (i + 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        await nc.flush(timeout=30)

    producer = asyncio.create_task(publish_at(3_000.0))

    def committed() -> bool:
        status = routers[0].get("/api/v1/router")
        return status is not None and (status.json()["committed_input_seq"] or 0) >= 5_000

    await asyncio.to_thread(wait_until, committed, 300, "the leader commits", interval=0.05)
    await asyncio.sleep(0.7)  # between two commits (every 1.5 s): routed, not yet committed
    routers[0].kill()  # mid-stream: it has routed more than it committed, acked or not
    killed_at = time.time()
    await producer

    js = nc.jetstream()
    deadline = time.monotonic() + 600
    while (await js.stream_info(cluster.market_stream)).state.messages < len(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"not every message routed\n{cluster.describe()}")
        await asyncio.sleep(0.5)
    status = await asyncio.to_thread(routers[1].json, "/api/v1/router")
    assert status["role"] == "leader"
    assert status["publish_errors"] == {}
    assert status["input_gaps"] == 0
    takeover = status["last_takeover"]  # what the killed leader had committed, maybe 0
    # every message after the committed position is stored by the standby, or was already
    # (found in the stream: not re-sent; re-sent anyway: acknowledged as a duplicate)
    handled = status["acked"] + status["duplicates"] + status["skipped_stored"]
    assert handled == len(messages) - takeover["resumed_after_seq"]

    # Exactly once, each symbol in producer order: read the whole stream back.
    info = await js.stream_info(cluster.market_stream)
    assert info.state.messages == len(messages)
    sub = await js.subscribe(
        f"{cluster.prefix}.>",
        stream=cluster.market_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    got: dict[str, list[bytes]] = defaultdict(list)
    for _ in range(len(messages)):
        msg = await sub.next_msg(timeout=30)
        got[msg.subject.split(".")[-2]].append(msg.data)
    await sub.unsubscribe()
    sent: dict[str, list[bytes]] = defaultdict(list)
    for raw in messages:
        sent[symbol_of(raw)].append(raw)
    assert set(got) == set(sent)
    for symbol, payloads in sent.items():
        assert got[symbol] == payloads, f"{symbol}: stored differs from the producer's order"
    print(
        f"router failover: standby led {status['first_led_at_unix'] - killed_at:.2f} s after the "
        f"SIGKILL (lease TTL 6 s), resumed after input seq {takeover['resumed_after_seq']}, "
        f"{status['skipped_stored']} found already stored, {status['duplicates']} re-sent "
        f"and stored once, {status['terms']} term(s)"
    )
