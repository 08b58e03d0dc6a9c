"""NATS adapters against a real server (nats://127.0.0.1:4222, JetStream on).

The fault tests start their own throwaway ``nats-server`` on a free port so that they can kill
and restart it without disturbing anybody else. Every subject and stream name is unique per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.msg import Msg
from nats.errors import FlushTimeoutError
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from adapters.nats.circuit_breaker import BreakerState
from adapters.nats.config_broadcast import (
    NatsConfigChangeListener,
    NatsConfigChangeNotifier,
)
from adapters.nats.connection import ConnectionEvent, ConnectionState, NatsConnection
from adapters.nats.dead_letter import (
    ORIGINAL_SUBJECT_HEADER,
    SKIP_DETAIL_HEADER,
    SKIP_REASON_HEADER,
)
from adapters.nats.market_feed import (
    DECODER_ERROR,
    FeedItem,
    NatsMarketFeed,
)
from adapters.nats.partition_feed import load_published_signal_ids
from adapters.nats.signal_sink import MSG_ID_HEADER, NatsSignalSink
from adapters.wire.binance import BinanceDecoder
from adapters.wire.decoders import market_decoders, subject_decoders
from adapters.wire.market_inputs import MarketInputDecoder
from adapters.wire.signals import validate_trade_engine_contract
from adapters.wire.stats import Decoded, DecodeStats, Skip, SkipReason
from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    ExchangeFlow,
    FlowDirection,
    Trade,
    VenueQuote,
    WhaleTransfer,
)
from domain.signal import Action, ConfigStamp, Signal, signal_id_for
from tests.data import WIRE_EXAMPLES, capture_lines
from tests.integration.service_harness import NATS_SERVER_BIN, NatsServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# ------------------------------------------------------------------------------------ helpers


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def wire_example(stream_suffix: str) -> bytes:
    for line in WIRE_EXAMPLES.read_bytes().splitlines():
        if orjson.loads(line)["stream"].endswith(stream_suffix):
            return line
    raise AssertionError(f"no {stream_suffix} example in {WIRE_EXAMPLES}")


def decode_all(lines: list[bytes]) -> list[Decoded | Skip]:
    """What a fresh decoder (as the feed's) makes of ``lines`` in order."""
    decoder = BinanceDecoder()
    return [decoder.decode_envelope(line) for line in lines]


def decodable(lines: list[bytes]) -> list[Decoded]:
    return [result for result in decode_all(lines) if isinstance(result, Decoded)]


async def eventually(
    predicate: Callable[[], bool],
    within: float = 10.0,
    what: str = "condition",
    state: Callable[[], object] | None = None,
) -> None:
    """Wait until ``predicate()`` holds; on timeout fail with ``what`` and, if given, what
    ``state()`` shows then (so that a rare failure says why)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            # One more look after the socket reader has had a turn: a stalled event loop
            # can pass the deadline before it did.
            await asyncio.sleep(0.1)
            if predicate():
                return
            shown = "" if state is None else f"; state: {state()!r}"
            raise AssertionError(f"timed out after {within}s waiting for {what}{shown}")
        await asyncio.sleep(0.01)


async def collect(
    items: AsyncIterator[FeedItem], count: int, within: float = 10.0
) -> list[FeedItem]:
    got: list[FeedItem] = []

    async def run() -> None:
        async for item in items:
            got.append(item)
            if len(got) == count:
                return

    try:
        await asyncio.wait_for(run(), within)
    except TimeoutError:
        raise AssertionError(f"received {len(got)} of {count} items within {within}s") from None
    return got


def state_of(connection: NatsConnection) -> ConnectionState:
    """Read the state through a call, so mypy does not narrow the property across awaits."""
    return connection.state


def make_signal(
    strategy_id: str = "orderbook_skew", seq: int = 0, action: Action = Action.BUY
) -> Signal:
    price = 61837.63
    event_time_ms = 1_723_161_255_343 + seq
    if action is Action.BUY:
        stop_loss, take_profit = price * 0.99, price * 1.015
    else:
        stop_loss, take_profit = price * 1.01, price * 0.985
    return Signal(
        signal_id=signal_id_for(strategy_id, "BTCUSDT", action, event_time_ms, 3),
        strategy_id=strategy_id,
        symbol="BTCUSDT",
        action=action,
        confidence=0.75,
        price=price,
        quantity=100.0 / price,
        current_price=price + 0.005,
        stop_loss=stop_loss,
        take_profit=take_profit,
        event_time_ms=event_time_ms,
        config=ConfigStamp(
            version=3, parameters={"buy_threshold": 1.2}, source="global", is_override=False
        ),
        indicators={"ratio": 1.8},
        metadata={"top_bid": price},
    )


@pytest.fixture
def throwaway_nats(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A private nats-server (JetStream on, store in a temp dir) we can kill and restart."""
    if not os.access(NATS_SERVER_BIN, os.X_OK):
        pytest.fail(f"{NATS_SERVER_BIN} missing (run scripts/ensure-services.sh)")
    server = NatsServerProcess(tmp_path / "jetstream", tmp_path)
    try:
        yield server
    finally:
        server.kill()


async def open_connection(url: str = NATS_URL, **kwargs: Any) -> NatsConnection:
    connection = NatsConnection(url, reconnect_time_wait=0.05, max_reconnect_wait=0.5, **kwargs)
    try:
        await connection.connect(timeout=5.0)
    except TimeoutError:
        await connection.close()
        pytest.fail(f"NATS not reachable at {url} (run scripts/ensure-services.sh)")
    return connection


@pytest.fixture
async def connection() -> AsyncIterator[NatsConnection]:
    conn = await open_connection()
    try:
        yield conn
    finally:
        await conn.close()


class SignalStream:
    """Signal subjects unique to one test and the name of a JetStream stream to capture them
    (``create``); the stream, if created, is deleted after the test."""

    def __init__(self, connection: NatsConnection) -> None:
        self.js = connection.jetstream()
        self.prefix = unique("test.rs.signals")
        self.name = f"RS_TEST_{uuid.uuid4().hex[:12].upper()}"

    async def create(self, **options: Any) -> None:
        await self.js.add_stream(
            StreamConfig(name=self.name, subjects=[f"{self.prefix}.>"], **options)
        )


@pytest.fixture
async def signal_stream(connection: NatsConnection) -> AsyncIterator[SignalStream]:
    stream = SignalStream(connection)
    yield stream
    with contextlib.suppress(NotFoundError):
        await stream.js.delete_stream(stream.name)


class Inbox:
    """A raw subscription collecting messages."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []

    async def handler(self, msg: Msg) -> None:
        self.messages.append(msg)


async def subscribe_inbox(connection: NatsConnection, subject: str) -> Inbox:
    inbox = Inbox()
    await connection.client.subscribe(subject, cb=inbox.handler)
    await connection.client.flush()
    return inbox


async def feed_items(feed: NatsMarketFeed) -> AsyncIterator[FeedItem]:
    """The feed's items one by one (its batches flattened)."""
    async for batch in feed.batches():
        for item in batch:
            yield item


async def started_feed(feed: NatsMarketFeed) -> NatsMarketFeed:
    await feed.start()
    assert await feed.wait_subscribed(5.0), "feed did not subscribe"
    return feed


async def binance_feed(
    connection: NatsConnection, count: int, **options: Any
) -> tuple[str, list[bytes], int, NatsMarketFeed]:
    """A started feed (no queue group, ``options``) of a fresh Binance subject, ``count``
    capture lines to publish there and how many of them decode."""
    subject = unique("test.rs.binance")
    lines = capture_lines(count)
    feed = NatsMarketFeed(connection, {subject: BinanceDecoder().decode_envelope}, None, **options)
    return subject, lines, len(decodable(lines)), await started_feed(feed)


async def publish_all(connection: NatsConnection, subject: str, lines: list[bytes]) -> None:
    """Publish ``lines`` on ``subject`` and flush."""
    for line in lines:
        await connection.client.publish(subject, line)
    await connection.flush()


# --------------------------------------------------------------------------------- market feed


async def test_feed_decodes_real_capture_messages(connection: NatsConnection) -> None:
    subject = unique("test.rs.binance")
    lines = capture_lines(200)
    # One message also carries an OpenTelemetry trace context in the envelope.
    traced = orjson.loads(lines[0])
    traced["_otel_trace_context"] = {"traceparent": TRACEPARENT}
    lines[0] = orjson.dumps(traced)
    decoded = decodable(lines)
    assert len(decoded) >= 150, "the capture should decode almost entirely"

    feed = await started_feed(
        NatsMarketFeed(connection, {subject: BinanceDecoder().decode_envelope}, "rs-test")
    )
    try:
        for line in lines:
            await connection.client.publish(subject, line)
        items = await collect(feed_items(feed), len(decoded))
    finally:
        await feed.close()

    assert [item.event for item in items] == [result.event for result in decoded]
    assert [item.message_id for item in items] == [result.message_id for result in decoded]
    assert {type(item.event) for item in items} >= {Trade, DepthSnapshot}
    assert items[0].trace_context is not None
    assert items[0].trace_context["traceparent"] == TRACEPARENT
    assert all(item.subject == subject for item in items)
    now = time.time_ns()
    assert all(now - 60_000_000_000 < item.received_at_ns <= now for item in items)
    assert feed.received == len(lines)
    assert feed.delivered == len(decoded)
    assert sum(feed.dead_letters.skipped.values()) == len(lines) - len(decoded)


async def test_bad_messages_are_counted_dead_lettered_and_survived(
    connection: NatsConnection,
) -> None:
    subject = unique("test.rs.binance")
    dead_letter = unique("test.rs.dlq")
    good = capture_lines(3)
    malformed = b'{"stream": "btcusdt@trade", "data": {'
    kline = wire_example("@kline")
    skip_malformed = BinanceDecoder().decode_envelope(malformed)
    skip_kline = BinanceDecoder().decode_envelope(kline)
    assert isinstance(skip_malformed, Skip)
    assert isinstance(skip_kline, Skip)

    dlq = await subscribe_inbox(connection, dead_letter)
    feed = await started_feed(
        NatsMarketFeed(
            connection,
            {subject: BinanceDecoder().decode_envelope},
            "rs-test",
            dead_letter_subject=dead_letter,
        )
    )
    try:
        for raw in (good[0], malformed, kline, good[1]):
            await connection.client.publish(subject, raw)
        first = await collect(feed_items(feed), 2)
        # The subscription is still alive after the bad ones.
        await connection.client.publish(subject, good[2])
        second = await collect(feed_items(feed), 1)
        await eventually(lambda: len(dlq.messages) == 2, what="two dead letters")
    finally:
        await feed.close()

    assert [item.message_id for item in first + second] == [
        orjson.loads(line)["message_id"] for line in good
    ]
    assert feed.dead_letters.skipped[skip_malformed.reason] >= 1
    assert feed.dead_letters.skipped[skip_kline.reason] >= 1
    assert sum(feed.dead_letters.skipped.values()) == 2
    assert feed.dead_letters.dead_lettered == 2
    by_payload = {msg.data: msg for msg in dlq.messages}
    assert set(by_payload) == {malformed, kline}
    for raw, skip in ((malformed, skip_malformed), (kline, skip_kline)):
        headers = by_payload[raw].headers
        assert headers is not None
        assert headers[SKIP_REASON_HEADER] == skip.reason
        assert headers[SKIP_DETAIL_HEADER]
        assert "\n" not in headers[SKIP_DETAIL_HEADER]
        assert headers[ORIGINAL_SUBJECT_HEADER] == subject


async def test_the_shared_buffer_gives_what_the_callbacks_give(
    connection: NatsConnection,
) -> None:
    """The fast path (nats-py's buffers shared and read in the consumer's task, through
    ``client_internals``) against the public-API path (a callback per subscription): the same
    items, in the same order per subject, with bad messages in between."""
    base = unique("test.rs.paths")
    topics = {"binance": f"{base}.binance", "quotes": f"{base}.quotes"}

    def decoders() -> dict[str, Any]:
        return subject_decoders(market_decoders(BinanceDecoder(), MarketInputDecoder()), topics)

    feeds = [
        await started_feed(NatsMarketFeed(connection, decoders(), None, max_batch=7, fast=fast))
        for fast in (True, False)
    ]
    quote = orjson.dumps(
        {"venue": "kraken", "symbol": "BTC/USDT", "bid": 1.0, "ask": 2.0, "timestamp": 1}
    )
    messages: list[tuple[str, bytes]] = []
    for index, line in enumerate(capture_lines(300)):
        messages.append((topics["binance"], line))
        if index % 25 == 0:
            messages.append((topics["quotes"], quote))
        if index % 40 == 0:
            messages.append((topics["binance"], b"{not json"))
    reference = decoders()
    expected = [
        result.event
        for subject, raw in messages
        if isinstance(result := reference[subject](raw), Decoded)
    ]
    results = []
    try:
        for subject, raw in messages:
            await connection.client.publish(subject, raw)
        await connection.flush()
        for feed in feeds:
            items = await collect(feed_items(feed), len(expected), within=20.0)
            results.append([(i.subject, i.event, i.message_id, i.trace_context) for i in items])
    finally:
        for feed in feeds:
            await feed.close()
    assert feeds[0].fast
    assert not feeds[1].fast
    # The shared buffer keeps the arrival order across subjects; callbacks run a task per
    # subscription, so only each subject's order is theirs to keep.
    assert [event for _, event, _, _ in results[0]] == expected
    for subject in topics.values():
        assert [r for r in results[0] if r[0] == subject] == [
            r for r in results[1] if r[0] == subject
        ]
    assert feeds[0].stats() == feeds[1].stats()
    assert feeds[0].stats()["skipped.malformed_json"] == 8


async def test_feed_merges_binance_and_market_input_subjects(
    connection: NatsConnection,
) -> None:
    base = unique("test.rs")
    topics = {
        "binance": f"{base}.binance",
        "dominance": f"{base}.dominance",
        "quotes": f"{base}.quotes",
        "onchain": f"{base}.onchain",
    }
    subjects = subject_decoders(market_decoders(BinanceDecoder(), MarketInputDecoder()), topics)
    assert set(subjects) == set(topics.values())
    stats = DecodeStats()
    feed = await started_feed(NatsMarketFeed(connection, subjects, "rs-test", stats=stats))
    ts = "2024-08-08T23:54:15.343Z"
    messages = [
        (topics["binance"], capture_lines(1)[0]),
        (topics["dominance"], orjson.dumps({"btc_dominance": 56.2, "timestamp": ts})),
        (
            topics["quotes"],
            orjson.dumps(
                {
                    "venue": "coinbase",
                    "symbol": "BTC-USDT",
                    "bid": 61830.1,
                    "ask": 61831.2,
                    "timestamp": ts,
                    "message_id": "q-1",
                }
            ),
        ),
        # Crossed quote: skipped, counted, the next one still arrives.
        (
            topics["quotes"],
            orjson.dumps(
                {"venue": "kraken", "symbol": "BTCUSDT", "bid": 2.0, "ask": 1.0, "timestamp": ts}
            ),
        ),
        (
            topics["onchain"],
            orjson.dumps(
                {
                    "type": "whale_transfer",
                    "asset": "btc",
                    "amount": 250,
                    "direction": "to_exchange",
                    "timestamp": ts,
                }
            ),
        ),
        (
            topics["onchain"],
            orjson.dumps(
                {
                    "type": "exchange_flow",
                    "asset": "ETH",
                    "inflow": 1200,
                    "outflow": 300,
                    "period_seconds": 3600,
                    "timestamp": ts,
                }
            ),
        ),
    ]
    try:
        for subject, raw in messages:
            await connection.client.publish(subject, raw)
        items = await collect(feed_items(feed), 5)
    finally:
        await feed.close()
    by_type = {type(item.event): item for item in items}
    assert set(by_type) == {
        Trade,
        DominanceObservation,
        VenueQuote,
        WhaleTransfer,
        ExchangeFlow,
    }
    quote = by_type[VenueQuote].event
    assert isinstance(quote, VenueQuote)
    assert (quote.venue, quote.symbol) == ("coinbase", "BTCUSDT")
    assert by_type[VenueQuote].message_id == "q-1"
    assert by_type[VenueQuote].subject == topics["quotes"]
    whale = by_type[WhaleTransfer].event
    assert isinstance(whale, WhaleTransfer)
    assert whale.direction is FlowDirection.TO_EXCHANGE
    assert feed.dead_letters.skipped == {SkipReason.CROSSED_BOOK.value: 1}
    assert sum(stats.by_type.values()) == 5
    assert stats.by_reason == {SkipReason.CROSSED_BOOK.value: 1}
    assert feed.received_by_subject[topics["quotes"]] == 2


async def test_decoder_exception_costs_one_message(connection: NatsConnection) -> None:
    subject = unique("test.rs.binance")
    good = capture_lines(2)

    decoder = BinanceDecoder()

    def fragile(raw: bytes) -> Decoded | Skip:
        if raw == b"boom":
            raise RuntimeError("decoder bug")
        return decoder.decode_envelope(raw)

    feed = await started_feed(NatsMarketFeed(connection, {subject: fragile}, None))
    try:
        for raw in (good[0], b"boom", good[1]):
            await connection.client.publish(subject, raw)
        items = await collect(feed_items(feed), 2)
    finally:
        await feed.close()
    assert len(items) == 2
    assert feed.decoder_errors == 1
    assert feed.dead_letters.skipped[DECODER_ERROR] == 1


async def test_two_feeds_in_one_queue_group_split_the_messages() -> None:
    subject = unique("test.rs.binance")
    group = unique("rs-group")
    lines = capture_lines(200)
    expected_ids = {result.message_id for result in decodable(lines)}
    # The capture's message ids are unique, so the split can be checked by id.
    assert len(expected_ids) >= 150

    conns = [await open_connection() for _ in range(3)]
    publisher, replica_a, replica_b = conns
    feeds = [
        await started_feed(NatsMarketFeed(conn, {subject: BinanceDecoder().decode_envelope}, group))
        for conn in (replica_a, replica_b)
    ]
    got: list[list[FeedItem]] = [[], []]

    async def consume(index: int) -> None:
        async for item in feed_items(feeds[index]):
            got[index].append(item)

    tasks = [asyncio.create_task(consume(i)) for i in range(2)]
    try:
        await publish_all(publisher, subject, lines)
        await eventually(
            lambda: len(got[0]) + len(got[1]) >= len(expected_ids), what="all messages"
        )
        await asyncio.sleep(0.2)  # nothing more (no duplicates) arrives
    finally:
        for feed in feeds:
            await feed.close()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5.0)
        for conn in conns:
            await conn.close()

    ids_a = {item.message_id for item in got[0]}
    ids_b = {item.message_id for item in got[1]}
    assert got[0], "replica A gets a share"
    assert got[1], "replica B gets a share"
    assert not ids_a & ids_b, "no message delivered to both replicas"
    assert ids_a | ids_b == expected_ids
    assert len(got[0]) + len(got[1]) == len(expected_ids)


