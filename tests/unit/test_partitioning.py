"""Symbol partitioning: the partition function, ownership, routing keys, the router's routing
decisions, the replay gate, the merged metrics reads, the settings and the deploy overlay."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.responses import JSONResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from adapters.http.partition_api import OwnerProxyMiddleware
from adapters.nats.partition_feed import (
    PartitionFeedItem,
    ReplayGate,
    ReplayStats,
    consumer_filters,
)
from adapters.nats.partition_router import NatsPartitionRouter
from adapters.nats.partition_subjects import PartitionLayout
from adapters.wire.binance import BinanceDecoder
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.market_inputs import MarketInputDecoder
from adapters.wire.routing_keys import (
    MISSING_SYMBOL,
    BinanceRouteKeys,
    RouteKey,
    RouteKind,
    Unroutable,
    classify_stream,
    dominance_route,
    onchain_route,
    quote_route,
)
from adapters.wire.stats import Decoded, SkipReason
from application.metrics_query import MarketMetricsQuery
from application.partitioning import (
    DOMINANCE_SYMBOL,
    ONCHAIN_QUOTE_ASSET,
    onchain_symbol,
    owned_partitions,
    owner_of,
    partition_of,
)
from application.ports import Admission
from bench.fanout import SYMBOLS_50, capture_lines, fan_out_line
from domain.market import DepthSnapshot, event_symbol
from domain.metrics import MarketMetricsBook
from domain.signal import Signal
from domain.strategies import btc_dominance, onchain_metrics
from domain.symbol import is_symbol
from entrypoints.partition_settings import PartitionSettings, ordinal_from_hostname
from tests.signals import a_signal

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SYMBOL_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)


# --- the partition function -------------------------------------------------------------------


def _crc32_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table.append(c)
    return table


_TABLE = _crc32_table()


def crc32_reference(data: bytes) -> int:
    """Table-driven CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), written out."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_reference_crc32_is_the_standard_one() -> None:
    assert crc32_reference(b"123456789") == 0xCBF43926  # the CRC-32 check value
    assert crc32_reference(b"") == 0


@settings(max_examples=500)
@given(symbol=SYMBOL_TEXT, partitions=st.integers(1, 4096))
def test_partition_is_in_range_stable_and_the_reference_crc32(symbol: str, partitions: int) -> None:
    p = partition_of(symbol, partitions)
    assert 0 <= p < partitions
    assert p == partition_of(symbol, partitions)
    assert p == crc32_reference(symbol.encode("utf-8")) % partitions


@given(text=st.text(max_size=40), partitions=st.integers(1, 64))
def test_any_text_partitions_like_the_reference(text: str, partitions: int) -> None:
    assert partition_of(text, partitions) == crc32_reference(text.encode("utf-8")) % partitions


def test_partition_does_not_depend_on_the_process_hash_seed() -> None:
    expected = [partition_of(s, 16) for s in SYMBOLS_50]
    code = (
        "from application.partitioning import partition_of;"
        "from bench.fanout import SYMBOLS_50;"
        "print([partition_of(s, 16) for s in SYMBOLS_50])"
    )
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert orjson.loads(out.stdout) == expected


def test_known_partitions_are_pinned() -> None:
    # Changing these moves every symbol of a running deployment: a breaking change.
    assert {s: partition_of(s, 16) for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")} == {
        "BTCUSDT": 0xAC8EA3C3 % 16,
        "ETHUSDT": 0x1EF9AC5C % 16,
        "BNBUSDT": 0x33A3AB8E % 16,
        "SOLUSDT": 0x86665130 % 16,
    }


@given(partitions=st.integers(1, 256), data=st.data())
def test_workers_own_disjoint_partitions_covering_all(partitions: int, data: Any) -> None:
    workers = data.draw(st.integers(1, partitions))
    owned = [owned_partitions(i, workers, partitions) for i in range(workers)]
    flat = [p for parts in owned for p in parts]
    assert sorted(flat) == list(range(partitions))
    for i, parts in enumerate(owned):
        assert all(p % workers == i for p in parts)
        assert parts  # nobody idles while workers <= partitions


@given(symbol=SYMBOL_TEXT, partitions=st.integers(1, 128), data=st.data())
def test_owner_of_symbol_owns_its_partition(symbol: str, partitions: int, data: Any) -> None:
    workers = data.draw(st.integers(1, partitions))
    owner = owner_of(symbol, partitions, workers)
    assert partition_of(symbol, partitions) in owned_partitions(owner, workers, partitions)


