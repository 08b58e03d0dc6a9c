"""What a strategy is: a stateful decision function over market events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from domain.market import MarketEvent
from domain.params import CommonParams
from domain.signal import Action, JsonValue

P_contra = TypeVar("P_contra", bound=CommonParams, contravariant=True)


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy's raw verdict on one event, before sizing, SL/TP, cooldown and stamping.

    ``quantity`` is set only by strategies that size their own position
    (cross_exchange_spread); otherwise quantity = position_notional_usdt / price.
    """

    symbol: str
    action: Action
    confidence: float
    price: float
    current_price: float
    indicators: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)
    quantity: float | None = None


class Strategy(Protocol[P_contra]):
    """A strategy keeps its own per-symbol state and decides on one event at a time.

    ``config_symbol`` says whose configuration applies to an event (None: the strategy
    does not consume it). ``on_event`` both updates state and returns a decision or None;
    it must never raise on a valid event and must return confidence within [0, 1].

    Optionally, a strategy declares ``consumes: ClassVar[tuple[type, ...]]``, the event types
    for which ``config_symbol`` can return a symbol: the engine then does not offer it events
    of other types at all (see :meth:`SignalEngine.strategies_for
    <domain.engine.SignalEngine.strategies_for>`). Without it, every event is offered.
    """

    strategy_id: ClassVar[str]
    description: ClassVar[str]
    params_type: ClassVar[type[CommonParams]]

    def config_symbol(self, event: MarketEvent) -> str | None: ...

    def on_event(self, event: MarketEvent, params: P_contra) -> Decision | None: ...