@pytest.mark.parametrize("fast", [True, False], ids=["shared-buffer", "callbacks"])
async def test_a_late_consumer_loses_nothing(connection: NatsConnection, fast: bool) -> None:
    subject, lines, expected, feed = await binance_feed(connection, 200, max_batch=3, fast=fast)
    try:
        await publish_all(connection, subject, lines)
        await eventually(lambda: feed.queue_depth == len(lines), what="everything waiting")
        assert feed.delivered == 0
        batches = []
        async for batch in feed.batches():
            batches.append(batch)
            if sum(map(len, batches)) >= expected:
                break
    finally:
        await feed.close()
    assert max(map(len, batches)) == 3
    assert sum(map(len, batches)) == expected
    assert feed.slow_consumer_drops == 0


@pytest.mark.parametrize("fast", [True, False], ids=["shared-buffer", "callbacks"])
async def test_drain_delivers_what_was_received_then_ends(
    connection: NatsConnection, fast: bool
) -> None:
    subject, lines, expected, feed = await binance_feed(connection, 50, max_batch=5, fast=fast)
    got: list[FeedItem] = []

    async def consume() -> None:
        async for item in feed_items(feed):
            got.append(item)
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(consume())
    await publish_all(connection, subject, lines)
    await feed.drain(timeout=10.0)
    await asyncio.wait_for(consumer, 5.0)  # batches() ended by itself
    assert len(got) == expected
    await connection.client.publish(subject, lines[0])
    await asyncio.sleep(0.1)
    assert feed.received == len(lines), "no more messages after drain"


