"""The market feed contract against the real NATS server: the core NATS feed (its fast path
and its public-API path) and a worker's JetStream partition feed. The replay feed passes the
same contract in the unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import StreamSpec, ensure_stream, market_data_stream
from adapters.nats.market_feed import NatsMarketFeed
from adapters.nats.partition_feed import UNKNOWN_PARTITION, JetStreamPartitionFeed, kind_decoders
from adapters.nats.partition_subjects import PartitionLayout
from adapters.wire.binance import BinanceDecoder
from adapters.wire.decoders import market_decoders
from adapters.wire.market_inputs import MarketInputDecoder
from adapters.wire.routing_keys import BinanceRouteKeys, RouteKey, RouteKind
from adapters.wire.stats import DecodeStats
from application.ports import FeedItem
from tests.contract.market_feed_contract import Fed, MarketFeedContract, expected_events
from tests.data import capture_lines
from tests.integration.conftest import NATS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
async def nats() -> AsyncIterator[NatsConnection]:
    connection = NatsConnection(NATS_URL, name="rs-feed-contract")
    await connection.connect(timeout=10.0)
    try:
        yield connection
    finally:
        await connection.close()


class TestNatsMarketFeed(MarketFeedContract):
    fast = True

    @pytest.fixture(autouse=True)
    def _nats(self, nats: NatsConnection) -> None:
        self.nats = nats

    @contextlib.asynccontextmanager
    async def feed_of(self, messages: list[bytes]) -> AsyncIterator[Fed]:
        subject = f"test.rs.contract.{uuid.uuid4().hex[:12]}"
        stats = DecodeStats()
        decoder = BinanceDecoder().decode_envelope
        feed = NatsMarketFeed(self.nats, {subject: decoder}, None, stats=stats, fast=self.fast)
        await feed.start()
        assert await feed.wait_subscribed(5.0)
        try:
            for raw in messages:
                await self.nats.client.publish(subject, raw)
            await self.nats.flush()
            yield Fed(feed, stats)
        finally:
            await feed.close()


class TestNatsMarketFeedThroughCallbacks(TestNatsMarketFeed):
    fast = False


class TestJetStreamPartitionFeed(MarketFeedContract):
    """Messages stored in the stream before the worker starts: its takeover replay."""

    @pytest.fixture(autouse=True)
    def _nats(self, nats: NatsConnection) -> None:
        self.nats = nats

    @contextlib.asynccontextmanager
    async def feed_of(self, messages: list[bytes]) -> AsyncIterator[Fed]:
        token = uuid.uuid4().hex[:10]
        layout = PartitionLayout(f"test_rs_md_{token}", 4)
        spec = market_data_stream(f"TEST_RS_MD_{token}", layout.prefix, 600.0)
        js = self.nats.jetstream()
        await ensure_stream(js, spec, create=True)
        route = BinanceRouteKeys()
        subject = layout.subject("BTCUSDT", RouteKind.TRADE)
        for raw in messages:  # what cannot be routed is published where a forger would
            key = route(raw)
            if isinstance(key, RouteKey):
                subject = layout.subject(key.symbol, key.kind)
            await js.publish(subject, raw)
        stats = DecodeStats()
        feed = JetStreamPartitionFeed(
            self.nats,
            layout,
            range(layout.partitions),
            kind_decoders(market_decoders(BinanceDecoder(), MarketInputDecoder())),
            spec,
            replay_seconds=600.0,
            stats=stats,
        )
        try:
            yield Fed(feed, stats)
        finally:
            await feed.close()
            await js.delete_stream(spec.name)


# --- the partition feed beyond the contract ----------------------------------------------------


@contextlib.asynccontextmanager
async def partition_stream(
    nats: NatsConnection, partitions: int
) -> AsyncIterator[tuple[PartitionLayout, StreamSpec]]:
    token = uuid.uuid4().hex[:10]
    layout = PartitionLayout(f"test_rs_md_{token}", partitions)
    spec = market_data_stream(f"TEST_RS_MD_{token}", layout.prefix, 600.0)
    js = nats.jetstream()
    await ensure_stream(js, spec, create=True)
    try:
        yield layout, spec
    finally:
        await js.delete_stream(spec.name)


def worker_feed(
    nats: NatsConnection, layout: PartitionLayout, spec: StreamSpec, owned: Sequence[int]
) -> JetStreamPartitionFeed:
    return JetStreamPartitionFeed(
        nats,
        layout,
        owned,
        kind_decoders(market_decoders(BinanceDecoder(), MarketInputDecoder())),
        spec,
        replay_seconds=600.0,
        stats=DecodeStats(),
    )


@contextlib.asynccontextmanager
async def consuming(feed: JetStreamPartitionFeed) -> AsyncIterator[list[FeedItem]]:
    """The feed's items as they are processed, while the block runs."""
    items: list[FeedItem] = []

    async def consume() -> None:
        async for batch in feed.batches():
            items.extend(batch)

    task = asyncio.create_task(consume())
    try:
        yield items
    finally:
        await feed.close()
        await asyncio.wait_for(task, 5.0)


async def until(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_worker_with_busy_and_empty_partitions_completes_its_replay(
    nats: NatsConnection,
) -> None:
    """The shipped layout (3 symbols on 16 partitions) leaves most of a worker's partitions
    without a message: their consumers have nothing to replay, while another one has, and
    the worker must still become ready."""
    async with partition_stream(nats, 16) as (layout, spec):
        busy = layout.partition("BTCUSDT")
        empty = (busy + 1) % 16
        lines = capture_lines(30)
        js = nats.jetstream()
        for raw in lines:
            await js.publish(layout.subject("BTCUSDT", RouteKind.TRADE), raw)
        feed = worker_feed(nats, layout, spec, [busy, empty])
        assert len(feed.consumer_filters) == 2
        async with consuming(feed) as items:
            await until(lambda: feed.is_subscribed, "replay complete (ready)")
            assert len(items) == len(expected_events(lines))


async def test_a_subject_naming_no_partition_of_ours_is_dead_lettered_and_costs_nothing_else(
    nats: NatsConnection,
) -> None:
    """Anyone can publish on the stream's subjects: a worker reading the whole stream with
    one consumer skips (counted) what names no partition, and reads on."""
    async with partition_stream(nats, 4) as (layout, spec):
        lines = capture_lines(20)
        js = nats.jetstream()
        subject = layout.subject("BTCUSDT", RouteKind.TRADE)
        for raw in lines[:10]:
            await js.publish(subject, raw)
        await js.publish(f"{layout.prefix}.99.BTCUSDT.trade", lines[10])
        await js.publish(f"{layout.prefix}.x.BTCUSDT.trade", lines[11])
        for raw in lines[12:]:
            await js.publish(subject, raw)
        feed = worker_feed(nats, layout, spec, range(4))
        async with consuming(feed) as items:
            expected = len(expected_events(lines[:10] + lines[12:]))
            await until(lambda: len(items) == expected and feed.is_subscribed, "every message")
            assert feed.dead_letters.skipped[UNKNOWN_PARTITION] == 2, feed.status()
            assert feed.reader_errors == 0
