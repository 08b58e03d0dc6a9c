"""The compiled path of the Binance codec (``adapters.wire.binance_fast``) decodes exactly like
the plain path: same events, same skips (reason, detail, stream), on fuzzed input.

Bytes input tries the compiled path first; str input always takes the plain path, which is the
reference. Every comparison uses fresh stateless decoders, so the order check plays no part.
"""

from __future__ import annotations

import gzip
import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.wire.binance import BinanceDecoder
from adapters.wire.binance_fast import parse_usual
from adapters.wire.binance_streams import classify_stream
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.stats import Decoded, Skip, SkipReason
from domain.market import DepthSnapshot, MarketEvent, Trade
from tests.data import CAPTURE, capture_lines

pytestmark = pytest.mark.unit


HEAD = b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15.123Z","data":{'
TAIL = b"}}"


def spot(bids: bytes, asks: bytes = b'[["2.5","1.0"]]', extra: bytes = b"") -> bytes:
    return HEAD + b'"lastUpdateId":1,' + extra + b'"bids":' + bids + b',"asks":' + asks + TAIL


def dumps(message: object) -> bytes:
    """JSON with integers of any size (NaN and infinities as the non-JSON literals)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def compiled_takes(raw: bytes) -> bool:
    return parse_usual(raw, classify_stream) is not None


def comparable(result: Decoded | Skip) -> object:
    """A result, with malformed-JSON details left out (orjson words them by input type)."""
    if isinstance(result, Skip) and result.reason == SkipReason.MALFORMED_JSON:
        return ("skip", result.reason)
    return result


def compiled_event(raw: bytes) -> MarketEvent:
    """The event of ``raw``: the compiled path takes it and decodes it as the plain one does."""
    assert compiled_takes(raw)
    result = same_both_ways(raw)
    assert isinstance(result, Decoded), result
    return result.event


def same_both_ways(raw: bytes) -> Decoded | Skip:
    compiled = BinanceDecoder(
        integrity=IntegrityOptions(out_of_order_tolerance_ms=None)
    ).decode_envelope(raw)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        assert isinstance(compiled, Skip), raw
        assert compiled.reason == SkipReason.MALFORMED_JSON
        return compiled
    plain = BinanceDecoder(
        integrity=IntegrityOptions(out_of_order_tolerance_ms=None)
    ).decode_envelope(text)
    assert comparable(compiled) == comparable(plain), raw
    event = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None)).decode(raw)
    assert event == (compiled.event if isinstance(compiled, Decoded) else compiled), raw
    return compiled


def test_well_formed_books_take_the_compiled_path_and_match() -> None:
    raw = spot(b'[["2.4","1.5"],["2.3","0.25"]]', b'[["2.5","1.0"],["2.6","3.0"]]')
    assert compiled_takes(raw)
    assert same_both_ways(raw) == Decoded(
        DepthSnapshot(
            "BTCUSDT", 1723161255123, ((2.4, 1.5), (2.3, 0.25)), ((2.5, 1.0), (2.6, 3.0))
        ),
        None,
        None,
        "btcusdt@depth20@100ms",
    )


def test_an_empty_side_takes_the_compiled_path() -> None:
    raw = spot(b"[]")
    assert compiled_event(raw) == DepthSnapshot("BTCUSDT", 1723161255123, (), ((2.5, 1.0),))


def test_futures_book_takes_the_compiled_path() -> None:
    raw = (
        b'{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate","E":1723161255700,'
        b'"s":"BTCUSDT","b":[["61830.1","2.5"]],"a":[["61830.2","0.5"]]}}'
    )
    assert compiled_event(raw) == DepthSnapshot(
        "BTCUSDT", 1723161255700, ((61830.1, 2.5),), ((61830.2, 0.5),)
    )


def test_every_message_of_the_bundled_capture_takes_the_compiled_path_and_matches() -> None:
    with gzip.open(CAPTURE, "rb") as handle:
        lines = [line for line in handle if line.strip()][:3000]
    assert all(compiled_takes(line) for line in lines)
    for line in lines:
        assert not isinstance(same_both_ways(line), Skip)


@pytest.mark.parametrize(
    "bids",
    [
        b'[7["1.5","1.0"]]',
        b'[["1.5",".","1.0"]]',
        b'[["1.0,2.0"]]',
        b'[["1.0","2.0","3.0"],["4.0"]]',
        b'[["1.5","1.0"]],"bids":[["1.5","1.0"]]',
        # Numbers float() reads but JSON does not, or reads differently.
        b'[["01.5","1.0"]]',
        b'[["1.","1.0"]]',
        b'[[".5","1.0"]]',
        b'[["15","1.0"]]',
        b'[["1.2.3","1.0"]]',
        b'[["1.5e1","1.0"]]',
        b'[["-1.5","1.0"]]',
        b'[[" 1.5","1.0"]]',
        b'[["1_0","1.0"]]',
        b'[["+1.5","1.0"]]',
        b'[["","1.0"]]',
        b'[["\\u0031.5","1.0"]]',
        # Not finite, zero, a value that rounds to zero, one that overflows.
        b'[["inf","1.0"]]',
        b'[["Infinity","1.0"]]',
        b'[["nan","1.0"]]',
        b'[["1.5","0.00000000"]]',
        b'[["1.5","0.' + b"0" * 400 + b'1"]]',
        b'[["1' + b"0" * 400 + b'.5","1.0"]]',
        b'[["0.0","1.0"]]',
        b'[[1e400,"1.0"]]',
        # JSON values of other types.
        b'[[true,"1.0"]]',
        b'[[null,"1.0"]]',
        b'[["1.5",1]]',
        b"[[15,2.5]]",
        b"[[18446744073709551616,1]]",
        b'[["1.5"]]',
        b'{"1.5":"1.0"}',
    ],
)
def test_near_misses_decode_like_the_plain_path(bids: bytes) -> None:
    same_both_ways(spot(bids))


def test_unusual_envelopes_decode_like_the_plain_path() -> None:
    for raw in (
        spot(b'[["1.5","1.0"]]', extra=b'"bids":[["0.5","1.0"]],'),  # duplicate key
        spot(b'[["1.5","1.0"]]', extra=b'"E":1723161255700,'),
        spot(b'[["1.5","1.0"]]', extra=b'"E":"1723161255700",'),
        spot(b'[["1.5","1.0"]]', extra=b'"E":1.7e12,'),
        spot(b'[["1.5","1.0"]]', extra=b'"E":99999999999999999999999,'),
        spot(b'[["1.5","1.0"]]', extra=b'"E":-5,'),
        spot(b'[["1.5","1.0"]]', extra=b'"note":1,'),
        b'{"stream":"btcusdt@depth20@100ms","timestamp":1723161255123,'
        b'"data":{"bids":[["1.5","1.0"]],"asks":[["2.5","1.0"]]}}',
        b'{"stream":"btcusdt@depth20@100ms","data":{"bids":[["1.5","1.0"]],"asks":[]}}',
        b'{"stream":"btcusdt@depth20@100ms","timestamp":"x",'
        b'"data":{"bids":[["1.5","1.0"]],"asks":[]}}',
        b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15Z",'
        b'"decoy":{"bids":[["5.0","1.0"]]},"data":{"bi\\u0064s":[],"\\u0061sks":[]}}',
        b'{"stream":"btcusdt@depth20@100ms","data":{"E":1723161255700,"s":"BTCUSDT",'
        b'"bids":[["2.0","1.0"]],"asks":[["3.0","1.0"]],"b":[["1.0","1.0"]],"a":[["4.0","1.0"]]}}',
        b'{"stream":"btcusdt@depth20@100ms","data":{"E":1723161255700,"s":7,'
        b'"b":[["1.0","1.0"]],"a":[["4.0","1.0"]]}}',
        b'{"stream":"btcusdt@depth20@100ms","data":{"E":1723161255700,"s":"",'
        b'"b":[["1.0","1.0"]],"a":[["4.0","1.0"]]}}',
        b'{"stream":"btcusdt@depth20@100ms","data":[]}',
        b'{"stream":"btcusdt@depth20@100ms","data":null}',
        b'{"stream":"btcusdt@kline_1m","data":{}}',
        b'{"stream":7,"data":{}}',
        b'{"stream":7,"message_id":"@depth","data":{"bids":[],"asks":[]}}',
        b'{"stream":"btcusdt@kline_1m","message_id":"@depth","data":{"bids":[],"asks":[]}}',
        b'{"stream":"btcusdt@ticker","message_id":"@trade\\"","data":{"s":"BTCUSDT","E":1}}',
        b'{"stream":"btcusdt@aggTrade","message_id":"@trade\\"",'
        b'"data":{"s":"BTCUSDT","E":1,"t":1,"p":"1.5","q":"2","m":true}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","E":1,"a":1,"p":"1.5","q":"2","m":true}}',
        b'{"stream":"btcusdt@depth20@100ms","data":{"bids":[["1.5","1.0"]],"asks":[]}',
        b'{"stream":"btcusdt@ticker","data":{"s":"BTCUSDT","E":1,"c":"1"}}',
        b'{"stream":"btcusdt@ticker","data":{"s":"BTCUSDT","E":1,"c":"1","c":"2"}}',
        b'{"stream":"btcusdt@trade","_otel_trace_context":{"traceparent":"00-1"},'
        b'"message_id":"m-1","data":{"s":"BTCUSDT","E":1,"t":1,"p":"1.5","q":"2","m":true}}',
        b'{"stream":"btcusdt@trade","_otel_trace_context":{"traceparent":1},'
        b'"message_id":5,"data":{"s":"BTCUSDT","E":1,"t":1,"p":"1.5","q":"2","m":true}}',
        b'\xef\xbb\xbf{"stream":"btcusdt@trade","data":{}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","E":1,"t":1,"p":"1.5","q":"\xff"}}',
    ):
        same_both_ways(raw)


# --- fuzzing --------------------------------------------------------------------------------

_decimal_text = st.one_of(
    st.floats().map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str),
    st.from_regex(r"\A[ +-]?[0-9]{0,12}(\.[0-9]{0,10})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.sampled_from(["inf", "-inf", "NaN", "Infinity", "1_000.5", " 2.5", "0", "-0", ""]),
    st.text(max_size=8),
)
_json_value = st.one_of(
    _decimal_text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_level = st.one_of(
    st.tuples(_decimal_text, _decimal_text).map(list),
    st.lists(_json_value, max_size=3),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bids=st.lists(_level, max_size=6),
    asks=st.lists(_level, max_size=6),
    futures=st.booleans(),
    event_time=st.one_of(st.none(), _json_value),
    timestamp=st.one_of(st.none(), st.just("2024-08-08T23:54:15.123Z"), _json_value),
)
@example(bids=[["2.0", "1.0"]], asks=[["3.0", "1.0"]], futures=False, event_time=None,
         timestamp="2024-08-08T23:54:15.123Z")  # fmt: skip
def test_fuzzed_books_decode_like_the_plain_path(
    bids: list[object],
    asks: list[object],
    futures: bool,
    event_time: object,
    timestamp: object,
) -> None:
    data: dict[str, object] = (
        {"e": "depthUpdate", "s": "BTCUSDT", "b": bids, "a": asks}
        if futures
        else {"lastUpdateId": 1, "bids": bids, "asks": asks}
    )
    if event_time is not None:
        data["E"] = event_time
    message: dict[str, object] = {"stream": "btcusdt@depth20@100ms", "data": data}
    if timestamp is not None:
        message["timestamp"] = timestamp
    same_both_ways(dumps(message))


_trade_field = st.one_of(st.just(None), _json_value)


@settings(max_examples=200, deadline=None)
@given(
    stream=st.sampled_from(["btcusdt@trade", "btcusdt@aggTrade", "BTCUSDT@trade", "@trade"]),
    symbol=st.one_of(st.sampled_from(["BTCUSDT", "btcusdt", "BTCUSDTÉ", ""]), _json_value),
    price=st.one_of(_decimal_text, _json_value),
    quantity=st.one_of(_decimal_text, _json_value),
    trade_id=st.one_of(st.integers(min_value=-(2**65), max_value=2**65), _trade_field),
    maker=st.one_of(st.booleans(), _trade_field),
    event_time=st.one_of(st.integers(min_value=-(2**65), max_value=2**65), _trade_field),
    extra=st.dictionaries(st.sampled_from(["T", "M", "f", "l", "x", "b"]), _json_value),
    drop=st.sets(st.sampled_from(["s", "p", "q", "t", "a", "m", "E"])),
)
def test_fuzzed_trades_decode_like_the_plain_path(
    stream: str,
    symbol: object,
    price: object,
    quantity: object,
    trade_id: object,
    maker: object,
    event_time: object,
    extra: dict[str, object],
    drop: set[str],
) -> None:
    data = {
        "e": "trade",
        "s": symbol,
        "p": price,
        "q": quantity,
        "t": trade_id,
        "a": trade_id,
        "m": maker,
        "E": event_time,
        **extra,
    }
    for key in drop:
        data.pop(key, None)
    raw = dumps({"stream": stream, "data": data, "timestamp": "2024-08-08T23:54:15Z"})
    same_both_ways(raw)


def _capture_samples() -> list[bytes]:
    lines = capture_lines()
    by_kind: dict[bytes, bytes] = {}
    for line in lines:
        by_kind.setdefault(line[: line.find(b'","data"')], line)
    return sorted(by_kind.values())[:3] + lines[:1] + lines[-1:]


_SAMPLES = _capture_samples()


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(_SAMPLES),
    at=st.floats(min_value=0.0, max_value=1.0),
    cut=st.integers(min_value=0, max_value=4),
    insert=st.sampled_from(
        [b"", b"0", b"-", b'"', b",", b"]", b"[", b"}", b" ", b"e", b"\\", b"\xff"]
    ),
)
def test_mutated_capture_messages_decode_like_the_plain_path(
    sample: bytes, at: float, cut: int, insert: bytes
) -> None:
    position = math.floor(at * len(sample))
    same_both_ways(sample[:position] + insert + sample[position + cut :])


def test_the_compiled_path_builds_ordinary_domain_events() -> None:
    raw = (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255700,"s":"BTCUSDT",'
        b'"t":7,"p":"61830.1","q":"0.5","T":1723161255700,"m":false,"M":true}}'
    )
    assert compiled_event(raw) == Trade("BTCUSDT", 1723161255700, 7, 61830.1, 0.5, False)