# ---------------------------------------------------------------------------------- signal sink


async def test_sink_publishes_per_strategy_subject_with_msg_id(
    connection: NatsConnection,
) -> None:
    prefix = unique("test.rs.signals")
    per_strategy = await subscribe_inbox(connection, f"{prefix}.*")
    bare = await subscribe_inbox(connection, prefix)
    sink = NatsSignalSink(connection, subject_prefix=prefix, source="rs-test")
    first = make_signal("orderbook_skew", 1)
    second = make_signal("trade_momentum", 2, Action.SELL)
    try:
        await sink.publish(first, trace_context={"traceparent": TRACEPARENT})
        await sink.publish(second)
        await sink.flush(timeout=5.0)
        await eventually(lambda: len(per_strategy.messages) == 2, what="two signals")
    finally:
        await sink.close()

    assert not bare.messages, "nothing is ever published on the bare prefix"
    msg_a, msg_b = per_strategy.messages
    assert msg_a.subject == f"{prefix}.orderbook_skew"
    assert msg_b.subject == f"{prefix}.trade_momentum"
    assert msg_a.headers is not None
    assert msg_b.headers is not None
    assert msg_a.headers[MSG_ID_HEADER] == first.signal_id
    assert msg_a.headers["traceparent"] == TRACEPARENT
    assert msg_b.headers[MSG_ID_HEADER] == second.signal_id
    assert "traceparent" not in msg_b.headers
    body = orjson.loads(msg_a.data)
    assert body["signal_id"] == first.signal_id
    assert body["strategy_id"] == body["strategy"] == "orderbook_skew"
    assert body["source"] == "rs-test"
    assert body["action"] == "buy"
    assert validate_trade_engine_contract(body) == []
    assert body["_otel_trace_context"] == {"traceparent": TRACEPARENT}
    assert "_otel_trace_context" not in orjson.loads(msg_b.data)
    assert orjson.loads(msg_b.data)["action"] == "sell"
    assert sink.published == 2
    assert sink.publish_errors == 0
    assert sink.buffered == 0
    assert sink.circuit_state == BreakerState.CLOSED