def test_ownership_rejects_impossible_layouts() -> None:
    with pytest.raises(ValueError, match="worker index"):
        owned_partitions(3, 3, 16)
    with pytest.raises(ValueError, match="would own nothing"):
        owned_partitions(0, 17, 16)
    with pytest.raises(ValueError, match="partition count"):
        owned_partitions(0, 1, 0)


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [
        ("realtime-strategies-0", 0),
        ("realtime-strategies-2", 2),
        ("petrosa-realtime-strategies-worker-11", 11),
        ("realtime-strategies", None),
        ("host-abc", None),
        ("", None),
    ],
)
def test_ordinal_from_hostname(hostname: str, ordinal: int | None) -> None:
    assert ordinal_from_hostname(hostname) == ordinal


def test_cross_symbol_inputs_live_with_the_strategies_symbols() -> None:
    assert DOMINANCE_SYMBOL == btc_dominance.SYMBOL
    assert ONCHAIN_QUOTE_ASSET == onchain_metrics.QUOTE_ASSET
    assert onchain_symbol(" eth ") == "ETHUSDT"


# --- subjects ---------------------------------------------------------------------------------


@given(symbol=SYMBOL_TEXT, kind=st.sampled_from(list(RouteKind)), partitions=st.integers(1, 64))
def test_subject_round_trips(symbol: str, kind: RouteKind, partitions: int) -> None:
    layout = PartitionLayout("md.test", partitions)
    subject = layout.subject(symbol, kind)
    assert layout.parse(subject) == (partition_of(symbol, partitions), symbol, kind.value)
    p = partition_of(symbol, partitions)
    assert (layout.partition_in(subject), layout.kind_in(subject)) == (p, kind.value)
    assert subject.startswith(layout.partition_filter(p).removesuffix(">"))


def test_layout_validation() -> None:
    with pytest.raises(ValueError, match="prefix"):
        PartitionLayout("bad..prefix")
    with pytest.raises(ValueError, match="prefix"):
        PartitionLayout("md.>")
    with pytest.raises(ValueError, match="partition"):
        PartitionLayout("md", 16).partition_filter(16)
    assert PartitionLayout("md", 16).parse("other.1.X.trade") is None
    assert PartitionLayout("md", 16).parse("md.x.X.trade") is None


def test_consumer_filters() -> None:
    layout = PartitionLayout("md", 16)
    assert consumer_filters(layout, range(16)) == {"md.>": tuple(range(16))}
    assert consumer_filters(layout, (1, 4)) == {"md.1.>": (1,), "md.4.>": (4,)}


# --- routing keys -----------------------------------------------------------------------------


def test_every_capture_line_routes_by_the_fast_path_to_the_decoded_symbol() -> None:
    keys = BinanceRouteKeys()
    decoder = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None))
    lines = capture_lines()[:400]
    for symbol in ("BTCUSDT", "ETHUSDT", "1000SATSUSDT"):
        for line in lines:
            raw = fan_out_line(line, symbol)
            key = keys(raw)
            assert isinstance(key, RouteKey)
            assert key.symbol == symbol
            decoded = decoder.decode_envelope(raw)
            assert isinstance(decoded, Decoded)
            assert event_symbol(decoded.event) == key.symbol
    assert keys.parse_path == 0
    kinds = {keys(line).kind for line in lines}  # type: ignore[union-attr]
    assert kinds == {RouteKind.TRADE, RouteKind.DEPTH, RouteKind.TICKER}


