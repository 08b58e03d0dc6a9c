"""Trading signals: what strategies emit, in the shape the trade engine consumes."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.params import ParamValue
from domain.state import flag, integer, mapping, number, text

# Fixed namespace so that signal ids are the same in every process, live or backtest.
SIGNAL_ID_NAMESPACE = uuid.UUID("6f1c3a52-0d7e-5b8e-9a41-2c3d4e5f6a7b")

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Strength(StrEnum):
    WEAK = "weak"
    MEDIUM = "medium"
    STRONG = "strong"
    EXTREME = "extreme"

    @classmethod
    def of(cls, confidence: float) -> Strength:
        """weak < 0.5 <= medium < 0.7 <= strong < 0.9 <= extreme."""
        if confidence < 0.5:
            return cls.WEAK
        if confidence < 0.7:
            return cls.MEDIUM
        if confidence < 0.9:
            return cls.STRONG
        return cls.EXTREME


@dataclass(frozen=True, slots=True)
class ConfigStamp:
    """The effective configuration a signal was computed with (``metadata.strategy_config``)."""

    version: int
    parameters: Mapping[str, ParamValue]
    source: str
    is_override: bool

    def as_dict(self) -> dict[str, JsonValue]:
        return {
            "version": self.version,
            "parameters": dict(self.parameters),
            "source": self.source,
            "is_override": self.is_override,
        }


def signal_id_for(
    strategy_id: str, symbol: str, action: Action, event_time_ms: int, config_version: int
) -> str:
    """Deterministic id: same strategy, symbol, action, event time and config version → same id."""
    key = f"{strategy_id}|{symbol}|{action.value}|{event_time_ms}|{config_version}"
    return str(uuid.uuid5(SIGNAL_ID_NAMESPACE, key))


@dataclass(frozen=True, slots=True)
class Signal:
    """A buy or sell recommendation with its price levels, size and provenance."""

    signal_id: str
    strategy_id: str
    symbol: str
    action: Action
    confidence: float
    price: float
    quantity: float
    current_price: float
    stop_loss: float
    take_profit: float
    event_time_ms: int
    config: ConfigStamp
    timeframe: str = "tick"
    indicators: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within [0, 1], got {self.confidence}")
        for name in ("price", "quantity", "current_price", "stop_loss", "take_profit"):
            value = getattr(self, name)
            if not (0.0 < value < math.inf):
                raise ValueError(f"signal {name} must be finite and > 0, got {value}")
        if self.action is Action.BUY:
            ok = self.stop_loss < self.price < self.take_profit
        else:
            ok = self.take_profit < self.price < self.stop_loss
        if not ok:
            raise ValueError(
                f"stop_loss/take_profit on the wrong side of price for a {self.action.value}"
            )

    @property
    def strength(self) -> Strength:
        return Strength.of(self.confidence)


def signal_to_state(signal: Signal) -> dict[str, JsonValue]:
    """``signal`` as plain JSON-ready data (enums as their value), for state snapshots;
    :func:`signal_from_state` reads it back into an equal signal."""
    return {
        "signal_id": signal.signal_id,
        "strategy_id": signal.strategy_id,
        "symbol": signal.symbol,
        "action": signal.action.value,
        "confidence": signal.confidence,
        "price": signal.price,
        "quantity": signal.quantity,
        "current_price": signal.current_price,
        "stop_loss": signal.stop_loss,
        "take_profit": signal.take_profit,
        "event_time_ms": signal.event_time_ms,
        "config": signal.config.as_dict(),
        "timeframe": signal.timeframe,
        "indicators": dict(signal.indicators),
        "metadata": dict(signal.metadata),
    }


def signal_from_state(state: object, where: str = "signal") -> Signal:
    """The signal :func:`signal_to_state` gave; ``ValueError`` naming what is wrong when
    ``state`` does not have that shape or is not a valid signal."""
    if not isinstance(state, Mapping):
        raise ValueError(f"{where} state: a signal must be an object, got {state!r:.80}")
    config = mapping(state, "config", where)
    parameters = mapping(config, "parameters", where)
    for name, value in parameters.items():
        if not isinstance(value, bool):
            number(value, f"parameter {name!r}", where)
    indicators = mapping(state, "indicators", where)
    metadata = mapping(state, "metadata", where)
    if not all(isinstance(key, str) for key in (*parameters, *indicators, *metadata)):
        raise ValueError(f"{where} state: parameter, indicator and metadata keys must be strings")
    return Signal(
        signal_id=text(state.get("signal_id"), "signal_id", where),
        strategy_id=text(state.get("strategy_id"), "strategy_id", where),
        symbol=text(state.get("symbol"), "symbol", where),
        action=Action(text(state.get("action"), "action", where)),
        confidence=number(state.get("confidence"), "confidence", where),
        price=number(state.get("price"), "price", where),
        quantity=number(state.get("quantity"), "quantity", where),
        current_price=number(state.get("current_price"), "current_price", where),
        stop_loss=number(state.get("stop_loss"), "stop_loss", where),
        take_profit=number(state.get("take_profit"), "take_profit", where),
        event_time_ms=integer(state.get("event_time_ms"), "event_time_ms", where),
        config=ConfigStamp(
            version=integer(config.get("version"), "config version", where),
            parameters=dict(parameters),
            source=text(config.get("source"), "config source", where),
            is_override=flag(config.get("is_override"), "config is_override", where),
        ),
        timeframe=text(state.get("timeframe"), "timeframe", where),
        indicators={
            name: number(value, f"indicator {name!r}", where) for name, value in indicators.items()
        },
        metadata=dict(metadata),
    )
