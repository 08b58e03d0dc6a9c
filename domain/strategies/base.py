"""What a strategy is: a stateful decision function over market events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

    Optionally too, a strategy that often decides while its cooldown is running (so that the
    engine throws the decision away) implements :class:`ProposingStrategy`: the engine then
    checks the cooldown before the decision is built.
    """

    strategy_id: ClassVar[str]
    params_type: ClassVar[type[CommonParams]]

    def config_symbol(self, event: MarketEvent) -> str | None: ...

    def on_event(self, event: MarketEvent, params: P_contra) -> Decision | None: ...


class Proposal(Protocol):
    """A decision known by its symbol and action, built only on demand by :meth:`decide`.

    ``decide()`` returns a :class:`Decision` with exactly this ``symbol`` and ``action``; it
    is pure (no state change) and may be called any number of times, or never.
    """

    @property
    def symbol(self) -> str: ...

    @property
    def action(self) -> Action: ...

    def decide(self) -> Decision: ...


class ProposingStrategy(Strategy[P_contra], Protocol[P_contra]):
    """A strategy that can say which action it takes before building the decision.

    ``propose`` has the same state effects as ``on_event``, and ``on_event(e, p)`` equals
    ``propose(e, p).decide()`` (None when the proposal is None) — the implementations define
    ``on_event`` that way. The engine calls ``propose`` and builds the decision only when
    the cooldown lets it through: on a busy order book the cooldown suppresses most
    decisions, and building one (confidence, indicators, the frozen Decision) costs more
    than finding its action.
    """

    def propose(self, event: MarketEvent, params: P_contra) -> Proposal | None: ...


ProposeFn = Callable[[MarketEvent, CommonParams], Proposal | None]
"""A bound ``propose`` method, as the engine keeps it."""