@given(
    symbol=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    stream=st.sampled_from(
        ["trade", "aggTrade", "ticker", "depth20@100ms", "depth5", "depth10@1000ms", "kline_1m",
         "bookTicker", "depth@100ms", "depth20@fast", "markPrice@1s"]
    ),
    spaced=st.booleans(),
)  # fmt: skip
def test_fast_path_and_parse_path_agree(symbol: str, stream: str, spaced: bool) -> None:
    envelope = {"stream": f"{symbol}@{stream}", "data": {"E": 1, "s": symbol.upper()}}
    raw = orjson.dumps(envelope)
    if spaced:
        raw = raw.replace(b'":"', b'": "').replace(b'","', b'", "')
    keys = BinanceRouteKeys()
    fast = keys(raw)
    assert fast == BinanceRouteKeys._parse(raw) == classify_stream(f"{symbol}@{stream}")
    assert (keys.parse_path == 1) is spaced


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", SkipReason.MALFORMED_JSON),
        (b"[1,2]", SkipReason.NOT_AN_OBJECT),
        (b'{"data":{}}', SkipReason.MISSING_FIELD),
        (b'{"stream": 5}', SkipReason.INVALID_VALUE),
        (b'{"stream":"btcusdt@kline_1m","data":{}}', SkipReason.UNSUPPORTED_STREAM),
        (b'{"stream":"nosymbolstream","data":{}}', SkipReason.UNSUPPORTED_STREAM),
        (b'{"stream":"@trade","data":{}}', SkipReason.UNSUPPORTED_STREAM),
        (b'{"stream":"btc-usdt@trade","data":{}}', SkipReason.INVALID_VALUE),
        (b'{"stream":"btc\\u00e9usdt@trade","data":{}}', SkipReason.INVALID_VALUE),
    ],
)
def test_unroutable_binance_messages_say_why(raw: bytes, reason: str) -> None:
    key = BinanceRouteKeys()(raw)
    assert isinstance(key, Unroutable)
    assert key.reason == reason


def test_market_inputs_route_where_their_decoder_puts_them() -> None:
    decoder = MarketInputDecoder()
    quote = b'{"venue":"Coinbase","symbol":"eth-usdt","bid":1,"ask":2,"timestamp":1}'
    whale = (
        b'{"type":"whale_transfer","asset":"eth","amount":5000,'
        b'"direction":"to_exchange","timestamp":1}'
    )
    flow = (
        b'{"type":"exchange_flow","asset":"SOL","inflow":9,"outflow":1,'
        b'"period_seconds":3600,"timestamp":1}'
    )
    for route, decode, raw in (
        (quote_route, decoder.decode_quote, quote),
        (onchain_route, decoder.decode_onchain, whale),
        (onchain_route, decoder.decode_onchain, flow),
    ):
        key = route(raw)
        decoded = decode(raw)
        assert isinstance(key, RouteKey)
        assert isinstance(decoded, Decoded)
        assert key.symbol == event_symbol(decoded.event)
    assert dominance_route(b"anything") == RouteKey("BTCUSDT", RouteKind.DOMINANCE)
    assert quote_route(b'{"venue":"x"}') == Unroutable(
        MISSING_SYMBOL, "quote without a string 'symbol'"
    )
    assert isinstance(onchain_route(b'{"asset":""}'), Unroutable)
    assert isinstance(onchain_route(b"nope"), Unroutable)
    assert not is_symbol("btc")


# --- the router's decisions (no server: a recording connection) --------------------------------


