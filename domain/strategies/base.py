"""What a strategy is: a stateful decision function over market events."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, get_args, runtime_checkable

from domain.market import MarketEvent
from domain.params import CommonParams
from domain.signal import Action, JsonValue

P_contra = TypeVar("P_contra", bound=CommonParams, contravariant=True)

Held = str
"""What a strategy returns instead of a decision it holds back itself: the
:class:`~domain.governance.Suppression` reason (``unconfirmed``, ``not_rearmed``), so that
the engine counts it (the threshold strategies' hysteresis)."""


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


@runtime_checkable
class Strategy(Protocol[P_contra]):
    """A strategy keeps its own per-symbol state and decides on one event at a time.

    ``config_symbol`` says whose configuration applies to an event (None: the strategy
    does not consume it). ``on_event`` both updates state and returns a decision, None, or
    the reason it holds a decision back (:data:`Held`); it must never raise on a valid event
    and must return confidence within [0, 1].

    Optional abilities are the protocols below (:class:`RoutedStrategy`,
    :class:`ProposingStrategy`, :class:`SymbolStateStrategy`). A strategy has one when it
    has the protocol's member; :func:`capabilities_of` checks, once, when the engine is
    built, that each one it has is really implemented.
    """

    strategy_id: ClassVar[str]
    params_type: ClassVar[type[CommonParams]]

    def config_symbol(self, event: MarketEvent) -> str | None: ...

    def on_event(self, event: MarketEvent, params: P_contra) -> Decision | Held | None: ...


@runtime_checkable
class RoutedStrategy(Protocol):
    """A strategy that declares the event types it consumes.

    ``consumes`` lists the event types for which ``config_symbol`` can return a symbol: the
    engine does not offer it events of other types at all (see :meth:`SignalEngine.strategies_for
    <domain.engine.SignalEngine.strategies_for>`). A strategy without it is offered every event.
    """

    consumes: ClassVar[tuple[type, ...]]


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


@runtime_checkable
class ProposingStrategy(Strategy[P_contra], Protocol[P_contra]):
    """A strategy that can say which action it takes before building the decision.

    ``propose`` has the same state effects as ``on_event``, and ``on_event(e, p)`` equals
    ``propose(e, p).decide()`` (None when the proposal is None) — the implementations define
    ``on_event`` that way. The engine calls ``propose`` and builds the decision only when
    the cooldown lets it through: on a busy order book the cooldown suppresses most
    decisions, and building one (confidence, indicators, the frozen Decision) costs more
    than finding its action.
    """

    def propose(self, event: MarketEvent, params: P_contra) -> Proposal | Held | None: ...


@runtime_checkable
class SymbolStateStrategy(Protocol):
    """A strategy that keeps per-symbol state and can drop it.

    The engine bounds the number of symbols it keeps state for and calls ``forget_symbol``
    on the least recently seen one beyond that bound; a forgotten symbol that comes back
    starts afresh.
    """

    def forget_symbol(self, symbol: str) -> None: ...


Owns = Callable[[str], bool]
"""Which symbols a state snapshot covers (a partition's share): ``owns(symbol)``."""


@runtime_checkable
class StatefulStrategy(Protocol):
    """A strategy whose state can be checkpointed and restored (partition takeovers).

    ``to_state(owns)`` returns the state of the symbols ``owns`` accepts as plain data —
    dicts with string keys, lists, strings, numbers, booleans, None — sharing nothing with
    the live state. ``merge_state(state)`` restores what ``to_state`` returned for those
    symbols, keeping the others; restoring it into a fresh instance and continuing gives
    exactly the decisions the instance it was taken from gives. It raises ``ValueError``
    (or ``KeyError``/``TypeError``) on data it cannot read.
    """

    def to_state(self, owns: Owns) -> dict[str, object]: ...

    def merge_state(self, state: Mapping[str, object]) -> None: ...


ProposeFn = Callable[[MarketEvent, CommonParams], Proposal | Held | None]
"""A bound ``propose`` method, as the engine keeps it."""


class StrategyContractError(TypeError):
    """A strategy lacks a required member or has an ability it does not really implement."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The abilities of one strategy instance, found once (see :func:`capabilities_of`).

    ``consumes`` is None for a strategy offered every event; ``propose`` and
    ``forget_symbol`` are the bound methods, or None without that ability.
    """

    consumes: tuple[type, ...] | None
    propose: ProposeFn | None
    forget_symbol: Callable[[str], None] | None


_EVENT_TYPES: frozenset[type] = frozenset(get_args(MarketEvent))


def capabilities_of(strategy: object) -> Capabilities:
    """Check ``strategy`` against :class:`Strategy` and each optional ability it has.

    A strategy has an ability when it has the ability's member (``consumes``, ``propose``,
    ``forget_symbol``), whatever its value. Raises :class:`StrategyContractError` naming the
    strategy and what is wrong: a required member missing or malformed, or an ability's
    member not implemented as its protocol says (not callable, not taking the protocol's
    arguments, ``consumes`` not a non-empty tuple of market event types).
    """
    name = type(strategy).__name__
    missing = [
        member
        for member in ("strategy_id", "params_type", "config_symbol", "on_event")
        if not hasattr(strategy, member)
    ]
    if missing:
        raise StrategyContractError(f"{name} is not a Strategy: it has no {', '.join(missing)}")
    strategy_id = getattr(strategy, "strategy_id")  # noqa: B009 - checked, not trusted
    if not isinstance(strategy_id, str) or not strategy_id:
        raise StrategyContractError(f"{name}: strategy_id must be a non-empty str")
    label = f"strategy {strategy_id!r} ({name})"
    params_type = getattr(strategy, "params_type")  # noqa: B009
    if not (isinstance(params_type, type) and issubclass(params_type, CommonParams)):
        raise StrategyContractError(f"{label}: params_type must be a CommonParams subclass")
    _method(label, "Strategy", strategy, "config_symbol", 1)
    _method(label, "Strategy", strategy, "on_event", 2)

    consumes: tuple[type, ...] | None = None
    if hasattr(strategy, "consumes"):
        consumes = getattr(strategy, "consumes")  # noqa: B009
        if (
            not isinstance(consumes, tuple)
            or not consumes
            or not all(kind in _EVENT_TYPES for kind in consumes)
        ):
            raise StrategyContractError(
                f"{label} is a RoutedStrategy, but consumes is not a non-empty tuple of "
                f"market event types: {consumes!r}"
            )
    propose: ProposeFn | None = None
    if hasattr(strategy, "propose"):
        propose = _method(label, "ProposingStrategy", strategy, "propose", 2)
    forget: Callable[[str], None] | None = None
    if hasattr(strategy, "forget_symbol"):
        forget = _method(label, "SymbolStateStrategy", strategy, "forget_symbol", 1)
    return Capabilities(consumes=consumes, propose=propose, forget_symbol=forget)


def _method(label: str, protocol: str, strategy: object, member: str, arity: int) -> Any:
    """``strategy.<member>``, checked to be callable with ``arity`` positional arguments
    (when Python can read its signature)."""
    method = getattr(strategy, member)
    if not callable(method):
        raise StrategyContractError(f"{label}: {protocol}.{member} is not callable: {method!r}")
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # no signature to read (a builtin): trust the call
        return method
    try:
        signature.bind(*([None] * arity))
    except TypeError:
        raise StrategyContractError(
            f"{label}: {protocol}.{member} must take {arity} argument(s), "
            f"its signature is {signature}"
        ) from None
    return method
