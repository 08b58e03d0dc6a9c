"""Binance codec: real messages decode exactly; every class of bad input is a counted Skip."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.wire import binance
from adapters.wire.binance import BinanceDecoder, decode, decode_envelope, iso_to_epoch_ms
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.stats import (
    ALL_SKIP_REASONS,
    Decoded,
    DecodeStats,
    Skip,
    SkipReason,
    message_type,
    stream_kind,
)
from domain.market import DepthSnapshot, MarketEvent, Ticker, Trade
from tests.data import WIRE_EXAMPLES

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def example_lines() -> list[bytes]:
    return WIRE_EXAMPLES.read_bytes().splitlines()


_message_ids = itertools.count(1)
_trade_ids = itertools.count(0)


def envelope(stream: str, data: object, **extra: object) -> bytes:
    """A producer message with a message id of its own (the decoder drops repeated ids)."""
    message: dict[str, object] = {
        "stream": stream,
        "data": data,
        "timestamp": "2024-08-08T23:54:15.508Z",
        "message_id": f"m-{next(_message_ids)}",
        "source": "binance-websocket",
        "version": "1.0",
    }
    message.update(extra)
    return orjson.dumps(message)


def trade_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "e": "trade",
        "E": 1723161255343,
        "s": "BTCUSDT",
        "t": 3735683259 + next(_trade_ids),  # repeated trade ids are duplicates
        "p": "61837.63000000",
        "q": "0.02000000",
        "T": 1723161255342,
        "m": True,
        "M": True,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


def depth_data(bids: list[Any] | None = None, asks: list[Any] | None = None) -> dict[str, object]:
    return {
        "lastUpdateId": 50093239237,
        "bids": [["61837.63", "3.788"], ["61837.62", "0.617"]] if bids is None else bids,
        "asks": [["61837.64", "1.605"], ["61837.65", "0.008"]] if asks is None else asks,
    }


def ticker_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "e": "24hrTicker",
        "E": 1723161256000,
        "s": "BTCUSDT",
        "p": "-9.62000000",
        "P": "-0.016",
        "w": "61834.02610125",
        "x": "61837.63000000",
        "c": "61828.01000000",
        "Q": "0.01318000",
        "b": "61826.01000000",
        "B": "0.00009000",
        "a": "61827.78000000",
        "A": "0.09100000",
        "o": "61837.63000000",
        "h": "61837.63000000",
        "l": "61828.01000000",
        "v": "0.24000000",
        "q": "14840.16626430",
        "O": 1723074856000,
        "C": 1723161256000,
        "F": 0,
        "L": 3735683306,
        "n": 48,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()


def skip_reason(result: object) -> str:
    assert isinstance(result, Skip), f"expected a Skip, got {result!r}"
    assert not result.detail.startswith("internal error"), result.detail
    return result.reason


def rebuilt(event: MarketEvent) -> MarketEvent:
    """The same event through the domain's validating constructor."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return type(event)(**fields)


def assert_valid_outcome(result: object) -> None:
    """Never an exception, never an internal error: a valid domain event or a known Skip."""
    if isinstance(result, Skip):
        assert result.reason in ALL_SKIP_REASONS
        assert not result.detail.startswith("internal error"), result.detail
    else:
        assert isinstance(result, DepthSnapshot | Trade | Ticker)
        assert rebuilt(result) == result


# ------------------------------------------------------------------------------ real data


def test_producer_wire_examples_decode_as_expected(example_lines: list[bytes]) -> None:
    results = [decode(line) for line in example_lines]
    assert len(results) == 4
    trade, ticker, depth, kline = results

    assert trade == Trade(
        symbol="BTCUSDT",
        event_time_ms=1723161255343,
        trade_id=3735683259,
        price=61837.63,
        quantity=0.02,
        is_buyer_maker=True,
    )
    assert ticker == Ticker(
        symbol="BTCUSDT",
        event_time_ms=1592593727005,
        last_price=9318.48,
        price_change=-65.0,
        price_change_percent=-0.693,
        open_price=9383.48,
        high_price=9438.30,
        low_price=9215.79,
        volume=48745.366671,
        quote_volume=455442476.1853462,
        best_bid=9318.18,
        best_ask=9318.47,
    )
    assert depth == DepthSnapshot(
        symbol="BTCUSDT",
        event_time_ms=iso_to_epoch_ms("2024-08-08T23:54:14.152400Z"),
        bids=((2683.80, 3.0292), (2683.78, 0.002)),
        asks=((2683.81, 31.4395), (2683.90, 0.02)),
    )
    assert isinstance(depth, DepthSnapshot)
    assert depth.event_time_ms == 1723161254152
    assert skip_reason(kline) == SkipReason.UNSUPPORTED_STREAM
    assert isinstance(kline, Skip)
    assert kline.stream == "ftmusdt@kline"