class _Client:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, Mapping[str, str] | None]] = []

    async def publish(
        self, subject: str, data: bytes, reply: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self.published.append((subject, data, headers))


class _Connection:
    def __init__(self) -> None:
        self.client = _Client()
        self.is_connected = True

    def add_listener(self, listener: Any) -> None: ...

    def remove_listener(self, listener: Any) -> None: ...


def _router(**kwargs: Any) -> tuple[NatsPartitionRouter, _Client]:
    connection = _Connection()
    router = NatsPartitionRouter(
        connection,  # type: ignore[arg-type]
        PartitionLayout("md", 16),
        {"raw": BinanceRouteKeys(), "dom": dominance_route},
        **{"acks": False, **kwargs},
    )
    return router, connection.client


def test_router_republishes_the_unchanged_payload_to_the_partition_subject() -> None:
    router, client = _router()
    line = capture_lines()[0]
    raw = fan_out_line(line, "ETHUSDT")
    headers = {"traceparent": "00-abc-def-01", "Nats-Expected-Stream": "X", "Nats-Msg-Id": "m1"}
    asyncio.run(router.route("raw", BinanceRouteKeys(), raw, headers))
    assert client.published == [
        (
            f"md.{partition_of('ETHUSDT', 16)}.ETHUSDT.trade",
            raw,
            {"traceparent": "00-abc-def-01", "Nats-Msg-Id": "m1"},
        )
    ]
    assert router.routed == {"trade": 1}


def test_router_counts_and_dead_letters_what_it_cannot_route() -> None:
    router, client = _router(
        dead_letter_subject="dead", allowed_symbols=frozenset({"BTCUSDT"}), max_bytes=2048
    )
    keys = BinanceRouteKeys()
    eth = fan_out_line(capture_lines()[0], "ETHUSDT")

    async def run() -> None:
        await router.route("raw", keys, b"{broken", None)
        await router.route("raw", keys, eth, None)  # not in TRADING_SYMBOLS
        await router.route("raw", keys, b'{"stream":"btcusdt@trade","x":"' + b"y" * 4096 + b'"}')
        await router.route("dom", dominance_route, b'{"btc_dominance": 55}')  # never filtered

    asyncio.run(run())
    assert router.dead_letters.skipped == {
        SkipReason.MALFORMED_JSON: 1,
        SkipReason.UNKNOWN_SYMBOL: 1,
        SkipReason.TOO_LARGE: 1,
    }
    dead = [(s, h) for s, _, h in client.published if s == "dead"]
    assert [h["Rs-Skip-Reason"] for _, h in dead if h] == [
        "malformed_json",
        "unknown_symbol",
        "too_large",
    ]
    routed = [s for s, _, _ in client.published if s != "dead"]
    assert routed == [f"md.{partition_of('BTCUSDT', 16)}.BTCUSDT.dominance"]


def test_sharded_routers_route_every_message_exactly_once_keeping_symbol_order() -> None:
    shards = [_router(shards=3, shard_index=i) for i in range(3)]
    keys = BinanceRouteKeys()
    sent = [fan_out_line(line, symbol) for line in capture_lines()[:40] for symbol in SYMBOLS_50]
    sent.append(b"{broken")

    async def run() -> None:
        for raw in sent:
            for router, _ in shards:  # every shard receives the whole input
                await router.route("raw", keys, raw)

    asyncio.run(run())
    routed: list[bytes] = []
    for index, (router, client) in enumerate(shards):
        assert router.queue_group == f"realtime-strategies-router-shard-{index}"
        for subject, payload, _ in client.published:
            assert int(subject.split(".")[1]) % 3 == index
            routed.append(payload)
        # one connection per symbol: its messages leave in the order they came
        by_symbol: dict[str, list[bytes]] = {}
        for subject, payload, _ in client.published:
            by_symbol.setdefault(subject.split(".")[2], []).append(payload)
        for symbol, payloads in by_symbol.items():
            expected = [
                raw
                for raw in sent
                if raw.startswith(b'{"stream":"' + symbol.lower().encode() + b"@")
            ]
            assert payloads == expected
    assert sorted(routed) == sorted(sent[:-1])
    assert [r.dead_letters.skipped for r, _ in shards] == [{SkipReason.MALFORMED_JSON: 1}, {}, {}]
    with pytest.raises(ValueError, match="shard index"):
        _router(shards=3, shard_index=3)


@dataclass
class _Ack:
    subject: str
    data: bytes = b'{"stream":"MD","seq":1}'
    headers: dict[str, str] | None = None


def test_an_unacknowledged_publish_is_sent_again_unchanged_until_acknowledged() -> None:
    router, client = _router(acks=True, ack_timeout=0.01, ack_retries=2)
    router._ack_prefix = "inbox"
    raw = fan_out_line(capture_lines()[0], "ETHUSDT")

    async def run() -> None:
        await router.route("raw", BinanceRouteKeys(), raw, {"traceparent": "00-a-b-01"})
        await asyncio.sleep(0.02)
        await router._retry(router._expire())  # the sweeper's step
        assert router.pending_acks == 1
        # the late ack of either copy counts once; the stream's duplicate ack is ignored
        await router._on_ack(_Ack("inbox.1"))  # type: ignore[arg-type]
        await router._on_ack(_Ack("inbox.1", b'{"stream":"MD", "seq":1,"duplicate": true}'))  # type: ignore[arg-type]

    asyncio.run(run())
    first, again = client.published
    assert first == again  # same subject, payload and headers: one Nats-Msg-Id
    headers = first[2]
    assert headers is not None
    assert headers["traceparent"] == "00-a-b-01"
    assert headers["Nats-Msg-Id"].startswith("rt-")
    assert (router.acked, router.retried, router.pending_acks) == (1, 1, 0)
    assert router.publish_errors == {}


def test_a_publish_never_acknowledged_is_counted_after_its_last_retry() -> None:
    router, client = _router(acks=True, ack_timeout=0.01, ack_retries=1)
    router._ack_prefix = "inbox"
    raw = fan_out_line(capture_lines()[0], "ETHUSDT")
    producer_id = {"Nats-Msg-Id": "producer-7"}

    async def run() -> None:
        await router.route("raw", BinanceRouteKeys(), raw, producer_id)
        for _ in range(3):
            await asyncio.sleep(0.02)
            await router._retry(router._expire())

    asyncio.run(run())
    assert [h for _, _, h in client.published] == [producer_id, producer_id]  # kept, not replaced
    assert router.retried == 1
    assert router.publish_errors == {"ack_timeout": 1}
    assert router.pending_acks == 0


def test_a_failing_routing_function_costs_one_message() -> None:
    router, client = _router()

    def broken(raw: bytes) -> RouteKey:
        raise RuntimeError("bug")

    asyncio.run(router.route("raw", broken, b"{}"))
    assert router.dead_letters.skipped == {"router_error": 1}
    assert client.published == []


# --- the replay gate --------------------------------------------------------------------------


def _signal(signal_id: str) -> Signal:
    return a_signal(signal_id=signal_id)


class _Feed:
    def __init__(self, *, signal_stream: bool) -> None:
        self.signal_stream = object() if signal_stream else None
        self.recover_after_ns = 1_000
        self.published_ids = {"already"}
        self.replay = ReplayStats()


def _item(*, replay: bool, stored_at_ns: int) -> PartitionFeedItem:
    snapshot = DepthSnapshot("BTCUSDT", 1, ((1.0, 1.0),), ((2.0, 1.0),))
    return PartitionFeedItem(
        snapshot, None, None, 0, "md.0.BTCUSDT.depth", 0, 1, stored_at_ns, replay
    )


def test_replay_gate() -> None:
    feed = _Feed(signal_stream=True)
    gate = ReplayGate(feed)  # type: ignore[arg-type]
    live = _item(replay=False, stored_at_ns=0)
    recent = _item(replay=True, stored_at_ns=5_000)
    old = _item(replay=True, stored_at_ns=10)

    def published_if_admitted(item: PartitionFeedItem, signal_id: str) -> Admission:
        admission = gate.admit(item, _signal(signal_id))
        if admission is Admission.PUBLISH:
            gate.published(item, _signal(signal_id))
        return admission

    admitted = [
        published_if_admitted(live, "live"),  # live: always
        published_if_admitted(recent, "already"),  # replayed, already in the signal stream
        published_if_admitted(recent, "missing"),  # replayed, recent, missing: recovered
        published_if_admitted(recent, "missing"),  # ...once
        published_if_admitted(old, "old"),  # replayed, before the recovery window
        published_if_admitted(old, "already"),  # published: scored on, however old
    ]
    publish, before, hold = Admission.PUBLISH, Admission.PUBLISHED_BEFORE, Admission.HOLD
    assert admitted == [publish, before, publish, before, hold, before]
    assert feed.replay.signals_suppressed == 4
    assert feed.replay.signals_suppressed_published == 3
    assert feed.replay.signals_suppressed_stale == 1  # counted and logged, never silent
    assert feed.replay.signals_recovered == 1
    assert feed.published_ids == {"already", "missing"}  # the live one needs no record


def test_a_replayed_signal_admitted_but_then_held_is_not_counted_as_recovered() -> None:
    """The shared budget (ADR 25) may hold a signal the gate admitted: only a signal handed
    to the sink is recovered, and one never published stays missing for a later replay."""
    feed = _Feed(signal_stream=True)
    gate = ReplayGate(feed)  # type: ignore[arg-type]
    recent = _item(replay=True, stored_at_ns=5_000)
    assert gate.admit(recent, _signal("missing")) is Admission.PUBLISH
    assert feed.replay.signals_recovered == 0
    assert gate.admit(recent, _signal("missing")) is Admission.PUBLISH
    assert "missing" not in feed.published_ids


def test_replay_gate_without_a_signal_stream_suppresses_every_replayed_signal() -> None:
    feed = _Feed(signal_stream=False)
    gate = ReplayGate(feed)  # type: ignore[arg-type]
    replayed = _item(replay=True, stored_at_ns=5_000)
    assert gate.admit(replayed, _signal("missing")) is Admission.HOLD
    assert feed.replay.signals_suppressed == 1


# --- the owner proxy ------------------------------------------------------------------------


def _symbol_owned_by(owner: int, length: int, workers: int) -> str:
    return next(s for i in range(1000) if owner_of(s := f"{i:0{length}d}", 16, workers) == owner)


@pytest.mark.parametrize("length", [7, 25, 32])
def test_the_proxy_forwards_every_symbol_to_its_owner(length: int) -> None:
    """The proxy's path pattern is the one symbol rule (1..32): a 25-character symbol was
    answered by whichever worker got the request instead of by its owner."""
    asked: list[str] = []

    async def fetch(url: str, headers: Mapping[str, str], seconds: float) -> tuple[int, bytes, str]:
        asked.append(url)
        return 200, b'{"owner": 1}', "application/json"

    async def local(scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"owner": 0})(scope, receive, send)

    proxy = OwnerProxyMiddleware(
        local,
        worker_index=0,
        worker_count=2,
        partitions=16,
        url_template="http://w{index}",
        fetch=fetch,
    )

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=proxy)
        async with httpx.AsyncClient(transport=transport, base_url="http://w0") as client:
            return await client.get(path)

    theirs = _symbol_owned_by(1, length, 2)
    mine = _symbol_owned_by(0, length, 2)
    response = asyncio.run(get(f"/api/v1/metrics/depth/{theirs}"))
    assert (response.json(), response.headers["x-rs-owner"]) == ({"owner": 1}, "1")
    assert asked == [f"http://w1/api/v1/metrics/depth/{theirs}"]
    assert asyncio.run(get(f"/api/v1/metrics/pressure/{mine}")).json() == {"owner": 0}
    assert asyncio.run(get(f"/api/v1/metrics/depth/{'1' * 33}")).json() == {"owner": 0}
    assert len(asked) == 1


