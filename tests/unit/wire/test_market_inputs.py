"""Dominance / quotes / on-chain codec: good input decodes, bad input is a counted Skip."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wire.integrity import UNCHECKED
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.stats import ALL_SKIP_REASONS, Decoded, DecodeStats, Skip, SkipReason
from domain.market import (
    DominanceObservation,
    ExchangeFlow,
    FlowDirection,
    MarketEvent,
    VenueQuote,
    WhaleTransfer,
)

pytestmark = pytest.mark.unit

ANY_SYMBOL = MarketInputDecoder(integrity=UNCHECKED)
"""Every symbol accepted, the default size limit, no order or duplicate memory (the format
tests share it; integrity: tests/unit/wire/test_market_input_integrity.py)."""
decode_dominance = ANY_SYMBOL.decode_dominance
decode_quote = ANY_SYMBOL.decode_quote
decode_onchain = ANY_SYMBOL.decode_onchain

T_ISO = "2024-08-08T23:54:15.343Z"
T_MS = 1723161255343


def raw(**fields: object) -> bytes:
    return orjson.dumps({k: v for k, v in fields.items() if v is not None})


def reason(result: object) -> str:
    assert isinstance(result, Skip), f"expected a Skip, got {result!r}"
    assert not result.detail.startswith("internal error"), result.detail
    return result.reason


def event_of(result: Decoded | Skip) -> MarketEvent:
    assert isinstance(result, Decoded), f"expected an event, got {result!r}"
    return result.event


DECODER = ANY_SYMBOL


# ------------------------------------------------------------------------------ dominance


@pytest.mark.parametrize("stamp", [T_ISO, T_MS, "2024-08-08T23:54:15.343+00:00", float(T_MS)])
@pytest.mark.parametrize("value", [56.2, "56.2"])
def test_dominance(stamp: object, value: object) -> None:
    event = event_of(decode_dominance(raw(btc_dominance=value, timestamp=stamp)))
    assert event == DominanceObservation(event_time_ms=T_MS, btc_dominance=56.2)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (raw(timestamp=T_ISO), SkipReason.MISSING_FIELD),
        (raw(btc_dominance=50), SkipReason.MISSING_FIELD),
        (raw(btc_dominance="lots", timestamp=T_ISO), SkipReason.NON_NUMERIC),
        (raw(btc_dominance=True, timestamp=T_ISO), SkipReason.NON_NUMERIC),
        (raw(btc_dominance=[50], timestamp=T_ISO), SkipReason.NON_NUMERIC),
        (raw(btc_dominance=101, timestamp=T_ISO), SkipReason.INVALID_VALUE),
        (raw(btc_dominance=-1, timestamp=T_ISO), SkipReason.INVALID_VALUE),
        (raw(btc_dominance="NaN", timestamp=T_ISO), SkipReason.INVALID_VALUE),
        (raw(btc_dominance=50, timestamp="last tuesday"), SkipReason.INVALID_VALUE),
        (raw(btc_dominance=50, timestamp=True), SkipReason.INVALID_VALUE),
        (raw(btc_dominance=50, timestamp={"ms": 1}), SkipReason.INVALID_VALUE),
        (raw(btc_dominance=50, timestamp=-5), SkipReason.INVALID_VALUE),
        (b"{", SkipReason.MALFORMED_JSON),
        (b"[56.2]", SkipReason.NOT_AN_OBJECT),
    ],
)
def test_bad_dominance(message: bytes, expected: str) -> None:
    assert reason(decode_dominance(message)) == expected
    assert reason(DECODER.decode(InputKind.DOMINANCE, message)) == expected


# ------------------------------------------------------------------------------ quotes


def test_quote_with_numbers_and_numeric_strings() -> None:
    expected = VenueQuote(venue="coinbase", symbol="BTCUSDT", event_time_ms=T_MS, bid=1.5, ask=2.0)
    message = raw(venue="coinbase", symbol="BTCUSDT", bid=1.5, ask=2, timestamp=T_ISO)
    assert event_of(decode_quote(message)) == expected
    message = raw(venue="coinbase", symbol="BTCUSDT", bid="1.5", ask="2.0", timestamp=T_MS)
    assert event_of(decode_quote(message)) == expected


def test_quote_names_are_normalised() -> None:
    message = raw(venue=" Kraken ", symbol="btc-usdt", bid=1, ask=1, timestamp=T_MS)
    event = event_of(decode_quote(message))
    assert isinstance(event, VenueQuote)
    assert (event.venue, event.symbol) == ("kraken", "BTCUSDT")
    slash = event_of(decode_quote(raw(venue="x", symbol="ETH/USDT", bid=1, ask=2, timestamp=0)))
    assert isinstance(slash, VenueQuote)
    assert slash.symbol == "ETHUSDT"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"symbol": "BTCUSDT", "bid": 1, "ask": 2}, SkipReason.MISSING_FIELD),
        ({"venue": "cb", "bid": 1, "ask": 2}, SkipReason.MISSING_FIELD),
        ({"venue": "cb", "symbol": "BTCUSDT", "ask": 2}, SkipReason.MISSING_FIELD),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": "x", "ask": 2}, SkipReason.NON_NUMERIC),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": 0, "ask": 2}, SkipReason.INVALID_PRICE),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": -1, "ask": 2}, SkipReason.INVALID_PRICE),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": 1, "ask": "inf"}, SkipReason.INVALID_PRICE),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": "NaN", "ask": 2}, SkipReason.INVALID_PRICE),
        ({"venue": "cb", "symbol": "BTCUSDT", "bid": 3, "ask": 2}, SkipReason.CROSSED_BOOK),
        ({"venue": 7, "symbol": "BTCUSDT", "bid": 1, "ask": 2}, SkipReason.INVALID_VALUE),
        ({"venue": "", "symbol": "BTCUSDT", "bid": 1, "ask": 2}, SkipReason.INVALID_VALUE),
        ({"venue": "cb", "symbol": "BTC USDT", "bid": 1, "ask": 2}, SkipReason.INVALID_VALUE),
        ({"venue": "cb", "symbol": "", "bid": 1, "ask": 2}, SkipReason.INVALID_VALUE),
    ],
)
def test_bad_quote(fields: dict[str, object], expected: str) -> None:
    assert reason(decode_quote(raw(timestamp=T_ISO, **fields))) == expected


def test_quote_symbol_allow_list() -> None:
    decoder = MarketInputDecoder(symbols="BTCUSDT")
    ok = raw(venue="cb", symbol="BTCUSDT", bid=1, ask=2, timestamp=T_MS)
    other = raw(venue="cb", symbol="DOGEUSDT", bid=1, ask=2, timestamp=T_MS)
    assert isinstance(decoder.decode_quote(ok), Decoded)
    assert reason(decoder.decode_quote(other)) == SkipReason.UNKNOWN_SYMBOL
    # Dominance is market-wide: never filtered.
    assert isinstance(decoder.decode_dominance(raw(btc_dominance=50, timestamp=T_MS)), Decoded)


# ------------------------------------------------------------------------------ on-chain


def test_whale_transfer() -> None:
    message = raw(
        type="whale_transfer",
        asset="btc",
        amount="250",
        direction="to_exchange",
        timestamp=T_ISO,
    )
    assert event_of(decode_onchain(message)) == WhaleTransfer(
        asset="BTC", event_time_ms=T_MS, amount=250.0, direction=FlowDirection.TO_EXCHANGE
    )
    message = raw(
        type="whale_transfer", asset="ETH", amount=1e4, direction="from_exchange", timestamp=T_MS
    )
    event = event_of(decode_onchain(message))
    assert isinstance(event, WhaleTransfer)
    assert event.direction is FlowDirection.FROM_EXCHANGE


def test_exchange_flow() -> None:
    message = raw(
        type="exchange_flow",
        asset="ETH",
        inflow=1200.5,
        outflow="800",
        period_seconds=3600,
        timestamp=T_ISO,
    )
    assert event_of(decode_onchain(message)) == ExchangeFlow(
        asset="ETH", event_time_ms=T_MS, inflow=1200.5, outflow=800.0, period_seconds=3600
    )
    float_period = raw(
        type="exchange_flow", asset="ETH", inflow=0, outflow=0, period_seconds=60.0, timestamp=0
    )
    event = event_of(decode_onchain(float_period))
    assert isinstance(event, ExchangeFlow)
    assert event.period_seconds == 60
    assert type(event.period_seconds) is int


WHALE = {"type": "whale_transfer", "asset": "BTC", "amount": 250, "direction": "to_exchange"}
FLOW = {"type": "exchange_flow", "asset": "ETH", "inflow": 1, "outflow": 2, "period_seconds": 60}


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        (WHALE, {"type": "price_alert"}, SkipReason.UNSUPPORTED_TYPE),
        (WHALE, {"type": None}, SkipReason.MISSING_FIELD),
        (WHALE, {"asset": None}, SkipReason.MISSING_FIELD),
        (WHALE, {"amount": None}, SkipReason.MISSING_FIELD),
        (WHALE, {"direction": None}, SkipReason.MISSING_FIELD),
        (WHALE, {"timestamp": None}, SkipReason.MISSING_FIELD),
        (WHALE, {"amount": "many"}, SkipReason.NON_NUMERIC),
        (WHALE, {"amount": 0}, SkipReason.INVALID_VALUE),
        (WHALE, {"amount": -3}, SkipReason.INVALID_VALUE),
        (WHALE, {"direction": "sideways"}, SkipReason.INVALID_VALUE),
        (WHALE, {"asset": "B-TC"}, SkipReason.INVALID_VALUE),
        (WHALE, {"type": 5}, SkipReason.INVALID_VALUE),
        (FLOW, {"inflow": None}, SkipReason.MISSING_FIELD),
        (FLOW, {"period_seconds": None}, SkipReason.MISSING_FIELD),
        (FLOW, {"outflow": []}, SkipReason.NON_NUMERIC),
        (FLOW, {"inflow": -1}, SkipReason.INVALID_VALUE),
        (FLOW, {"outflow": "inf"}, SkipReason.INVALID_VALUE),
        (FLOW, {"period_seconds": 0}, SkipReason.INVALID_VALUE),
        (FLOW, {"period_seconds": 1.5}, SkipReason.INVALID_VALUE),
        (FLOW, {"period_seconds": "inf"}, SkipReason.INVALID_VALUE),
    ],
)
def test_bad_onchain(base: dict[str, object], changes: dict[str, object], expected: str) -> None:
    fields = {"timestamp": T_ISO, **base, **changes}
    assert reason(decode_onchain(raw(**fields))) == expected


def test_onchain_allow_list_uses_the_usdt_pair() -> None:
    decoder = MarketInputDecoder(symbols=["BTCUSDT"])
    assert isinstance(decoder.decode_onchain(raw(timestamp=T_MS, **WHALE)), Decoded)
    eth = raw(timestamp=T_MS, **{**WHALE, "asset": "ETH"})
    assert reason(decoder.decode_onchain(eth)) == SkipReason.UNKNOWN_SYMBOL


# ------------------------------------------------------------------------------ common


def test_envelope_metadata_and_stream_name() -> None:
    context = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    message = orjson.dumps(
        {
            "btc_dominance": 55,
            "timestamp": T_MS,
            "message_id": "d-1",
            "_otel_trace_context": context,
        }
    )
    decoded = decode_dominance(message)
    assert isinstance(decoded, Decoded)
    assert decoded.message_id == "d-1"
    assert decoded.trace_context == context
    assert decoded.stream == "dominance"
    skipped = decode_quote(b"{")
    assert isinstance(skipped, Skip)
    assert skipped.stream == "quotes"


def test_decode_returns_the_bare_event() -> None:
    event = DECODER.decode("dominance", raw(btc_dominance=50, timestamp=T_MS))
    assert event == DominanceObservation(T_MS, 50.0)


def test_unknown_kind_and_too_large() -> None:
    assert reason(DECODER.decode("weather", b"{}")) == SkipReason.UNSUPPORTED_STREAM
    small = MarketInputDecoder(max_bytes=20)
    message = raw(btc_dominance=50, timestamp=T_ISO)
    assert reason(small.decode_dominance(message)) == SkipReason.TOO_LARGE
    assert reason(small.decode(InputKind.DOMINANCE, message.decode())) == SkipReason.TOO_LARGE


def test_stats_count_market_inputs() -> None:
    stats = DecodeStats()
    stats.record(decode_dominance(raw(btc_dominance=50, timestamp=T_MS)))
    stats.record(decode_quote(raw(venue="cb", symbol="BTCUSDT", bid=1, ask=2, timestamp=T_MS)))
    stats.record(decode_onchain(raw(timestamp=T_MS, **WHALE)))
    stats.record(decode_onchain(raw(timestamp=T_MS, **FLOW)))
    stats.record(decode_onchain(raw(timestamp=T_MS, **{**FLOW, "type": "x"})))
    assert stats.by_type == {"dominance": 1, "quote": 1, "whale_transfer": 1, "exchange_flow": 1}
    assert stats.by_reason == {"unsupported_type": 1}


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["whale_transfer", "exchange_flow", "to_exchange", "NaN", "BTC", T_ISO]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "btc_dominance",
        "timestamp",
        "venue",
        "symbol",
        "bid",
        "ask",
        "type",
        "asset",
        "amount",
        "direction",
        "inflow",
        "outflow",
        "period_seconds",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(InputKind)), st.dictionaries(_KEYS, _json, max_size=8))
def test_fuzz_never_raises(kind: InputKind, message: dict[str, object]) -> None:
    for result in (
        DECODER.decode(kind, orjson.dumps(message)),
        DECODER.decode_envelope(kind, orjson.dumps(message)),
    ):
        if isinstance(result, Skip):
            assert result.reason in ALL_SKIP_REASONS
            assert not result.detail.startswith("internal error"), result.detail
        else:
            event = result.event if isinstance(result, Decoded) else result
            fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
            assert type(event)(**fields) == event


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(InputKind)), st.binary(max_size=200))
def test_fuzz_bytes_never_raise(kind: InputKind, message: bytes) -> None:
    result = DECODER.decode(kind, message)
    if isinstance(result, Skip):
        assert result.reason in ALL_SKIP_REASONS