def test_wire_examples_envelope_metadata(example_lines: list[bytes]) -> None:
    decoded = decode_envelope(example_lines[0])
    assert isinstance(decoded, Decoded)
    assert decoded.message_id == "3f1c2b7e-8a4d-4e55-9a0b-2f6d1c9e7a11"
    assert decoded.stream == "btcusdt@trade"
    assert decoded.trace_context is None
    assert decoded.event == decode(example_lines[0])


def test_whole_capture_decodes_without_a_skip(capture_lines: list[bytes]) -> None:
    decoder = BinanceDecoder(symbols=["BTCUSDT"])
    stats = DecodeStats()
    events = []
    for line in capture_lines:
        result = decoder.decode(line)
        stats.record(result)
        events.append(result)
    assert len(capture_lines) == 13551
    assert stats.by_reason == {}
    assert stats.samples == []
    assert stats.by_type == {"trade": 9757, "depth": 3448, "ticker": 346}
    assert stats.total == 13551
    # Every event satisfies the domain's own invariants (the codec's construction shortcut
    # produces exactly what the validating constructor would).
    for event in events:
        assert not isinstance(event, Skip)
        assert rebuilt(event) == event


def test_whole_capture_via_decode_envelope(capture_lines: list[bytes]) -> None:
    decoder = BinanceDecoder()
    counts: Counter[str] = Counter()
    for line in capture_lines:
        result = decoder.decode_envelope(line)
        assert isinstance(result, Decoded)
        assert result.message_id
        counts[message_type(result.event)] += 1
    assert counts == {"trade": 9757, "depth": 3448, "ticker": 346}


def test_depth_fast_path_equals_exact_path_on_capture(capture_lines: list[bytes]) -> None:
    """Bytes take the unquote-and-parse shortcut, str the float() path: same events."""
    depth = [line for line in capture_lines if b"@depth" in line]
    fast = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None))
    exact = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None))
    for line in depth:
        assert fast.decode(line) == exact.decode(line.decode())


def test_capture_event_times_and_levels(capture_lines: list[bytes]) -> None:
    first_depth = next(line for line in capture_lines if b"@depth" in line)
    snapshot = decode(first_depth)
    assert isinstance(snapshot, DepthSnapshot)
    assert snapshot.event_time_ms == 1723161255508  # envelope "2024-08-08T23:54:15.508Z"
    assert len(snapshot.bids) == 20
    assert len(snapshot.asks) == 20
    assert snapshot.bids[0] == (61837.63, 3.78826)
    assert snapshot.asks[0] == (61837.64, 1.6052)
    assert [p for p, _ in snapshot.bids] == sorted((p for p, _ in snapshot.bids), reverse=True)
    assert [p for p, _ in snapshot.asks] == sorted(p for p, _ in snapshot.asks)


# ------------------------------------------------------------------------------ formats


def test_agg_trade_is_a_trade_with_the_aggregate_id() -> None:
    data = {
        "e": "aggTrade",
        "E": 1723161255343,
        "s": "ETHUSDT",
        "a": 26129,
        "p": "2683.81",
        "q": "1.5",
        "f": 100,
        "l": 105,
        "T": 1723161255342,
        "m": False,
    }
    event = decode(envelope("ethusdt@aggTrade", data))
    assert event == Trade("ETHUSDT", 1723161255343, 26129, 2683.81, 1.5, False)


def test_futures_trade_with_extra_fields() -> None:
    event = decode(envelope("btcusdt@trade", trade_data(X="MARKET", M=_DROP)))
    assert isinstance(event, Trade)
    assert event.price == 61837.63


def test_bare_combined_stream_frame() -> None:
    raw = orjson.dumps({"stream": "btcusdt@trade", "data": trade_data()})
    assert isinstance(decode(raw), Trade)
    depth = orjson.dumps({"stream": "btcusdt@depth20@100ms", "data": depth_data()})
    assert skip_reason(decode(depth)) == SkipReason.MISSING_FIELD  # no E, no timestamp
    with_time = orjson.dumps(
        {"stream": "btcusdt@depth20@100ms", "data": {**depth_data(), "E": 1723161255600}}
    )
    snapshot = decode(with_time)
    assert isinstance(snapshot, DepthSnapshot)
    assert snapshot.event_time_ms == 1723161255600


