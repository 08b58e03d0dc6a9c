"""Contract every :class:`application.ports.MarketFeed` adapter must pass.

Use it from an adapter's test module::

    class TestReplayMarketFeed(MarketFeedContract):
        @contextlib.asynccontextmanager
        async def feed_of(self, messages: list[bytes]) -> AsyncIterator[Fed]:
            ...  # a feed that will deliver ``messages`` (producer wire format, in order)
            yield Fed(feed, stats)

``feed_of`` makes the raw Binance producer messages available to a fresh feed in that order
(written to a file, published on a subject, stored in a stream) and yields it with the
:class:`DecodeStats` it records into. The expected events are what a fresh
:class:`BinanceDecoder` makes of the same messages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import orjson

from adapters.wire.binance import BinanceDecoder
from adapters.wire.stats import Decoded, DecodeStats, SkipReason
from application.ports import FeedItem, MarketFeed
from tests.data import capture_lines

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def expected_events(messages: Sequence[bytes]) -> list[Decoded]:
    decoder = BinanceDecoder()
    return [r for r in map(decoder.decode_envelope, messages) if isinstance(r, Decoded)]


@dataclass
class Fed:
    feed: MarketFeed
    stats: DecodeStats


async def take(feed: MarketFeed, count: int) -> list[list[FeedItem]]:
    """Batches until ``count`` items, then drain: the batches must end with nothing more."""
    batches: list[list[FeedItem]] = []
    received = 0
    iterator = feed.batches().__aiter__()
    while received < count:
        batch = list(await iterator.__anext__())
        batches.append(batch)
        received += len(batch)
    await feed.drain(timeout=10.0)
    batches.extend([list(batch) async for batch in iterator])
    return batches


class MarketFeedContract:
    """The behaviour every market feed shares (module doc)."""

    envelope_context = True
    """Whether items carry the envelope's message id and trace context (a live feed); a
    replay does not (a recording's traces are over)."""

    def feed_of(self, messages: list[bytes]) -> AbstractAsyncContextManager[Fed]:
        raise NotImplementedError

    async def test_delivers_what_the_codec_decodes_in_order(self) -> None:
        messages = capture_lines(400)
        traced = orjson.loads(messages[3])
        traced["_otel_trace_context"] = {"traceparent": TRACEPARENT}
        messages[3] = orjson.dumps(traced)
        expected = expected_events(messages)
        before = time.time_ns()
        async with self.feed_of(messages) as fed:
            batches = await take(fed.feed, len(expected))
        items = [item for batch in batches for item in batch]
        assert all(batches), "no empty batch"
        assert [item.event for item in items] == [decoded.event for decoded in expected]
        if self.envelope_context:
            assert [item.message_id for item in items] == [d.message_id for d in expected]
            assert [item.trace_context for item in items] == [d.trace_context for d in expected]
            assert items[3].trace_context == {"traceparent": TRACEPARENT}
        else:
            assert {(item.message_id, item.trace_context) for item in items} == {(None, None)}
        assert all(before <= item.received_at_ns <= time.time_ns() for item in items)
        assert sum(fed.stats.by_type.values()) == len(expected)

    async def test_bad_messages_are_counted_and_cost_only_themselves(self) -> None:
        good = capture_lines(60)
        kline = b'{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}'
        messages = [*good[:20], b"{not json", *good[20:40], b"[1, 2]", kline, *good[40:]]
        expected = expected_events(messages)
        async with self.feed_of(messages) as fed:
            batches = await take(fed.feed, len(expected))
        items = [item for batch in batches for item in batch]
        assert [item.event for item in items] == [decoded.event for decoded in expected]
        skipped = fed.stats.skipped
        assert skipped[SkipReason.MALFORMED_JSON] == 1
        assert skipped[SkipReason.NOT_AN_OBJECT] == 1
        assert skipped[SkipReason.UNSUPPORTED_STREAM] == 1

    async def test_drain_ends_the_batches_after_what_was_received(self) -> None:
        messages = capture_lines(50)
        expected = expected_events(messages)
        async with self.feed_of(messages) as fed:
            first = await take(fed.feed, 1)
            # after a drain, the batches end; nothing is delivered twice
            delivered = [item.event for batch in first for item in batch]
        assert delivered == [decoded.event for decoded in expected[: len(delivered)]]