async def test_jetstream_stream_deduplicates_republished_signal(
    connection: NatsConnection, signal_stream: SignalStream
) -> None:
    js, prefix, stream = signal_stream.js, signal_stream.prefix, signal_stream.name
    await signal_stream.create(duplicate_window=60.0)
    core = NatsSignalSink(connection, subject_prefix=prefix)
    acked = NatsSignalSink(connection, subject_prefix=prefix, use_jetstream=True)
    signal = make_signal("orderbook_skew", 7)
    other = make_signal("orderbook_skew", 8)
    try:
        await core.publish(signal)
        await core.publish(signal)  # a replay: same signal id
        await core.flush(timeout=5.0)
        await acked.publish(signal)  # and a redelivery through JetStream publish
        await acked.publish(other)
        await eventually(lambda: acked.published == 2, what="acked publishes")
        info = await js.stream_info(stream)
        assert info.state.messages == 2
        assert acked.duplicates == 1
        first = await js.get_msg(stream, seq=1)
        assert first.headers is not None
        assert first.headers[MSG_ID_HEADER] == signal.signal_id
    finally:
        await core.close()
        await acked.close()


async def test_a_signal_the_stream_refuses_for_good_is_counted_and_holds_up_nothing(
    connection: NatsConnection, signal_stream: SignalStream
) -> None:
    """Retried for ever, it held every signal behind it until the buffer evicted them."""
    js, prefix, stream = signal_stream.js, signal_stream.prefix, signal_stream.name
    await signal_stream.create(max_msg_size=4096)
    sink = NatsSignalSink(connection, subject_prefix=prefix, use_jetstream=True)
    oversized = dataclasses.replace(make_signal("orderbook_skew", 0), metadata={"x": "y" * 8000})
    after = [make_signal("orderbook_skew", n) for n in range(1, 4)]
    try:
        for signal in [oversized, *after]:
            await sink.publish(signal)
        await sink.flush(timeout=10.0)
        assert (await js.stream_info(stream)).state.messages == 3
        assert sink.stats() | {"circuit_state": 0} == {
            "published": 3,
            "publish_errors": 0,
            "buffered": 0,
            "dropped_buffer_full": 0,
            "rejected": 1,
            "duplicates": 0,
            "circuit_state": 0,
        }
        assert sink.circuit_state == BreakerState.CLOSED
    finally:
        await sink.close()
    assert sink.undelivered_at_close == 0