def test_str_input_is_accepted() -> None:
    raw = envelope("btcusdt@trade", trade_data())
    assert decode(raw.decode()) == decode(raw)


def test_ticker_change_fields_are_not_swapped() -> None:
    event = decode(envelope("btcusdt@ticker", ticker_data()))
    assert isinstance(event, Ticker)
    assert event.price_change == -9.62
    assert event.price_change_percent == -0.016
    assert event.last_price == 61828.01
    assert (event.best_bid, event.best_ask) == (61826.01, 61827.78)
    assert (event.volume, event.quote_volume) == (0.24, 14840.1662643)


@pytest.mark.parametrize(
    "stream",
    ["btcusdt@depth5", "btcusdt@depth10@1000ms", "btcusdt@depth20@100ms", "btcusdt@depth20"],
)
def test_partial_depth_streams_of_any_size_and_speed(stream: str) -> None:
    event = decode(envelope(stream, depth_data()))
    assert isinstance(event, DepthSnapshot)
    assert event.symbol == "BTCUSDT"


def test_depth_symbol_comes_from_the_stream() -> None:
    event = decode(envelope("ethusdt@depth20@100ms", depth_data()))
    assert isinstance(event, DepthSnapshot)
    assert event.symbol == "ETHUSDT"


@pytest.mark.parametrize("as_bytes", [True, False])
def test_futures_partial_depth(as_bytes: bool) -> None:
    data = {
        "e": "depthUpdate",
        "E": 1723161255700,
        "T": 1723161255699,
        "s": "BTCUSDT",
        "U": 1,
        "u": 2,
        "pu": 0,
        "b": [["61830.1", "2.5"], ["61830.0", "1"]],
        "a": [["61830.2", "0.5"]],
    }
    raw = envelope("btcusdt@depth20@100ms", data)
    event = decode(raw if as_bytes else raw.decode())
    assert event == DepthSnapshot(
        "BTCUSDT", 1723161255700, ((61830.1, 2.5), (61830.0, 1.0)), ((61830.2, 0.5),)
    )


@pytest.mark.parametrize("as_bytes", [True, False])
def test_zero_quantity_levels_are_dropped_and_order_kept(as_bytes: bool) -> None:
    data = depth_data(
        bids=[["100.5", "1"], ["100.4", "0.00000000"], ["100.3", "2"]],
        asks=[["100.6", "0"], ["100.7", "3"]],
    )
    raw = envelope("btcusdt@depth20@100ms", data)
    event = decode(raw if as_bytes else raw.decode())
    assert isinstance(event, DepthSnapshot)
    assert event.bids == ((100.5, 1.0), (100.3, 2.0))
    assert event.asks == ((100.7, 3.0),)


def test_one_empty_side_is_a_valid_book() -> None:
    event = decode(envelope("btcusdt@depth20@100ms", depth_data(asks=[])))
    assert isinstance(event, DepthSnapshot)
    assert event.asks == ()
    assert len(event.bids) == 2


def test_levels_given_as_numbers_and_with_spaces() -> None:
    data = depth_data()
    data["bids"] = [[61837.63, 3.788], [61837.62, 1]]
    event = decode(envelope("btcusdt@depth20@100ms", data))
    assert isinstance(event, DepthSnapshot)
    assert event.bids == ((61837.63, 3.788), (61837.62, 1.0))
    assert all(type(x) is float for level in event.bids for x in level)
    spaced = b'{"stream": "btcusdt@depth20@100ms", "timestamp": "2024-08-08T23:54:15Z", '
    spaced += b'"data": {"bids": [["1.5", "2"]], "asks": [["1.6", "3"]]}}'
    event = decode(spaced)
    assert event == DepthSnapshot("BTCUSDT", 1723161255000, ((1.5, 2.0),), ((1.6, 3.0),))


def test_legacy_three_element_levels() -> None:
    data = depth_data(bids=[["100", "1", []]], asks=[["101", "2", []]])
    assert decode(envelope("btcusdt@depth20@100ms", data)) == DepthSnapshot(
        "BTCUSDT", 1723161255508, ((100.0, 1.0),), ((101.0, 2.0),)
    )


