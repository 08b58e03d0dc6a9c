"""Signals on the wire: the trade engine's JSON contract (SPEC §4).

``encode_signal`` is deterministic: keys are sorted at every level and floats are written in
their shortest round-trip form, so the same signal always gives the same bytes (the backtest
output is byte-identical run to run). Non-finite floats in ``indicators``/``metadata`` are
written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import orjson

from adapters.wire.binance import iso_to_epoch_ms
from domain.params import ParamValue
from domain.signal import Action, ConfigStamp, JsonValue, Signal, Strength
from domain.symbol import is_symbol

DEFAULT_SOURCE: Final = "realtime-strategies"
TRACE_CONTEXT_FIELD: Final = "_otel_trace_context"
MAX_SIGNAL_AGE_SECONDS: Final = 300.0
"""The trade engine rejects signals whose timestamp is older than this."""

REQUIRED_FIELDS: Final = (
    "strategy_id",
    "strategy",
    "source",
    "symbol",
    "action",
    "confidence",
    "price",
    "quantity",
    "current_price",
    "timestamp",
)
"""Fields the trade engine requires (SPEC §4's starred fields, plus the timestamp it checks)."""

_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_STRATEGY_CONFIG_KEYS: Final = ("version", "parameters", "source", "is_override")


def format_timestamp_ms(event_time_ms: int) -> str:
    """Epoch ms → ISO-8601 UTC with milliseconds and ``Z``: ``2024-08-08T23:54:15.343Z``."""
    moment = _EPOCH_NAIVE + timedelta(milliseconds=event_time_ms)
    return moment.isoformat(timespec="milliseconds") + "Z"


def signal_to_wire(
    signal: Signal,
    source: str = DEFAULT_SOURCE,
    trace_context: Mapping[str, str] | None = None,
) -> dict[str, JsonValue]:
    """The trade-engine payload of ``signal``.

    ``metadata`` is the signal's metadata plus ``strategy_config`` (the effective config it
    was computed with; it replaces any ``strategy_config`` key of the signal's own metadata).
    ``trace_context``, when given, is added as ``_otel_trace_context``.
    """
    metadata: dict[str, JsonValue] = dict(signal.metadata)
    metadata["strategy_config"] = signal.config.as_dict()
    payload: dict[str, JsonValue] = {
        "signal_id": signal.signal_id,
        "strategy_id": signal.strategy_id,
        "strategy": signal.strategy_id,
        "source": source,
        "symbol": signal.symbol,
        "action": signal.action.value,
        "confidence": signal.confidence,
        "strength": signal.strength.value,
        "price": signal.price,
        "quantity": signal.quantity,
        "current_price": signal.current_price,
        "timeframe": signal.timeframe,
        "stop_loss": signal.stop_loss,
        "take_profit": signal.take_profit,
        "indicators": dict(signal.indicators),
        "metadata": metadata,
        "timestamp": format_timestamp_ms(signal.event_time_ms),
    }
    if trace_context:
        payload[TRACE_CONTEXT_FIELD] = dict(trace_context)
    return payload


def encode_signal(
    signal: Signal,
    source: str = DEFAULT_SOURCE,
    trace_context: Mapping[str, str] | None = None,
) -> bytes:
    """``signal_to_wire`` as compact JSON bytes with sorted keys (deterministic)."""
    return orjson.dumps(signal_to_wire(signal, source, trace_context), option=orjson.OPT_SORT_KEYS)


def decode_signal(raw: bytes | str | Mapping[str, Any]) -> Signal:
    """The inverse of :func:`encode_signal` (used by tests and consumers of our own output).

    Raises ValueError (or KeyError/TypeError wrapped as ValueError) on a payload that is not
    a valid signal.
    """
    try:
        payload: Mapping[str, Any] = raw if isinstance(raw, Mapping) else orjson.loads(raw)
        metadata = dict(payload.get("metadata") or {})
        stamp = metadata.pop("strategy_config")
        config = ConfigStamp(
            version=int(stamp["version"]),
            parameters=cast(dict[str, ParamValue], dict(stamp["parameters"])),
            source=str(stamp["source"]),
            is_override=bool(stamp["is_override"]),
        )
        return Signal(
            signal_id=str(payload["signal_id"]),
            strategy_id=str(payload["strategy_id"]),
            symbol=str(payload["symbol"]),
            action=Action(payload["action"]),
            confidence=float(payload["confidence"]),
            price=float(payload["price"]),
            quantity=float(payload["quantity"]),
            current_price=float(payload["current_price"]),
            stop_loss=float(payload["stop_loss"]),
            take_profit=float(payload["take_profit"]),
            event_time_ms=iso_to_epoch_ms(str(payload["timestamp"])),
            config=config,
            timeframe=str(payload.get("timeframe", "tick")),
            indicators=dict(payload.get("indicators") or {}),
            metadata=metadata,
        )
    except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a signal payload: {type(exc).__name__}: {exc}") from exc


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive(payload: Mapping[str, Any], name: str, problems: list[str]) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if not _is_number(value):
        problems.append(f"{name} must be a finite number, got {value!r}")
        return None
    if value <= 0:
        problems.append(f"{name} must be > 0, got {value!r}")
        return None
    return float(value)


def validate_trade_engine_contract(
    payload: object,
    *,
    now: datetime | None = None,
    max_age_seconds: float = MAX_SIGNAL_AGE_SECONDS,
) -> list[str]:
    """Every way ``payload`` breaks the trade engine's contract (empty list: it conforms).

    Checks the required fields, ``strategy == strategy_id``, lowercase ``action`` in
    {buy, sell}, 0 <= ``confidence`` <= 1 (and ``strength`` matching it when present),
    positive finite ``price``/``current_price``/``quantity``, an ISO-8601 string
    ``timestamp`` with a UTC offset (not older than ``max_age_seconds`` before ``now``, when
    ``now`` is given), stop-loss and take-profit on the correct side of ``price``, and the
    shape of ``metadata.strategy_config`` when present.
    """
    if not isinstance(payload, Mapping):
        return [f"payload must be a JSON object, got {type(payload).__name__}"]
    problems: list[str] = []
    for name in REQUIRED_FIELDS:
        if payload.get(name) is None:
            problems.append(f"missing required field {name!r}")

    for name in ("strategy_id", "strategy", "source", "symbol"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(f"{name} must be a non-empty string, got {value!r}")
    strategy_id = payload.get("strategy_id")
    strategy = payload.get("strategy")
    if strategy_id is not None and strategy is not None and strategy != strategy_id:
        problems.append(f"strategy {strategy!r} must equal strategy_id {strategy_id!r}")
    symbol = payload.get("symbol")
    if isinstance(symbol, str) and symbol and not is_symbol(symbol):
        problems.append(f"symbol must be upper-case ASCII letters and digits, got {symbol!r}")
    signal_id = payload.get("signal_id")
    if signal_id is not None and (not isinstance(signal_id, str) or not signal_id):
        problems.append(f"signal_id must be a non-empty string, got {signal_id!r}")

    action = payload.get("action")
    if action is not None and action not in ("buy", "sell"):
        problems.append(f"action must be 'buy' or 'sell' (lowercase), got {action!r}")

    confidence = payload.get("confidence")
    if confidence is not None:
        if not _is_number(confidence):
            problems.append(f"confidence must be a finite number, got {confidence!r}")
            confidence = None
        elif not 0.0 <= confidence <= 1.0:
            problems.append(f"confidence must be within [0, 1], got {confidence!r}")
            confidence = None
    strength = payload.get("strength")
    if strength is not None:
        names = {s.value for s in Strength}
        if strength not in names:
            problems.append(f"strength must be one of {sorted(names)}, got {strength!r}")
        elif confidence is not None and strength != Strength.of(float(confidence)).value:
            problems.append(f"strength {strength!r} does not match confidence {confidence!r}")

    price = _check_positive(payload, "price", problems)
    _check_positive(payload, "current_price", problems)
    _check_positive(payload, "quantity", problems)
    stop_loss = _check_positive(payload, "stop_loss", problems)
    take_profit = _check_positive(payload, "take_profit", problems)
    if price is not None and action in ("buy", "sell"):
        if stop_loss is not None:
            ok = stop_loss < price if action == "buy" else stop_loss > price
            if not ok:
                side = "below" if action == "buy" else "above"
                problems.append(f"stop_loss {stop_loss} must be {side} price {price} for {action}")
        if take_profit is not None:
            ok = take_profit > price if action == "buy" else take_profit < price
            if not ok:
                side = "above" if action == "buy" else "below"
                problems.append(
                    f"take_profit {take_profit} must be {side} price {price} for {action}"
                )

    _check_timestamp(payload.get("timestamp"), now, max_age_seconds, problems)

    timeframe = payload.get("timeframe")
    if timeframe is not None and not isinstance(timeframe, str):
        problems.append(f"timeframe must be a string, got {timeframe!r}")
    indicators = payload.get("indicators")
    if indicators is not None and not isinstance(indicators, Mapping):
        problems.append(f"indicators must be an object, got {type(indicators).__name__}")
    metadata = payload.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            problems.append(f"metadata must be an object, got {type(metadata).__name__}")
        elif "strategy_config" in metadata:
            stamp = metadata["strategy_config"]
            if not isinstance(stamp, Mapping):
                problems.append("metadata.strategy_config must be an object")
            else:
                problems.extend(
                    f"metadata.strategy_config lacks {key!r}"
                    for key in _STRATEGY_CONFIG_KEYS
                    if key not in stamp
                )
    return problems


def _check_timestamp(
    value: object, now: datetime | None, max_age_seconds: float, problems: list[str]
) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        problems.append(f"timestamp must be an ISO-8601 string, not {type(value).__name__}")
        return
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"timestamp is not ISO-8601: {value!r}")
        return
    if moment.tzinfo is None:
        problems.append(f"timestamp must carry 'Z' or a UTC offset: {value!r}")
        return
    if now is not None:
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        age = (now - moment).total_seconds()
        if age > max_age_seconds:
            problems.append(f"timestamp is {age:.0f} s old (> {max_age_seconds:.0f} s)")