class _Workers:
    """A proxy over ``count`` in-process metrics books, beside one book with every symbol."""

    def __init__(self, count: int, symbols: Sequence[str]) -> None:
        self.whole = MarketMetricsQuery(MarketMetricsBook(max_symbols=len(symbols) + 1))
        self.parts = [
            MarketMetricsQuery(MarketMetricsBook(max_symbols=len(symbols) + 1))
            for _ in range(count)
        ]
        self.asked: list[str] = []
        for i, symbol in enumerate(symbols):
            bid, ask = 1.0 + i % 19, 20.0 - i % 19
            snapshot = DepthSnapshot(symbol, 1_000 + i, ((100.0, bid),), ((101.0, ask),))
            self.whole.book.on_depth(snapshot)
            self.parts[owner_of(symbol, 16, count)].book.on_depth(snapshot)

        async def local(scope: Scope, receive: Receive, send: Send) -> None:
            await JSONResponse({"local": True}, status_code=422)(scope, receive, send)

        self.proxy = OwnerProxyMiddleware(
            local,
            worker_index=0,
            worker_count=count,
            partitions=16,
            url_template="http://w{index}",
            fetch=self.fetch,
        )

    async def fetch(
        self, url: str, headers: Mapping[str, str], seconds: float
    ) -> tuple[int, bytes, str]:
        self.asked.append(url)
        parsed = urllib.parse.urlsplit(url)
        worker = self.parts[int(parsed.netloc.removeprefix("w"))]
        q = dict(urllib.parse.parse_qsl(parsed.query))
        answer = (
            worker.summary()
            if parsed.path.endswith("/summary")
            else worker.all(
                sort_by=q["sort_by"],
                descending=q.get("order") == "desc",
                offset=int(q["offset"]),
                limit=int(q["limit"]),
            )
        )
        return 200, orjson.dumps({"success": True, **answer}), "application/json"

    def get(self, path: str) -> Any:
        async def get() -> Any:
            transport = httpx.ASGITransport(app=self.proxy)
            async with httpx.AsyncClient(transport=transport, base_url="http://w0") as client:
                return (await client.get(path)).json()

        return asyncio.run(get())

    def one_book_page(self, sort_by: str, descending: bool, offset: int, limit: int) -> Any:
        page = self.whole.all(sort_by=sort_by, descending=descending, offset=offset, limit=limit)
        return {"success": True, "error": None, **orjson.loads(orjson.dumps(page))}


