"""Replay feed (plain / gzip / truncated / looping / paced) and the other in-memory adapters."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from adapters.memory import FixedClock, InMemorySignalSink, ReplayItem, ReplayMarketFeed
from adapters.system_clock import SystemClock
from adapters.wire.binance import BinanceDecoder
from adapters.wire.stats import DecodeStats, SkipReason
from domain.market import DepthSnapshot, MarketEvent, Trade
from domain.signal import Signal
from tests.contract.market_feed_contract import Fed, MarketFeedContract
from tests.data import CAPTURE
from tests.signals import a_signal

pytestmark = pytest.mark.unit


def trade_line(t: int, trade_id: int | None = None, price: str = "100.0") -> bytes:
    """A trade at event time ``t``; its trade id is ``t`` unless given (repeats are dropped)."""
    tid = t if trade_id is None else trade_id
    data = {"e": "trade", "E": t, "s": "BTCUSDT", "t": tid, "p": price, "q": "1", "m": False}
    return orjson.dumps({"stream": "btcusdt@trade", "data": data})


def write(path: Path, lines: list[bytes], *, compress: bool = False) -> Path:
    body = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def replay(path: Path, **options: object) -> tuple[list[MarketEvent], DecodeStats]:
    stats = DecodeStats()
    feed = ReplayMarketFeed(path, BinanceDecoder(), stats, **options)  # type: ignore[arg-type]
    return list(feed.iter_events()), stats


@pytest.mark.parametrize(
    ("plain_name", "packed_name"),
    [("a.jsonl", "a.jsonl.gz"), ("x.jsonl.gz", "y.jsonl")],
    ids=["named-as-they-are", "gzip-detected-by-magic-bytes-not-by-name"],
)
def test_plain_and_gzip_give_the_same_events(
    tmp_path: Path, capture_lines: list[bytes], plain_name: str, packed_name: str
) -> None:
    lines = capture_lines[:500]
    plain, plain_stats = replay(write(tmp_path / plain_name, lines))
    packed, packed_stats = replay(write(tmp_path / packed_name, lines, compress=True))
    assert plain == packed
    assert len(plain) == 500
    assert plain_stats.by_type == packed_stats.by_type
    assert plain_stats.by_reason == {}


def test_the_whole_capture(capture_lines: list[bytes]) -> None:
    stats = DecodeStats()
    feed = ReplayMarketFeed(CAPTURE, BinanceDecoder(), stats)
    count = sum(1 for _ in feed.iter_events())
    assert count == 13551
    assert stats.by_type == {"trade": 9757, "depth": 3448, "ticker": 346}
    assert stats.by_reason == {}
    assert feed.lines_read == 13551
    assert not feed.truncated


def test_bad_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    kline = orjson.dumps({"stream": "btcusdt@kline_1m", "data": {}})
    lines = [
        trade_line(1000),
        b"",  # blank lines are not messages
        b"{not json",
        trade_line(2000),
        kline,
        b"   ",
        trade_line(1500),  # out of order
        trade_line(3000, price="-1"),
        trade_line(4000),
    ]
    events, stats = replay(write(tmp_path / "bad.jsonl", lines))
    assert [e.event_time_ms for e in events] == [1000, 2000, 4000]
    assert stats.by_reason == {
        "malformed_json": 2,
        "unsupported_stream": 1,
        "out_of_order": 1,
        "invalid_price": 1,
    }
    assert [(s.line, s.reason) for s in stats.samples] == [
        (3, "malformed_json"),
        (5, "unsupported_stream"),
        (6, "malformed_json"),
        (7, "out_of_order"),
        (8, "invalid_price"),
    ]


def test_samples_are_bounded(tmp_path: Path) -> None:
    stats = DecodeStats(max_samples=3)
    path = write(tmp_path / "junk.jsonl", [b"junk"] * 50)
    assert list(ReplayMarketFeed(path, BinanceDecoder(), stats).iter_events()) == []
    assert stats.by_reason == {"malformed_json": 50}
    assert [s.line for s in stats.samples] == [1, 2, 3]


def test_missing_trailing_newline_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(trade_line(1) + b"\r\n" + trade_line(2))
    events, stats = replay(path)
    assert [e.event_time_ms for e in events] == [1, 2]
    assert stats.by_reason == {}


def test_truncated_gzip_is_a_counted_skip(tmp_path: Path, capture_lines: list[bytes]) -> None:
    lines = capture_lines[:2000]
    body = gzip.compress(b"".join(line + b"\n" for line in lines))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(body[: len(body) * 2 // 3])
    stats = DecodeStats()
    feed = ReplayMarketFeed(path, BinanceDecoder(), stats)
    events = list(feed.iter_events())
    assert feed.truncated
    assert stats.by_reason.get(SkipReason.TRUNCATED_FILE) == 1
    # Everything complete before the cut comes out (about two thirds of the lines), and it is
    # exactly the start of the file.
    assert 1000 < len(events) < 2000
    full, _ = replay(write(tmp_path / "full.jsonl", lines))
    assert events == full[: len(events)]
    assert set(stats.by_reason) <= {SkipReason.TRUNCATED_FILE, SkipReason.MALFORMED_JSON}
    truncated = [s for s in stats.samples if s.reason == SkipReason.TRUNCATED_FILE]
    assert truncated[0].line is not None


def test_multi_member_gzip(tmp_path: Path) -> None:
    first = gzip.compress(b"".join(trade_line(t) + b"\n" for t in range(1, 101)))
    second = gzip.compress(b"".join(trade_line(t) + b"\n" for t in range(101, 201)))
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(first + second)
    events, stats = replay(path)
    assert [e.event_time_ms for e in events] == list(range(1, 201))
    path.write_bytes(first + second[: len(second) // 2])
    events, stats = replay(path)
    assert stats.by_reason == {SkipReason.TRUNCATED_FILE: 1}
    times = [e.event_time_ms for e in events]
    assert times == list(range(1, len(times) + 1))
    assert len(times) >= 100


def test_corrupt_gzip_is_a_counted_skip(tmp_path: Path, capture_lines: list[bytes]) -> None:
    body = bytearray(gzip.compress(b"".join(line + b"\n" for line in capture_lines[:500])))
    for i in range(len(body) // 2, len(body) // 2 + 64):
        body[i] ^= 0x5A
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(body))
    stats = DecodeStats()
    feed = ReplayMarketFeed(path, BinanceDecoder(), stats)
    events = list(feed.iter_events())
    assert feed.truncated
    assert stats.by_reason.get(SkipReason.TRUNCATED_FILE) == 1
    assert len(events) < 500


def test_empty_files(tmp_path: Path) -> None:
    assert replay(write(tmp_path / "empty.jsonl", []))[0] == []
    assert replay(write(tmp_path / "empty.jsonl.gz", [], compress=True))[0] == []
    (tmp_path / "zero.gz").write_bytes(b"")
    assert replay(tmp_path / "zero.gz")[0] == []


def test_loop_shifts_event_time_by_duration_plus_gap(tmp_path: Path) -> None:
    path = write(tmp_path / "loop.jsonl", [trade_line(1000), trade_line(1400), trade_line(3000)])
    stats = DecodeStats()
    feed = ReplayMarketFeed(path, BinanceDecoder(), stats, loop=True, loop_gap_ms=500)
    times = [e.event_time_ms for e in itertools.islice(feed.iter_events(), 9)]
    period = (3000 - 1000) + 500
    assert times == [
        1000,
        1400,
        3000,
        1000 + period,
        1400 + period,
        3000 + period,
        1000 + 2 * period,
        1400 + 2 * period,
        3000 + 2 * period,
    ]
    assert stats.by_reason == {}  # the decoder's ordering state is reset between passes
    assert feed.passes == 3


def test_loop_over_a_file_without_events_stops(tmp_path: Path) -> None:
    path = write(tmp_path / "junk.jsonl", [b"junk"])
    stats = DecodeStats()
    feed = ReplayMarketFeed(path, BinanceDecoder(), stats, loop=True)
    assert list(feed.iter_events()) == []
    assert feed.passes == 1


def test_stop_ends_the_iteration(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [trade_line(t) for t in range(1, 100)])
    feed = ReplayMarketFeed(path, BinanceDecoder(), loop=True)
    seen = []
    for event in feed.iter_events():
        seen.append(event)
        if len(seen) == 5:
            feed.stop()
    assert len(seen) == 5


async def test_async_events_match_the_sync_path(capture_lines: list[bytes], tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl.gz", capture_lines[:1000], compress=True)
    expected = list(ReplayMarketFeed(path, BinanceDecoder()).iter_events())
    feed = ReplayMarketFeed(path, BinanceDecoder(), yield_every=10)
    batches = [batch async for batch in feed.batches()]
    assert {len(batch) for batch in batches[:-1]} == {10}
    items = [item for batch in batches for item in batch]
    assert [item.event for item in items] == expected
    assert isinstance(items[0], ReplayItem)
    assert items[0].trace_context is None


async def test_async_feed_does_not_starve_the_loop(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [trade_line(t) for t in range(1, 200)])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        count = 0
        async for batch in ReplayMarketFeed(path, BinanceDecoder(), yield_every=16).batches():
            count += len(batch)
    finally:
        task.cancel()
    assert count == 199
    assert ticks >= 10


async def test_pacing_follows_event_time(tmp_path: Path) -> None:
    """100 s of event time at 1,000x: released no earlier than 0.05 s and 0.1 s of wall time,
    in event-time proportions. Were ``speed`` ignored, the replay would take the whole 100 s:
    the guard, a tenth of that, is far from both it and the expected 0.1 s."""
    event_span_s = 100.0
    times = [1_000, 51_000, 101_000]
    path = write(tmp_path / "p.jsonl", [trade_line(t) for t in times])
    feed = ReplayMarketFeed(path, BinanceDecoder(), pace=True, speed=1_000.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals: list[tuple[int, float]] = []
    async with asyncio.timeout(event_span_s / 10):
        async for batch in feed.batches():
            arrivals.extend((item.event.event_time_ms, loop.time() - start) for item in batch)
    assert [t for t, _ in arrivals] == times
    assert arrivals[1][1] >= 0.045
    assert arrivals[2][1] >= 0.095


async def test_drain_stops_the_async_feed(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [trade_line(t) for t in range(1, 50)])
    feed = ReplayMarketFeed(path, BinanceDecoder(), loop=True, yield_every=3)
    count = 0
    async for batch in feed.batches():
        count += len(batch)
        if count == 3:
            await feed.drain(timeout=1.0)
    assert count == 3


def test_invalid_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplayMarketFeed(tmp_path / "x", BinanceDecoder(), speed=0)
    with pytest.raises(ValueError, match="loop_gap_ms"):
        ReplayMarketFeed(tmp_path / "x", BinanceDecoder(), loop_gap_ms=-1)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    feed = ReplayMarketFeed(tmp_path / "absent.jsonl", BinanceDecoder())
    with pytest.raises(FileNotFoundError):
        next(feed.iter_events())


def test_decoder_protocol_accepts_any_codec(tmp_path: Path) -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def decode(self, raw: bytes) -> MarketEvent:
            self.calls += 1
            return Trade("BTCUSDT", self.calls, self.calls, 1.0, 1.0, False)

    path = write(tmp_path / "t.jsonl", [b"a", b"b"])
    events = list(ReplayMarketFeed(path, Counting()).iter_events())
    assert [e.event_time_ms for e in events] == [1, 2]


def test_replayed_depth_snapshots_are_usable(tmp_path: Path, capture_lines: list[bytes]) -> None:
    depth = [line for line in capture_lines if b"@depth" in line][:10]
    events, _ = replay(write(tmp_path / "d.jsonl", depth))
    assert all(isinstance(e, DepthSnapshot) and e.mid is not None for e in events)


# ------------------------------------------------------------------------------ sink and clocks


def make_signal(t: int) -> Signal:
    return a_signal(
        signal_id=f"id-{t}",
        strategy_id="orderbook_skew" if t % 2 else "trade_momentum",
        confidence=0.7,
        event_time_ms=t,
    )


async def test_in_memory_signal_sink() -> None:
    sink = InMemorySignalSink()
    await sink.publish(make_signal(1))
    await sink.publish(make_signal(2), trace_context={"traceparent": "x"})
    await sink.flush()
    assert [s.event_time_ms for s in sink.signals] == [1, 2]
    assert sink.trace_contexts == [None, {"traceparent": "x"}]
    assert len(sink) == 2
    assert [s.event_time_ms for s in sink.by_strategy("orderbook_skew")] == [1]
    assert sink.flushes == 1
    sink.clear()
    assert sink.signals == []


def test_fixed_clock() -> None:
    start = datetime(2024, 8, 8, 12, 0, tzinfo=UTC)
    clock = FixedClock(start)
    assert clock.now() == start
    assert clock.advance(1.5) == start + timedelta(seconds=1.5)
    assert clock.advance(timedelta(minutes=1)) == start + timedelta(seconds=61.5)
    assert clock.now() == start + timedelta(seconds=61.5)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    clock.set(datetime(2030, 1, 1))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert FixedClock().now().tzinfo is not None


def test_system_clock_is_utc_now() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


class TestReplayMarketFeed(MarketFeedContract):
    """The replay feed passes the market feed contract (unpaced and paced)."""

    pace = False
    envelope_context = False

    @contextlib.asynccontextmanager
    async def feed_of(self, messages: list[bytes]) -> AsyncIterator[Fed]:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "capture.jsonl"
            path.write_bytes(b"\n".join(messages) + b"\n")
            stats = DecodeStats()
            feed = ReplayMarketFeed(path, BinanceDecoder(), stats, pace=self.pace, speed=1e6)
            yield Fed(feed, stats)


class TestPacedReplayMarketFeed(TestReplayMarketFeed):
    pace = True