async def test_a_successor_reads_every_published_signal_id_however_fast_they_arrive(
    connection: NatsConnection, signal_stream: SignalStream
) -> None:
    """The ids a taking-over worker loads (its replay gate holds back what they contain).
    Read with a consumer that may have pushed everything before its first status: counting
    only what was still pending on the server read nothing then, and the successor
    re-published signals the stream already held."""
    js, prefix, stream = signal_stream.js, signal_stream.prefix, signal_stream.name
    await signal_stream.create(duplicate_window=60.0)
    sink = NatsSignalSink(connection, subject_prefix=prefix, use_jetstream=True)
    signals = [make_signal("orderbook_skew", n) for n in range(20)]
    try:
        for signal in signals:
            await sink.publish(signal)
        await eventually(lambda: sink.published == len(signals), what="acked publishes")
        expected = {signal.signal_id for signal in signals}
        for _ in range(20):
            loaded = await load_published_signal_ids(js, stream, f"{prefix}.>", 3600.0)
            assert loaded == expected
    finally:
        await sink.close()


async def test_breaker_opens_on_jetstream_failures_and_recovers(
    connection: NatsConnection, signal_stream: SignalStream
) -> None:
    js, prefix, stream = signal_stream.js, signal_stream.prefix, signal_stream.name
    # No stream captures the subject yet: every acknowledged publish fails (no responders).
    sink = NatsSignalSink(
        connection,
        subject_prefix=prefix,
        use_jetstream=True,
        jetstream_timeout=0.5,
        failure_threshold=2,
        reset_timeout=0.3,
        retry_initial=0.01,
        retry_max=0.05,
    )
    signals = [make_signal("ticker_velocity", seq) for seq in range(3)]
    try:
        for signal in signals:
            await sink.publish(signal)
        await eventually(
            lambda: sink.circuit_state == BreakerState.OPEN, what="circuit breaker open"
        )
        assert sink.buffered == 3
        assert sink.publish_errors >= 2
        await signal_stream.create()
        # After reset_timeout a trial call goes through, closes the circuit, drains in order.
        await sink.flush(timeout=10.0)
        assert sink.buffered == 0
        assert sink.circuit_state == BreakerState.CLOSED
        info = await js.stream_info(stream)
        assert info.state.messages == 3
        stored = [await js.get_msg(stream, seq=seq) for seq in (1, 2, 3)]
    finally:
        await sink.close()
    assert [msg.headers[MSG_ID_HEADER] for msg in stored if msg.headers] == [
        signal.signal_id for signal in signals
    ]
    assert sink.published == 3