def test_decode_envelope_trace_context_and_message_id() -> None:
    context = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    decoded = decode_envelope(
        envelope("btcusdt@trade", trade_data(), _otel_trace_context=context, message_id="abc")
    )
    assert isinstance(decoded, Decoded)
    assert decoded.trace_context == context
    assert decoded.message_id == "abc"
    assert decoded.stream == "btcusdt@trade"
    bad_context = decode_envelope(
        envelope("btcusdt@trade", trade_data(), _otel_trace_context={"a": 1}, message_id=7)
    )
    assert isinstance(bad_context, Decoded)
    assert bad_context.trace_context is None
    assert bad_context.message_id is None
    skipped = decode_envelope(b"{")
    assert skip_reason(skipped) == SkipReason.MALFORMED_JSON


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"stream": "btcusdt@trade",', b"\xff\xfe{}", b"nope", b"{} {}"]
)
def test_malformed_json(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.MALFORMED_JSON


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_not_an_object(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.NOT_AN_OBJECT


def test_data_that_is_not_an_object() -> None:
    raw = envelope("btcusdt@trade", [1, 2])
    assert skip_reason(decode(raw)) == SkipReason.NOT_AN_OBJECT


def test_too_large_is_rejected_before_parsing() -> None:
    decoder = BinanceDecoder(max_bytes=200)
    raw = envelope("btcusdt@trade", trade_data())
    assert len(raw) > 200
    assert skip_reason(decoder.decode(raw)) == SkipReason.TOO_LARGE
    assert skip_reason(decoder.decode(raw.decode())) == SkipReason.TOO_LARGE
    assert skip_reason(decoder.decode(b"{" * 300)) == SkipReason.TOO_LARGE  # not even parsed
    assert skip_reason(decoder.decode("é" * 150)) == SkipReason.TOO_LARGE  # 300 UTF-8 bytes
    default = BinanceDecoder()
    huge = b'{"stream":"btcusdt@trade","data":{},"pad":"' + b"x" * (1 << 20) + b'"}'
    assert skip_reason(default.decode(huge)) == SkipReason.TOO_LARGE
    assert skip_reason(default.decode_envelope(huge)) == SkipReason.TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps({"data": trade_data()}),
        orjson.dumps({"stream": "btcusdt@trade"}),
        envelope("btcusdt@trade", trade_data(p=_DROP)),
        envelope("btcusdt@trade", trade_data(q=_DROP)),
        envelope("btcusdt@trade", trade_data(s=_DROP)),
        envelope("btcusdt@trade", trade_data(t=_DROP)),
        envelope("btcusdt@trade", trade_data(m=_DROP)),
        envelope("btcusdt@trade", trade_data(E=_DROP), timestamp=None),
        envelope("btcusdt@ticker", ticker_data(c=_DROP)),
        envelope("btcusdt@ticker", ticker_data(P=_DROP)),
        envelope("btcusdt@depth20@100ms", depth_data(), timestamp=None),
        envelope("btcusdt@depth20@100ms", {"lastUpdateId": 1, "bids": []}),
        envelope("btcusdt@depth20@100ms", {"lastUpdateId": 1}),
    ],
)
def test_missing_field(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.MISSING_FIELD


def test_trade_without_e_falls_back_to_the_envelope_timestamp() -> None:
    event = decode(envelope("btcusdt@trade", trade_data(E=_DROP)))
    assert isinstance(event, Trade)
    assert event.event_time_ms == 1723161255508


@pytest.mark.parametrize(
    "raw",
    [
        envelope("btcusdt@trade", trade_data(p="abc")),
        envelope("btcusdt@trade", trade_data(q="")),
        envelope("btcusdt@trade", trade_data(p=None)),
        envelope("btcusdt@trade", trade_data(p=True)),
        envelope("btcusdt@trade", trade_data(q=[1])),
        envelope("btcusdt@trade", trade_data(E="soon")),
        envelope("btcusdt@trade", trade_data(t="x1")),
        envelope("btcusdt@ticker", ticker_data(c="n/a")),
        envelope("btcusdt@ticker", ticker_data(v={"a": 1})),
        envelope("btcusdt@depth20@100ms", depth_data(bids=[["x", "1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(asks=[["100", "lots"]])),
    ],
)
def test_non_numeric(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.NON_NUMERIC


@pytest.mark.parametrize(
    "raw",
    [
        envelope("btcusdt@trade", trade_data(p="NaN")),
        envelope("btcusdt@trade", trade_data(p="inf")),
        envelope("btcusdt@trade", trade_data(p="-1")),
        envelope("btcusdt@trade", trade_data(p="0")),
        envelope("btcusdt@trade", trade_data(q="-0.5")),
        envelope("btcusdt@trade", trade_data(q="0")),
        envelope("btcusdt@trade", trade_data(p="1e999")),
        envelope("btcusdt@ticker", ticker_data(c="0")),
        envelope("btcusdt@ticker", ticker_data(o="-5")),
        envelope("btcusdt@ticker", ticker_data(p="NaN")),
        envelope("btcusdt@ticker", ticker_data(v="-1")),
        envelope("btcusdt@depth20@100ms", depth_data(bids=[["0", "1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(bids=[["-100", "1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(asks=[["NaN", "1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(asks=[["Infinity", "1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(asks=[["100", "-1"]])),
        envelope("btcusdt@depth20@100ms", depth_data(asks=[["100", "nan"]])),
    ],
)
def test_invalid_price(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.INVALID_PRICE


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([["101", "1"]], [["100", "1"]]),
        ([["100", "1"]], [["100", "1"]]),
        ([["100.00000001", "1"], ["99", "1"]], [["100", "1"]]),
    ],
)
def test_crossed_book(bids: list[list[str]], asks: list[list[str]]) -> None:
    raw = envelope("btcusdt@depth20@100ms", depth_data(bids=bids, asks=asks))
    assert skip_reason(decode(raw)) == SkipReason.CROSSED_BOOK
    assert skip_reason(decode(raw.decode())) == SkipReason.CROSSED_BOOK


@pytest.mark.parametrize(
    ("bids", "asks"),
    [([], []), ([["100", "0"]], []), ([["100", "0"]], [["101", "0.0"]])],
)
def test_empty_book(bids: list[list[str]], asks: list[list[str]]) -> None:
    raw = envelope("btcusdt@depth20@100ms", depth_data(bids=bids, asks=asks))
    assert skip_reason(decode(raw)) == SkipReason.EMPTY_BOOK


def test_unknown_symbol_with_an_allow_list() -> None:
    decoder = BinanceDecoder(symbols=["ethusdt", " SOLUSDT "])
    assert decoder.symbols == frozenset({"ETHUSDT", "SOLUSDT"})
    assert skip_reason(decoder.decode(envelope("btcusdt@trade", trade_data()))) == (
        SkipReason.UNKNOWN_SYMBOL
    )
    assert skip_reason(decoder.decode(envelope("btcusdt@depth20@100ms", depth_data()))) == (
        SkipReason.UNKNOWN_SYMBOL
    )
    assert skip_reason(decoder.decode(envelope("btcusdt@ticker", ticker_data()))) == (
        SkipReason.UNKNOWN_SYMBOL
    )
    assert isinstance(
        decoder.decode(envelope("ethusdt@depth20@100ms", depth_data())), DepthSnapshot
    )
    assert isinstance(decoder.decode(envelope("solusdt@trade", trade_data(s="SOLUSDT"))), Trade)


@pytest.mark.parametrize("symbols", [None, "*", ["*"], "BTCUSDT,ETHUSDT", ["BTCUSDT"]])
def test_allow_list_forms(symbols: Any) -> None:
    decoder = BinanceDecoder(symbols=symbols)
    assert isinstance(decoder.decode(envelope("btcusdt@trade", trade_data())), Trade)


def test_out_of_order_per_symbol_and_kind() -> None:
    decoder = BinanceDecoder()
    assert isinstance(decoder.decode(envelope("btcusdt@trade", trade_data(E=2000))), Trade)
    assert isinstance(decoder.decode(envelope("btcusdt@trade", trade_data(E=2000))), Trade)
    late = decoder.decode(envelope("btcusdt@trade", trade_data(E=1999)))
    assert skip_reason(late) == SkipReason.OUT_OF_ORDER
    # Other kinds and symbols have their own clocks.
    assert isinstance(decoder.decode(envelope("btcusdt@ticker", ticker_data(E=1000))), Ticker)
    assert isinstance(
        decoder.decode(envelope("ethusdt@trade", trade_data(s="ETHUSDT", E=1000))), Trade
    )
    # aggTrade shares the trade clock of its symbol.
    agg = {"e": "aggTrade", "E": 1500, "s": "BTCUSDT", "a": 1, "p": "1", "q": "1", "m": True}
    assert skip_reason(decoder.decode(envelope("btcusdt@aggTrade", agg))) == (
        SkipReason.OUT_OF_ORDER
    )
    # Depth uses the envelope time.
    early = envelope("btcusdt@depth20@100ms", depth_data(), timestamp="2024-08-08T23:54:15.508Z")
    earlier = envelope("btcusdt@depth20@100ms", depth_data(), timestamp="2024-08-08T23:54:15.507Z")
    assert isinstance(decoder.decode(early), DepthSnapshot)
    assert skip_reason(decoder.decode(earlier)) == SkipReason.OUT_OF_ORDER
    decoder.reset()
    assert isinstance(decoder.decode(earlier), DepthSnapshot)


def test_out_of_order_tolerance_and_disabled_check() -> None:
    tolerant = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=100))
    assert isinstance(tolerant.decode(envelope("btcusdt@trade", trade_data(E=5000))), Trade)
    assert isinstance(tolerant.decode(envelope("btcusdt@trade", trade_data(E=4900))), Trade)
    # The reference stays the latest time seen, not the late event's.
    assert isinstance(tolerant.decode(envelope("btcusdt@trade", trade_data(E=4950))), Trade)
    late = tolerant.decode(envelope("btcusdt@trade", trade_data(E=4899)))
    assert skip_reason(late) == SkipReason.OUT_OF_ORDER
    unchecked = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None))
    for t in (5000, 1, 3000):
        assert isinstance(unchecked.decode(envelope("btcusdt@trade", trade_data(E=t))), Trade)


def test_out_of_order_reanchors_after_consecutive_rejections() -> None:
    decoder = BinanceDecoder(integrity=IntegrityOptions(reanchor_after=3))
    assert isinstance(decoder.decode(envelope("btcusdt@trade", trade_data(E=10**13))), Trade)
    results = [decoder.decode(envelope("btcusdt@trade", trade_data(E=1000 + i))) for i in range(5)]
    assert [isinstance(r, Trade) for r in results] == [False, False, False, True, True]
    never = BinanceDecoder(integrity=IntegrityOptions(reanchor_after=None))
    never.decode(envelope("btcusdt@trade", trade_data(E=10**13)))
    for i in range(100):
        result = never.decode(envelope("btcusdt@trade", trade_data(E=1000 + i)))
        assert skip_reason(result) == SkipReason.OUT_OF_ORDER


def test_order_state_is_bounded() -> None:
    decoder = BinanceDecoder(integrity=IntegrityOptions(max_tracked=10))
    for i in range(100):
        symbol = f"SYM{i}USDT"
        decoder.decode(envelope(f"{symbol.lower()}@trade", trade_data(s=symbol, E=1000)))
    trades = decoder._lines.last[0]
    assert len(trades) <= 10
    assert "SYM99USDT" in trades


@pytest.mark.parametrize(
    "stream",
    [
        "ftmusdt@kline",
        "btcusdt@kline_1m",
        "btcusdt@bookTicker",
        "btcusdt@markPrice",
        "btcusdt@markPrice@1s",
        "btcusdt@depth",
        "btcusdt@depth@100ms",
        "btcusdt@depth15",
        "btcusdt@depth20@fast",
        "!ticker@arr",
        "btcusdt@miniTicker",
        "btcusdt",
        "@trade",
        "",
    ],
)
def test_unsupported_streams_are_counted_skips(stream: str) -> None:
    result = decode(envelope(stream, {"e": "whatever", "E": 1}))
    assert skip_reason(result) == SkipReason.UNSUPPORTED_STREAM
    assert isinstance(result, Skip)
    assert result.stream == stream


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps({"stream": 5, "data": trade_data()}),
        envelope("btcusdt@trade", trade_data(s="btcusdt")),
        envelope("btcusdt@trade", trade_data(s="BTC-USDT")),
        envelope("btcusdt@trade", trade_data(s="")),
        envelope("btcusdt@trade", trade_data(s=42)),
        envelope("btcusdt@trade", trade_data(s=["BTCUSDT"])),
        envelope("btcusdt@trade", trade_data(m="yes")),
        envelope("btcusdt@trade", trade_data(E=-5)),
        envelope("btcusdt@trade", trade_data(E=_DROP), timestamp="yesterday"),
        envelope("btcusdt@trade", trade_data(E=_DROP), timestamp=[2024]),
        envelope("btc-usdt@depth20@100ms", depth_data()),
        envelope("btcusdt@depth20@100ms", {"bids": "none", "asks": []}),
        envelope("btcusdt@depth20@100ms", depth_data(bids=[["100"]])),
        envelope("btcusdt@depth20@100ms", depth_data(bids=["100"])),
        envelope("btcusdt@depth20@100ms", depth_data(), timestamp="1969-12-31T23:59:59Z"),
        envelope("btcusdt@ticker", ticker_data(s="BTC USDT")),
    ],
)
def test_invalid_value(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.INVALID_VALUE


def test_skip_carries_the_stream() -> None:
    result = decode(envelope("btcusdt@trade", trade_data(p="abc")))
    assert isinstance(result, Skip)
    assert result.stream == "btcusdt@trade"
    assert "p" in result.detail


# ------------------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-08-08T23:54:14.152400Z", 1723161254152),
        ("2024-08-08T23:54:14.152Z", 1723161254152),
        ("2024-08-08T23:54:14.1Z", 1723161254100),
        ("2024-08-08T23:54:14.999999Z", 1723161254999),
        ("2024-08-08T23:54:14Z", 1723161254000),
        ("2024-08-08T23:54:14.152+00:00", 1723161254152),
        ("2024-08-09T01:54:14.152+02:00", 1723161254152),
        ("2024-08-08T23:54:14.152", 1723161254152),
        ("2024-08-08 23:54:14.152Z", 1723161254152),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_iso_timestamps(text: str, expected: int) -> None:
    assert iso_to_epoch_ms(text) == expected


@pytest.mark.parametrize(
    "text", ["2024-08-08T23:54:60Z", "2024-08-08T23:54:1xZ", "2024-13-08T23:54:14Z", "tomorrow"]
)
def test_bad_iso_timestamps_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError
        iso_to_epoch_ms(text)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from(["Z", "+00:00"]),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_fast_timestamp_path_matches_fromisoformat(
    moment: datetime, suffix: str, spec: str
) -> None:
    text = moment.isoformat(timespec=spec) + suffix
    parsed = datetime.fromisoformat(text)
    expected = (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert iso_to_epoch_ms(text) == expected


# ------------------------------------------------------------------------------ stats


def test_decode_stats_counts_and_samples() -> None:
    stats = DecodeStats(max_samples=2)
    stats.record(decode(envelope("btcusdt@trade", trade_data())))
    stats.record(decode_envelope(envelope("btcusdt@trade", trade_data())))
    stats.record(decode(b"{"), line=3)
    stats.record(decode(envelope("btcusdt@kline_1m", {})), line=4)
    stats.record(decode(envelope("btcusdt@kline_5m", {})), line=5)
    stats.record(decode(envelope("btcusdt@depth@100ms", {})), line=6)
    stats.record(Skip("decoder_error", "boom"))
    assert stats.by_type == {"trade": 2}
    assert stats.by_reason == {"malformed_json": 1, "unsupported_stream": 3, "decoder_error": 1}
    assert stats.skipped is stats.by_reason
    assert stats.skipped_by_reason is stats.by_reason
    assert stats.unsupported_by_kind == {"kline": 2, "depth_diff": 1}
    assert stats.messages_by_type() == {"depth_diff": 1, "kline": 2, "trade": 2}
    assert (stats.decoded_total, stats.skipped_total, stats.total) == (2, 5, 7)
    assert [(s.line, s.reason) for s in stats.samples] == [
        (3, "malformed_json"),
        (4, "unsupported_stream"),
    ]
    summary = stats.as_dict()
    assert summary["decoded"] == 2
    assert summary["skipped"] == 5
    other = DecodeStats()
    other.record(decode(envelope("btcusdt@ticker", ticker_data())))
    other.record(Skip(SkipReason.TOO_LARGE))
    stats.merge(other)
    assert stats.by_type == {"trade": 2, "ticker": 1}
    assert stats.by_reason["too_large"] == 1


def test_unsupported_kinds_are_bounded() -> None:
    stats = DecodeStats()
    for i in range(100):
        stats.record(Skip(SkipReason.UNSUPPORTED_STREAM, "", f"x@kind{i}"))
    assert len(stats.unsupported_by_kind) <= 33
    assert sum(stats.unsupported_by_kind.values()) == 100
    assert stream_kind(None) == "other"
    assert stream_kind("nosuffix") == "other"


# ------------------------------------------------------------------------------ fuzzing

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

_STREAMS = [
    "btcusdt@trade",
    "btcusdt@aggTrade",
    "btcusdt@ticker",
    "btcusdt@depth20@100ms",
    "btcusdt@depth5",
    "btcusdt@kline_1m",
    "whatever",
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_valid_outcome(BinanceDecoder().decode(raw))
    assert_valid_outcome(decode(raw))
    result = decode_envelope(raw)
    if not isinstance(result, Skip):
        assert_valid_outcome(result.event)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_fuzz_arbitrary_json_never_raises(value: object) -> None:
    assert_valid_outcome(decode(orjson.dumps(value)))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_STREAMS), _json, st.one_of(st.none(), _json))
def test_fuzz_envelopes_with_arbitrary_data(stream: str, data: object, stamp: object) -> None:
    raw = orjson.dumps({"stream": stream, "data": data, "timestamp": stamp})
    assert_valid_outcome(decode(raw))
    assert_valid_outcome(decode(raw.decode()))


_FIELD_VALUES = st.one_of(
    _json,
    st.sampled_from(["NaN", "-1", "0", "1e999", "", "  5 ", "0.0", "1_000", "١٢"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_real_messages_with_a_field_replaced(
    capture_sample: list[bytes], data: st.DataObject
) -> None:
    raw = data.draw(st.sampled_from(capture_sample))
    message = orjson.loads(raw)
    target = message["data"]
    key = data.draw(st.sampled_from(sorted(target)))
    if key in ("bids", "asks") and target[key] and data.draw(st.booleans()):
        level = data.draw(st.integers(0, len(target[key]) - 1))
        side = data.draw(st.integers(0, 1))
        target[key][level][side] = data.draw(_FIELD_VALUES)
    elif data.draw(st.booleans()):
        target[key] = data.draw(_FIELD_VALUES)
    else:
        del target[key]
    mutated = orjson.dumps(message)
    assert_valid_outcome(decode(mutated))
    assert_same_outcome(mutated)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_real_messages_with_bytes_mutated(
    capture_sample: list[bytes], data: st.DataObject
) -> None:
    raw = bytearray(data.draw(st.sampled_from(capture_sample)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        byte = data.draw(st.sampled_from(b'"0123456789.,[]{}-eE:x \\\x00\xff'))
        if action == "delete":
            del raw[position]
        elif action == "replace":
            raw[position] = byte
        else:
            raw.insert(position, byte)
    mutated = bytes(raw)
    assert_valid_outcome(decode(mutated))
    assert_same_outcome(mutated)


def assert_same_outcome(raw: bytes) -> None:
    """The depth shortcut (bytes) and the exact path (str) agree on every input."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    fast = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None)).decode(raw)
    exact = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None)).decode(text)
    if isinstance(fast, Skip) or isinstance(exact, Skip):
        assert isinstance(fast, Skip)
        assert isinstance(exact, Skip)
        assert fast.reason == exact.reason
    else:
        assert fast == exact


@pytest.fixture(scope="module")
def capture_sample(capture_lines: list[bytes]) -> list[bytes]:
    """A few of each kind (depth first: the interesting parser)."""
    depth = [line for line in capture_lines if b"@depth" in line][:20]
    trades = [line for line in capture_lines if b"@trade" in line][:10]
    tickers = [line for line in capture_lines if b"@ticker" in line][:10]
    return depth + trades + tickers


@pytest.mark.parametrize(
    "raw",
    [
        # Quote merges that only look like numbers once quotes are removed: must stay errors.
        b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15Z",'
        b'"data":{"bids":[["1""2.5","1.0"]],"asks":[["3.0","1.0"]]}}',
        b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15Z",'
        b'"data":{"bids":[["1.5"2,"1.0"]],"asks":[["3.0","1.0"]]}}',
    ],
)
def test_depth_shortcut_never_repairs_malformed_json(raw: bytes) -> None:
    assert skip_reason(decode(raw)) == SkipReason.MALFORMED_JSON


def test_depth_shortcut_with_a_decoy_bids_key_elsewhere() -> None:
    message = {
        "stream": "btcusdt@depth20@100ms",
        "_otel_trace_context": {"note": "x"},
        "decoy": {"bids": [["5.0", "1.0"]], "asks": [["6.0", "1.0"]]},
        "data": {"bids": [["1.0", "2.0"]], "asks": [["1.5", "1.0"]]},
        "timestamp": "2024-08-08T23:54:15Z",
    }
    event = decode(orjson.dumps(message))
    assert event == DepthSnapshot("BTCUSDT", 1723161255000, ((1.0, 2.0),), ((1.5, 1.0),))


def test_trusted_constructors_build_every_field() -> None:
    trade = binance._make_trade("BTCUSDT", 1, 2, 3.0, 4.0, False)
    assert rebuilt(trade) == trade
    depth = binance._make_depth("BTCUSDT", 1, ((1.0, 1.0),), ((2.0, 1.0),))
    assert rebuilt(depth) == depth
