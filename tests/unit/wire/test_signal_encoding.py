"""Signals on the wire: the trade-engine contract, deterministic bytes, round trips."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wire.signals import (
    DEFAULT_SOURCE,
    REQUIRED_FIELDS,
    decode_signal,
    encode_signal,
    format_timestamp_ms,
    signal_to_wire,
    validate_trade_engine_contract,
)
from domain.signal import Action, ConfigStamp, JsonValue, Signal, signal_id_for

pytestmark = pytest.mark.unit

T_MS = 1723161255343


def make_signal(action: Action = Action.BUY, **changes: Any) -> Signal:
    buy = action is Action.BUY
    fields: dict[str, Any] = {
        "signal_id": signal_id_for("orderbook_skew", "BTCUSDT", action, T_MS, 3),
        "strategy_id": "orderbook_skew",
        "symbol": "BTCUSDT",
        "action": action,
        "confidence": 0.8,
        "price": 50000.0,
        "quantity": 0.002,
        "current_price": 50000.5,
        "stop_loss": 49500.0 if buy else 50500.0,
        "take_profit": 50750.0 if buy else 49250.0,
        "event_time_ms": T_MS,
        "config": ConfigStamp(
            version=3,
            parameters={"buy_threshold": 1.2, "enabled": True, "top_levels": 5},
            source="global",
            is_override=False,
        ),
        "indicators": {"ratio": 1.5, "bid_volume": 12.0},
        "metadata": {"top_bid": 50000.0, "top_ask": 50001.0},
    }
    fields.update(changes)
    return Signal(**fields)


def test_wire_fields_follow_the_trade_engine_contract() -> None:
    signal = make_signal()
    payload = signal_to_wire(signal, "rs-test")
    assert payload == {
        "signal_id": signal.signal_id,
        "strategy_id": "orderbook_skew",
        "strategy": "orderbook_skew",
        "source": "rs-test",
        "symbol": "BTCUSDT",
        "action": "buy",
        "confidence": 0.8,
        "strength": "strong",
        "price": 50000.0,
        "quantity": 0.002,
        "current_price": 50000.5,
        "timeframe": "tick",
        "stop_loss": 49500.0,
        "take_profit": 50750.0,
        "indicators": {"ratio": 1.5, "bid_volume": 12.0},
        "metadata": {
            "top_bid": 50000.0,
            "top_ask": 50001.0,
            "strategy_config": {
                "version": 3,
                "parameters": {"buy_threshold": 1.2, "enabled": True, "top_levels": 5},
                "source": "global",
                "is_override": False,
            },
        },
        "timestamp": "2024-08-08T23:54:15.343Z",
    }
    assert validate_trade_engine_contract(payload) == []
    assert signal_to_wire(signal)["source"] == DEFAULT_SOURCE == "realtime-strategies"


def test_sell_signal_is_valid_and_lowercase() -> None:
    payload = orjson.loads(encode_signal(make_signal(Action.SELL, confidence=0.95)))
    assert payload["action"] == "sell"
    assert payload["strength"] == "extreme"
    assert validate_trade_engine_contract(payload) == []


def test_trace_context_is_passed_on() -> None:
    context = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    payload = orjson.loads(encode_signal(make_signal(), trace_context=context))
    assert payload["_otel_trace_context"] == context
    assert "_otel_trace_context" not in orjson.loads(encode_signal(make_signal()))


def test_encoding_is_deterministic() -> None:
    first = encode_signal(make_signal())
    reordered = make_signal(
        metadata={"top_ask": 50001.0, "top_bid": 50000.0},
        indicators={"bid_volume": 12.0, "ratio": 1.5},
    )
    assert encode_signal(make_signal()) == first
    assert encode_signal(reordered) == first
    assert first.startswith(b'{"action":"buy","confidence":0.8,')
    keys = list(orjson.loads(first))
    assert keys == sorted(keys)
    assert b'": ' not in first
    assert b', "' not in first


@pytest.mark.parametrize(
    ("event_time_ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (T_MS, "2024-08-08T23:54:15.343Z"),
        (1723161255000, "2024-08-08T23:54:15.000Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_timestamp_format(event_time_ms: int, text: str) -> None:
    assert format_timestamp_ms(event_time_ms) == text


def test_round_trip() -> None:
    for signal in (make_signal(), make_signal(Action.SELL, timeframe="1m", metadata={})):
        assert decode_signal(encode_signal(signal)) == signal
        assert decode_signal(signal_to_wire(signal)) == signal


def test_decode_rejects_non_signals() -> None:
    with pytest.raises(ValueError, match="not a signal"):
        decode_signal(b"{}")
    with pytest.raises(ValueError, match="not a signal"):
        decode_signal(b"[")
    payload = signal_to_wire(make_signal())
    payload["action"] = "hold"
    with pytest.raises(ValueError, match="hold"):
        decode_signal(payload)


_finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
_metadata_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _finite | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(list(Action)),
    price=st.floats(min_value=1e-6, max_value=1e7, allow_nan=False),
    sl_pct=st.floats(min_value=0.001, max_value=0.5),
    tp_pct=st.floats(min_value=0.001, max_value=0.5),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    quantity=st.floats(min_value=1e-8, max_value=1e6),
    event_time_ms=st.integers(min_value=0, max_value=253402300799999),
    version=st.integers(min_value=1, max_value=10**6),
    indicators=st.dictionaries(st.text(max_size=8), _finite, max_size=4),
    metadata=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "strategy_config"), _metadata_values, max_size=4
    ),
    parameters=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.booleans() | st.integers(-1000, 1000) | _finite,
        max_size=4,
    ),
)
def test_round_trip_property(
    action: Action,
    price: float,
    sl_pct: float,
    tp_pct: float,
    confidence: float,
    quantity: float,
    event_time_ms: int,
    version: int,
    indicators: dict[str, float],
    metadata: dict[str, JsonValue],
    parameters: dict[str, bool | int | float],
) -> None:
    buy = action is Action.BUY
    signal = Signal(
        signal_id=signal_id_for("s", "BTCUSDT", action, event_time_ms, version),
        strategy_id="trade_momentum",
        symbol="ETHUSDT",
        action=action,
        confidence=confidence,
        price=price,
        quantity=quantity,
        current_price=price,
        stop_loss=price * (1 - sl_pct) if buy else price * (1 + sl_pct),
        take_profit=price * (1 + tp_pct) if buy else price * (1 - tp_pct),
        event_time_ms=event_time_ms,
        config=ConfigStamp(version, parameters, "symbol", True),
        indicators=indicators,
        metadata=metadata,
    )
    encoded = encode_signal(signal)
    assert decode_signal(encoded) == signal
    assert encode_signal(decode_signal(encoded)) == encoded
    assert validate_trade_engine_contract(orjson.loads(encoded)) == []


# ------------------------------------------------------------------------------ the validator


def valid_payload() -> dict[str, Any]:
    return dict(orjson.loads(encode_signal(make_signal())))


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        del payload[name]

    return mutate


def _set(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload[name] = value

    return mutate


def _set_config(value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload["metadata"]["strategy_config"] = value

    return mutate


VIOLATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    *(
        (f"missing {name}", _drop(name), f"missing required field {name!r}")
        for name in REQUIRED_FIELDS
    ),
    ("null price", _set("price", None), "missing required field 'price'"),
    ("strategy differs", _set("strategy", "other"), "must equal strategy_id"),
    ("empty source", _set("source", ""), "source must be a non-empty string"),
    ("numeric symbol", _set("symbol", 5), "symbol must be a non-empty string"),
    ("lower symbol", _set("symbol", "btcusdt"), "upper-case"),
    ("upper action", _set("action", "BUY"), "lowercase"),
    ("hold action", _set("action", "hold"), "action must be"),
    ("confidence > 1", _set("confidence", 1.2), "confidence must be within"),
    ("confidence < 0", _set("confidence", -0.1), "confidence must be within"),
    ("confidence text", _set("confidence", "0.8"), "confidence must be a finite number"),
    ("confidence bool", _set("confidence", True), "confidence must be a finite number"),
    ("strength mismatch", _set("strength", "weak"), "does not match confidence"),
    ("strength unknown", _set("strength", "huge"), "strength must be one of"),
    ("zero quantity", _set("quantity", 0), "quantity must be > 0"),
    ("negative quantity", _set("quantity", -1.0), "quantity must be > 0"),
    ("text price", _set("price", "50000"), "price must be a finite number"),
    ("zero current price", _set("current_price", 0.0), "current_price must be > 0"),
    ("numeric timestamp", _set("timestamp", T_MS), "timestamp must be an ISO-8601 string"),
    ("garbage timestamp", _set("timestamp", "soon"), "timestamp is not ISO-8601"),
    ("naive timestamp", _set("timestamp", "2024-08-08T23:54:15.343"), "must carry 'Z'"),
    ("stop loss above a buy", _set("stop_loss", 50100.0), "stop_loss 50100.0 must be below"),
    ("take profit below a buy", _set("take_profit", 49000.0), "must be above price"),
    ("stop loss at price", _set("stop_loss", 50000.0), "stop_loss 50000.0 must be below"),
    ("negative stop loss", _set("stop_loss", -1.0), "stop_loss must be > 0"),
    ("empty signal id", _set("signal_id", ""), "signal_id must be a non-empty string"),
    ("timeframe number", _set("timeframe", 1), "timeframe must be a string"),
    ("indicators list", _set("indicators", [1]), "indicators must be an object"),
    ("metadata list", _set("metadata", []), "metadata must be an object"),
    ("config not object", _set_config(3), "strategy_config must be an object"),
    ("config lacks version", _set_config({"parameters": {}}), "lacks 'version'"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in VIOLATIONS], ids=[n for n, _, _ in VIOLATIONS]
)
def test_validator_catches_each_violation(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    payload = valid_payload()
    mutate(payload)
    problems = validate_trade_engine_contract(payload)
    assert any(expected in p for p in problems), problems


def test_validator_sell_side_rules() -> None:
    payload = dict(orjson.loads(encode_signal(make_signal(Action.SELL))))
    assert validate_trade_engine_contract(payload) == []
    payload["stop_loss"] = 49000.0
    payload["take_profit"] = 51000.0
    problems = validate_trade_engine_contract(payload)
    assert any("stop_loss 49000.0 must be above price" in p for p in problems)
    assert any("take_profit 51000.0 must be below price" in p for p in problems)


def test_validator_optional_fields_may_be_absent() -> None:
    payload = valid_payload()
    for name in ("signal_id", "strength", "timeframe", "stop_loss", "take_profit", "metadata"):
        del payload[name]
    del payload["indicators"]
    assert validate_trade_engine_contract(payload) == []


def test_validator_age_check() -> None:
    payload = valid_payload()
    sent = datetime(2024, 8, 8, 23, 54, 15, 343000, tzinfo=UTC)
    assert validate_trade_engine_contract(payload, now=sent + timedelta(seconds=299)) == []
    stale = validate_trade_engine_contract(payload, now=sent + timedelta(seconds=301))
    assert len(stale) == 1
    assert "old" in stale[0]
    naive_now = (sent + timedelta(seconds=10)).replace(tzinfo=None)
    assert validate_trade_engine_contract(payload, now=naive_now) == []
    assert validate_trade_engine_contract(payload, now=sent, max_age_seconds=-1) != []


def test_validator_rejects_non_objects() -> None:
    assert validate_trade_engine_contract([1, 2]) == ["payload must be a JSON object, got list"]
    assert len(validate_trade_engine_contract({})) == len(REQUIRED_FIELDS)


def test_signal_fields_are_all_on_the_wire() -> None:
    """A new Signal field must be put on the wire (or consciously left off here)."""
    on_wire = set(signal_to_wire(make_signal()))
    not_verbatim = {"event_time_ms": "timestamp", "config": "metadata", "action": "action"}
    for field in dataclasses.fields(Signal):
        assert not_verbatim.get(field.name, field.name) in on_wire, field.name