def test_the_proxy_answers_market_wide_reads_as_one_book() -> None:
    """``/summary`` and ``/all`` gathered from the workers are one book's answers; a query the
    metrics API refuses is left to the local handler (its 422)."""
    workers = _Workers(3, SYMBOLS_50[:20])
    whole, get = workers.whole, workers.get

    summary = get("/api/v1/metrics/summary")
    assert summary.pop("metadata") == {"workers": 3}
    want = orjson.loads(orjson.dumps(whole.summary()))
    assert summary.pop("market_sentiment")["avg_net_pressure"] == pytest.approx(
        want.pop("market_sentiment")["avg_net_pressure"]
    )
    assert {k: v for k, v in summary.items() if k in want} == want
    page = get("/api/v1/metrics/all?sort_by=Net_Pressure&order=desc&offset=3&limit=5")
    assert page.pop("metadata") == {"order": "desc", "workers": 3}
    assert page == workers.one_book_page("net_pressure", True, 3, 5)
    for query in ("limit=0", "offset=-1", "sort_by=price", "limit=x"):
        assert get(f"/api/v1/metrics/all?{query}") == {"local": True}


@pytest.mark.parametrize(("offset", "limit"), [(1_990, 20), (2_400, 1_000), (0, 1_000)])
def test_the_proxy_pages_through_each_worker_beyond_max_limit(offset: int, limit: int) -> None:
    """A page past the 1,000th item of the merged order: each worker was asked for its first
    1,000 items only, so items a worker held beyond its 1,000th were missing."""
    symbols = [f"S{i:04d}USDT" for i in range(2_500)]
    workers = _Workers(2, symbols)
    page = workers.get(f"/api/v1/metrics/all?sort_by=symbol&offset={offset}&limit={limit}")
    page.pop("metadata")
    assert page == workers.one_book_page("symbol", False, offset, limit)
    assert page["count"] == min(limit, len(symbols) - offset)


