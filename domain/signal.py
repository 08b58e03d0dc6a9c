"""Trading signals: what strategies emit, in the shape the trade engine consumes."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.params import ParamValue

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