async def test_sink_buffers_while_nats_is_down_and_delivers_in_order(
    throwaway_nats: NatsServerProcess,
) -> None:
    throwaway_nats.start()
    conn = await open_connection(throwaway_nats.url)
    prefix = unique("test.rs.signals")
    # Same connection for the subscriber: nats-py replays its SUB before anything published
    # after the reconnect, so no signal can be missed for lack of interest.
    inbox = await subscribe_inbox(conn, f"{prefix}.>")
    events: list[ConnectionEvent] = []

    async def on_event(event: ConnectionEvent) -> None:
        events.append(event)

    conn.add_listener(on_event)
    sink = NatsSignalSink(
        conn,
        subject_prefix=prefix,
        buffer_size=100,
        failure_threshold=3,
        reset_timeout=60.0,  # only the reconnect lets a trial call through in this test
        retry_initial=0.01,
        retry_max=0.05,
    )
    signals = [make_signal("orderbook_skew", seq) for seq in range(25)]
    try:
        for signal in signals[:5]:
            await sink.publish(signal)
        await sink.flush(timeout=5.0)
        await eventually(lambda: len(inbox.messages) == 5, what="signals before the outage")

        throwaway_nats.kill()
        await eventually(lambda: not conn.is_connected, what="disconnect detected")
        assert state_of(conn) in (ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED)
        for signal in signals[5:]:
            await sink.publish(signal)
        assert sink.buffered == 20
        await eventually(
            lambda: sink.circuit_state == BreakerState.OPEN, what="circuit breaker open"
        )
        assert sink.publish_errors >= 3
        await asyncio.sleep(0.3)
        assert sink.buffered == 20, "nothing leaves the buffer while NATS is down"

        throwaway_nats.start()
        assert await conn.wait_connected(15.0), "no reconnect"
        await sink.flush(timeout=10.0)
        assert sink.buffered == 0
        await eventually(lambda: len(inbox.messages) == 25, what="every signal delivered")
    finally:
        await sink.close()
        await conn.close()

    ids = [msg.headers[MSG_ID_HEADER] for msg in inbox.messages if msg.headers]
    assert ids == [signal.signal_id for signal in signals], "in order, none lost, no duplicate"
    assert sink.dropped_buffer_full == 0
    assert sink.published == 25
    assert sink.circuit_state == BreakerState.CLOSED
    assert conn.disconnects == 1
    assert conn.reconnects == 1
    assert ConnectionEvent.DISCONNECTED in events
    assert ConnectionEvent.RECONNECTED in events


async def test_full_buffer_evicts_oldest_and_counts_it(throwaway_nats: NatsServerProcess) -> None:
    throwaway_nats.start()
    conn = await open_connection(throwaway_nats.url)
    prefix = unique("test.rs.signals")
    inbox = await subscribe_inbox(conn, f"{prefix}.>")
    sink = NatsSignalSink(
        conn, subject_prefix=prefix, buffer_size=5, retry_initial=0.01, retry_max=0.05
    )
    signals = [make_signal("trade_momentum", seq, Action.SELL) for seq in range(8)]
    try:
        throwaway_nats.kill()
        await eventually(lambda: not conn.is_connected, what="disconnect detected")
        for signal in signals:
            await sink.publish(signal)
        assert sink.buffered == 5
        assert sink.dropped_buffer_full == 3
        throwaway_nats.start()
        assert await conn.wait_connected(15.0), "no reconnect"
        await sink.flush(timeout=10.0)
        await eventually(lambda: len(inbox.messages) == 5, what="buffered signals delivered")
    finally:
        await sink.close()
        await conn.close()
    ids = [msg.headers[MSG_ID_HEADER] for msg in inbox.messages if msg.headers]
    assert ids == [signal.signal_id for signal in signals[3:]], "the newest five, in order"