# --- settings ---------------------------------------------------------------------------------


def test_partition_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not PartitionSettings().enabled
    monkeypatch.setenv("WORKER_COUNT", "3")
    part = PartitionSettings()
    assert part.enabled
    assert part.workers == 3
    assert part.resolve_worker_index("realtime-strategies-2") == 2
    assert part.owned(2) == tuple(range(2, 16, 3))
    with pytest.raises(ValueError, match="ordinal"):
        part.resolve_worker_index("realtime-strategies")
    with pytest.raises(ValueError, match="below WORKER_COUNT"):
        part.resolve_worker_index("realtime-strategies-3")
    monkeypatch.setenv("WORKER_INDEX", "1")
    assert PartitionSettings().resolve_worker_index("whatever-2") == 1
    monkeypatch.setenv("WORKER_INDEX", "3")
    with pytest.raises(ValueError, match="WORKER_INDEX"):
        PartitionSettings()
    monkeypatch.delenv("WORKER_INDEX")
    monkeypatch.setenv("WORKER_COUNT", "17")
    with pytest.raises(ValueError, match="PARTITION_COUNT"):
        PartitionSettings()
    monkeypatch.delenv("WORKER_COUNT")
    monkeypatch.setenv("PARTITIONED_MODE", "true")
    assert PartitionSettings().workers == 1
    assert PartitionSettings().resolve_worker_index("anything") == 0
    assert PartitionSettings().resolve_router_shard("router-7") == 0  # not sharded
    monkeypatch.setenv("ROUTER_SHARDS", "2")
    assert PartitionSettings().resolve_router_shard("realtime-strategies-router-1") == 1
    with pytest.raises(ValueError, match="not below ROUTER_SHARDS"):
        PartitionSettings().resolve_router_shard("realtime-strategies-router-2")
    monkeypatch.setenv("ROUTER_INPUT_STREAM", "MARKETINPUT")  # failover: 2 pods per shard
    assert PartitionSettings().resolve_router_shard("realtime-strategies-router-2") == 0
    assert PartitionSettings().resolve_router_shard("realtime-strategies-router-3") == 1
    monkeypatch.delenv("ROUTER_INPUT_STREAM")
    with pytest.raises(ValueError, match="ordinal"):
        PartitionSettings().resolve_router_shard("router")


# --- deploy/partitioned -----------------------------------------------------------------------


