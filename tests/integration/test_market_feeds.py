"""The market feed contract against the real NATS server: the core NATS feed (its fast path
and its public-API path) and a worker's JetStream partition feed. The replay feed passes the
same contract in the unit tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import ensure_stream, market_data_stream
from adapters.nats.market_feed import NatsMarketFeed
from adapters.nats.partition_feed import JetStreamPartitionFeed, kind_decoders
from adapters.nats.partition_subjects import PartitionLayout
from adapters.wire.binance import BinanceDecoder
from adapters.wire.decoders import market_decoders
from adapters.wire.market_inputs import MarketInputDecoder
from adapters.wire.routing_keys import BinanceRouteKeys, RouteKey, RouteKind
from adapters.wire.stats import DecodeStats
from tests.contract.market_feed_contract import Fed, MarketFeedContract
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