async def test_service_starts_while_nats_is_down(throwaway_nats: NatsServerProcess) -> None:
    conn = NatsConnection(throwaway_nats.url, reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    prefix = unique("test.rs.signals")
    subject = unique("test.rs.binance")
    feed = NatsMarketFeed(conn, {subject: BinanceDecoder().decode_envelope}, None)
    sink = NatsSignalSink(conn, subject_prefix=prefix, retry_initial=0.01, retry_max=0.05)
    signal = make_signal("orderbook_skew", 1)
    try:
        # Nothing blocks on a missing NATS: the server is started only further down, so a
        # call that waited for it would never return (the connection retries without end).
        # The guard only has to catch that hang: ten of the connection's connect timeouts,
        # where these calls take milliseconds. What each left behind shows it did not wait.
        async with asyncio.timeout(10 * conn.connect_timeout):
            await conn.start()
            assert state_of(conn) is ConnectionState.CONNECTING
            await feed.start()
            assert not feed.is_subscribed
            await sink.publish(signal)
            assert sink.buffered == 1
        await asyncio.sleep(0.3)
        assert state_of(conn) is ConnectionState.CONNECTING
        assert not conn.is_connected
        assert not feed.is_subscribed
        assert sink.buffered == 1

        throwaway_nats.start()
        assert await conn.wait_connected(10.0)
        assert await feed.wait_subscribed(5.0)
        # The buffered signal goes out by itself; once the server has it (flush), the watcher
        # subscribes, so that it sees exactly the signal republished below (subscribing first
        # raced the buffer's delivery: the watcher then got both).
        await eventually(lambda: sink.buffered == 0, what="buffer delivered")
        await conn.flush()
        watcher = await open_connection(throwaway_nats.url)
        try:
            inbox = await subscribe_inbox(watcher, f"{prefix}.>")
            # Republish through the sink to check the path, and check the feed end to end.
            await sink.publish(signal)
            line = capture_lines(1)[0]
            await watcher.client.publish(subject, line)
            items = await collect(feed_items(feed), 1)
            await eventually(lambda: len(inbox.messages) == 1, what="signal after boot")
        finally:
            await watcher.close()
    finally:
        await feed.close()
        await sink.close()
        await conn.close()
    assert items[0].message_id == orjson.loads(line)["message_id"]
    assert sink.published == 2


def fail_next_round_trip(conn: NatsConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection's next flush (a subscribe's round trip) times out, as when the server
    restarts during it; the ones after work."""
    real_flush = conn.client.flush

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(conn.client, "flush", real_flush)
        raise FlushTimeoutError

    monkeypatch.setattr(conn.client, "flush", failing_once)


async def received_once(conn: NatsConnection, feed: NatsMarketFeed, subject: str) -> None:
    """Messages published on ``subject`` come out of ``feed``, each received once (one
    subscription: a second copy would count as received, then skip as a duplicate)."""
    lines = capture_lines(2)
    for line in lines:
        await conn.client.publish(subject, line)
    items = await collect(feed_items(feed), 2)
    assert [item.message_id for item in items] == [orjson.loads(x)["message_id"] for x in lines]
    await conn.flush()
    await asyncio.sleep(0.1)
    assert feed.received == 2


async def test_a_failed_subscribe_is_retried_while_the_connection_stays_up(
    connection: NatsConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = unique("test.rs.binance")
    feed = NatsMarketFeed(connection, {subject: BinanceDecoder().decode_envelope}, None)
    feed.retry_seconds = 0.2
    fail_next_round_trip(connection, monkeypatch)
    try:
        await feed.start()
        assert not feed.is_subscribed
        assert feed.subscribe_failures == 1
        assert await feed.wait_subscribed(5.0), "not retried"
        await received_once(connection, feed, subject)
    finally:
        await feed.close()


async def test_a_failed_subscribe_is_retried_after_a_reconnect(
    throwaway_nats: NatsServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    throwaway_nats.start()
    conn = await open_connection(throwaway_nats.url)
    subject = unique("test.rs.binance")
    feed = NatsMarketFeed(conn, {subject: BinanceDecoder().decode_envelope}, None)
    feed.retry_seconds = 3600.0  # only the reconnection can retry
    fail_next_round_trip(conn, monkeypatch)
    try:
        await feed.start()
        assert feed.subscribe_failures == 1
        throwaway_nats.kill()  # the restart the failed round trip stood for
        await eventually(lambda: not conn.is_connected, what="disconnect detected")
        throwaway_nats.start()
        assert await conn.wait_connected(15.0)
        assert await feed.wait_subscribed(5.0), "not retried after the reconnect"
        await received_once(conn, feed, subject)
    finally:
        await feed.close()
        await conn.close()


# ----------------------------------------------------------------------------- config broadcast


async def test_config_change_reaches_every_listener_but_not_its_origin() -> None:
    subject = unique("test.rs.config.changed")
    conns = [await open_connection() for _ in range(3)]
    writer_conn, conn_a, conn_b = conns
    seen: dict[str, list[tuple[str, str | None, int]]] = {"a": [], "b": [], "writer": []}

    def recorder(name: str) -> Callable[[str, str | None, int], Awaitable[bool]]:
        async def on_change(strategy_id: str, symbol: str | None, version: int) -> bool:
            seen[name].append((strategy_id, symbol, version))
            return True

        return on_change

    listeners = [
        NatsConfigChangeListener(conn_a, recorder("a"), "replica-a", subject),
        NatsConfigChangeListener(conn_b, recorder("b"), "replica-b", subject),
        # The writing replica listens too and must ignore its own broadcast.
        NatsConfigChangeListener(writer_conn, recorder("writer"), "replica-w", subject),
    ]
    notifier = NatsConfigChangeNotifier(writer_conn, "replica-w", subject)
    try:
        for listener in listeners:
            await listener.start()
            assert await listener.wait_subscribed(5.0)
        await notifier.notify("orderbook_skew", "BTCUSDT", 4)
        await notifier.notify("trade_momentum", None, 9)
        await eventually(lambda: len(seen["a"]) == 2 and len(seen["b"]) == 2, what="both replicas")
        await eventually(lambda: listeners[2].ignored_own == 2, what="own echo ignored")
    finally:
        for listener in listeners:
            await listener.close()
        for conn in conns:
            await conn.close()
    expected = [("orderbook_skew", "BTCUSDT", 4), ("trade_momentum", None, 9)]
    assert seen["a"] == expected
    assert seen["b"] == expected
    assert seen["writer"] == []
    assert notifier.published == 2
    assert listeners[0].applied == 2


async def test_config_listener_survives_bad_payloads_and_handler_errors(
    connection: NatsConnection,
) -> None:
    subject = unique("test.rs.config.changed")
    calls: list[tuple[str, str | None, int]] = []

    async def on_change(strategy_id: str, symbol: str | None, version: int) -> bool:
        if strategy_id == "explode":
            raise RuntimeError("cache refresh failed")
        calls.append((strategy_id, symbol, version))
        return True

    listener = NatsConfigChangeListener(connection, on_change, "replica-a", subject)
    other = NatsConfigChangeNotifier(connection, "replica-b", subject)
    try:
        await listener.start()
        assert await listener.wait_subscribed(5.0)
        for raw in (
            b"not json",
            b"[1, 2]",
            b'{"strategy_id": "orderbook_skew", "symbol": null, "version": true, "origin": "x"}',
            b'{"strategy_id": "", "symbol": null, "version": 1, "origin": "x"}',
            b'{"strategy_id": "orderbook_skew", "symbol": null, "version": 1}',
        ):
            await connection.client.publish(subject, raw)
        await other.notify("explode", None, 1)
        await other.notify("orderbook_skew", "ETHUSDT", 2)
        await eventually(lambda: len(calls) == 1, what="the valid change")
    finally:
        await listener.close()
    assert calls == [("orderbook_skew", "ETHUSDT", 2)]
    assert listener.invalid == 5
    assert listener.handler_errors == 1
    assert listener.applied == 1
    assert set(listener.invalid_by_reason) == {
        "malformed_json",
        "not_an_object",
        "bad_version",
        "bad_strategy_id",
        "bad_origin",
    }


async def test_notifier_does_not_raise_when_nats_is_down(throwaway_nats: NatsServerProcess) -> None:
    conn = NatsConnection(throwaway_nats.url, reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    await conn.start()
    notifier = NatsConfigChangeNotifier(conn, "replica-a")
    try:
        await notifier.notify("orderbook_skew", None, 1)
    finally:
        await conn.close()
    assert notifier.errors == 1
    assert notifier.published == 0
    assert state_of(conn) is ConnectionState.CLOSED


async def test_connection_close_is_idempotent_and_stops_retrying(
    throwaway_nats: NatsServerProcess,
) -> None:
    conn = NatsConnection(throwaway_nats.url, reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    await conn.start()
    await asyncio.sleep(0.2)
    assert state_of(conn) is ConnectionState.CONNECTING
    await asyncio.wait_for(conn.close(), 5.0)
    await asyncio.wait_for(conn.close(), 5.0)
    assert state_of(conn) is ConnectionState.CLOSED
    throwaway_nats.start()
    await asyncio.sleep(0.3)
    assert not conn.is_connected
    with contextlib.suppress(Exception):
        await conn.drain()


async def test_graceful_shutdown_sequence() -> None:
    """SIGTERM path: drain the feed, flush the sink, drain and close the connection."""
    conn = await open_connection()
    watcher = await open_connection()
    subject = unique("test.rs.binance")
    prefix = unique("test.rs.signals")
    closed: list[ConnectionEvent] = []

    async def on_event(event: ConnectionEvent) -> None:
        closed.append(event)

    conn.add_listener(on_event)
    inbox = await subscribe_inbox(watcher, f"{prefix}.>")
    feed = await started_feed(NatsMarketFeed(conn, {subject: BinanceDecoder().decode_envelope}))
    sink = NatsSignalSink(conn, subject_prefix=prefix)
    lines = capture_lines(20)
    got: list[FeedItem] = []

    async def run_service() -> None:
        # Stands in for the processing loop: one signal per decoded trade.
        async for item in feed_items(feed):
            got.append(item)
            if isinstance(item.event, Trade):
                await sink.publish(make_signal("trade_momentum", item.event.trade_id))

    service = asyncio.create_task(run_service())
    try:
        await publish_all(watcher, subject, lines)
        await eventually(
            lambda: feed.received == len(lines) or service.done(),
            what="all received",
            state=lambda: (
                feed.stats(),
                sink.stats(),
                state_of(conn),
                {"disconnects": conn.disconnects, "reconnects": conn.reconnects},
            ),
        )
        if service.done():  # the stand-in loop ended early: its own error says why
            service.result()
            raise AssertionError(f"the feed ended early: {feed.stats()}")
        await feed.drain(timeout=5.0)
        await asyncio.wait_for(service, 5.0)
        await sink.flush(timeout=5.0)
        await conn.drain()
        trades = sum(isinstance(item.event, Trade) for item in got)
        await eventually(lambda: len(inbox.messages) == trades, what="signals")
    finally:
        await sink.close()
        await conn.close()
        await watcher.close()
    assert len(got) == len(decodable(lines))
    assert trades > 0
    assert state_of(conn) is ConnectionState.CLOSED
    assert closed == [ConnectionEvent.CLOSED]
    assert sink.buffered == 0
    assert sink.undelivered_at_close == 0