def _go_duration_seconds(text: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return float(text[:-1]) * units[text[-1]]


def test_partitioned_overlay_renders_valid_and_consistent() -> None:
    import kubernetes_validate  # type: ignore[import-untyped]

    from tests.unit.deploy.support import DEPLOY, by_kind, kustomize, one

    manifests = kustomize(DEPLOY / "partitioned")
    for manifest in manifests:
        if manifest["apiVersion"].startswith(("jetstream.nats.io", "monitoring.coreos.com")):
            continue
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    # the single-process Deployment and its HPA are replaced
    assert ("Deployment", "petrosa-realtime-strategies") not in names
    assert ("HorizontalPodAutoscaler", "petrosa-realtime-strategies") not in names
    assert ("HorizontalPodAutoscaler", "petrosa-realtime-strategies-router") not in names

    config = next(
        m["data"]
        for m in by_kind(manifests, "ConfigMap")
        if m["metadata"]["name"] == "petrosa-realtime-strategies-config"
    )
    workers = one(manifests, "StatefulSet")
    pod = workers["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["WORKER_COUNT"]) == workers["spec"]["replicas"]
    assert container["args"] == ["serve"]
    # every partition setting is a real one, and together they parse
    known = {name.upper() for name in PartitionSettings.model_fields}
    for key in config:
        if key.startswith(("PARTITION", "WORKER", "ROUTER", "SIGNAL_STREAM", "SIGNAL_DUP")):
            assert key in known, key
    settings = PartitionSettings(**{k.lower(): v for k, v in {**config, **env}.items()})
    assert settings.enabled
    assert settings.workers == workers["spec"]["replicas"]
    name = workers["metadata"]["name"]
    namespace = workers["metadata"]["namespace"]
    assert settings.worker_url_template.startswith(
        f"http://{name}-{{index}}.{workers['spec']['serviceName']}.{namespace}.svc"
    )
    assert settings.resolve_worker_index(f"{name}-2") == 2
    headless = next(
        m
        for m in by_kind(manifests, "Service")
        if m["metadata"]["name"] == workers["spec"]["serviceName"]
    )
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    api = next(
        m
        for m in by_kind(manifests, "Service")
        if m["metadata"]["name"] == "petrosa-realtime-strategies"
    )
    assert api["spec"]["selector"].items() <= pod["metadata"]["labels"].items()

    router = next(
        m
        for m in by_kind(manifests, "Deployment")
        if m["metadata"]["name"] == "petrosa-realtime-strategies-router"
    )
    (router_container,) = router["spec"]["template"]["spec"]["containers"]
    assert router_container["args"] == ["route"]
    assert router_container["image"] == container["image"]
    # leader + standby (ADR 19): failover mode, and never fewer than two replicas
    router_env = {e["name"]: e["value"] for e in router_container.get("env", [])}
    router_settings = PartitionSettings(
        **{k.lower(): v for k, v in {**config, **router_env}.items()}
    )
    assert router_settings.router_input_stream
    assert router["spec"]["replicas"] == 2
    assert not container["image"].endswith(":latest")

    streams = {m["spec"]["name"]: m["spec"] for m in by_kind(manifests, "Stream")}
    market = streams[settings.partition_stream]
    assert market["subjects"] == [f"{settings.partition_subject_prefix}.>"]
    assert _go_duration_seconds(market["maxAge"]) == settings.partition_replay_seconds
    assert settings.signal_stream in streams
    json_spec = orjson.loads((DEPLOY / "partitioned" / "marketdata-stream.json").read_bytes())
    assert json_spec["name"] == market["name"]
    assert json_spec["subjects"] == market["subjects"]
    assert json_spec["max_age"] == int(_go_duration_seconds(market["maxAge"]) * 1e9)
    assert json_spec["max_bytes"] == market["maxBytes"]
    assert json_spec["num_replicas"] == market["replicas"]


def test_sharded_routers_component(tmp_path: Path) -> None:
    import kubernetes_validate

    from tests.unit.deploy.support import DEPLOY, by_kind, kustomize, load_yaml

    overlay = DEPLOY / "partitioned"
    (image,) = load_yaml(DEPLOY / "overlays" / "production" / "kustomization.yaml")["images"]
    (tmp_path / "kustomization.yaml").write_text(
        orjson.dumps(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(overlay, tmp_path)],
                "components": [
                    os.path.relpath(overlay / "components" / "sharded-routers", tmp_path)
                ],
                "images": [image],
            }
        ).decode(),
        encoding="utf-8",
    )
    manifests = kustomize(tmp_path)
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("Deployment", "petrosa-realtime-strategies-router") not in names
    assert ("HorizontalPodAutoscaler", "petrosa-realtime-strategies-router") not in names
    sets = {m["metadata"]["name"]: m for m in by_kind(manifests, "StatefulSet")}
    routers = sets["petrosa-realtime-strategies-router"]
    kubernetes_validate.validate(routers, "1.30.0", strict=True)
    (container,) = routers["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert 2 * int(env["ROUTER_SHARDS"]) == routers["spec"]["replicas"]  # leader + standby
    assert container["args"] == ["route"]
    (worker,) = sets["petrosa-realtime-strategies-worker"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == worker["image"]
    part = PartitionSettings(router_shards=int(env["ROUTER_SHARDS"]), router_input_stream="IN")
    assert part.resolve_router_shard("petrosa-realtime-strategies-router-1") == 1
    assert part.resolve_router_shard("petrosa-realtime-strategies-router-3") == 1  # standby
