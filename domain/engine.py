"""The signal engine: the one walk of a market event through the strategies.

The live service, the partition workers, the backtest and the strategy tests all run
:meth:`SignalEngine.process`, so they produce identical signals for identical input. The
application layer supplies the effective config per (strategy, symbol) and, optionally, an
:data:`Instrument` around each evaluation (latency timing is operational, not domain).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Protocol, cast

from domain.config import ConfigLookup, EffectiveConfig
from domain.governance import Governance, Suppression
from domain.market import DepthSnapshot, MarketEvent
from domain.params import CommonParams
from domain.signal import Action, Signal, signal_id_for
from domain.state import mapping
from domain.strategies.base import (
    Capabilities,
    Decision,
    Owns,
    ProposeFn,
    StatefulStrategy,
    Strategy,
    StrategyContractError,
    capabilities_of,
)

_QTY_DECIMALS = 8


class Outcome:
    """Why a strategy evaluation did or did not produce a signal (for metrics).

    Besides these three, an evaluation ends in one of the :class:`~domain.governance.Suppression`
    reasons: the strategy decided, and governance (or the strategy's own hysteresis) held it.
    """

    SIGNAL = "signal"
    NO_SIGNAL = "no_signal"
    DISABLED = "disabled"
    COOLDOWN = Suppression.COOLDOWN
    SUPPRESSED = Suppression.ALL
    ALL = (SIGNAL, NO_SIGNAL, DISABLED, *Suppression.ALL)


Result = tuple[str, Signal | None]
"""(outcome, the signal when the outcome is SIGNAL)."""
Evaluation = Callable[[MarketEvent, str], Result]
"""One strategy's evaluation of one event: ``(event, config symbol) -> result``; it looks up
the strategy's effective config for that symbol, then decides."""


class Instrument(Protocol):
    """Wraps each strategy's :data:`Evaluation` once, when the engine is built.

    The wrapper sees every evaluation: its result, or the exception it raises (which it
    must let through: the engine isolates it). The service times evaluations this way
    (``application.processing.timed``); without an instrument nothing is wrapped.
    """

    def __call__(self, strategy_id: str, evaluation: Evaluation) -> Evaluation: ...


class DepthObserver(Protocol):
    """Receives every depth snapshot the engine processes (the market-metrics book)."""

    def on_depth(self, snapshot: DepthSnapshot) -> object: ...


# The results without a signal, built once: the hot path returns these very tuples.
_DISABLED: Result = (Outcome.DISABLED, None)
_NO_SIGNAL: Result = (Outcome.NO_SIGNAL, None)
_HELD: dict[str, Result] = {reason: (reason, None) for reason in Suppression.ALL}


DEFAULT_MAX_SYMBOLS = 10_000


@dataclass(slots=True)
class EngineStats:
    """Plain counters, cheap enough for the hot path; exported by the service.

    Evaluation outcomes, counted up to three times per event, live in ``outcome_counts``:
    per strategy a plain dict with every outcome (zeros included), whose ``d[k] += 1`` CPython
    specialises; a ``Counter`` with tuple keys costs several times as much per increment.
    ``outcomes`` reads them as a Counter of (strategy, outcome) without the zeros.
    """

    events_by_type: Counter[str] = field(default_factory=Counter)
    signals_by_strategy_action: Counter[tuple[str, str]] = field(default_factory=Counter)
    strategy_errors: Counter[str] = field(default_factory=Counter)
    outcome_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    held_after: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Signals the engine emitted that the application then held, per (strategy, reason):
    the shared per-minute budget of a partitioned deployment (:meth:`count_held`). Their
    evaluation stays counted as ``signal``; the suppression counts include them."""

    @property
    def outcomes(self) -> Counter[tuple[str, str]]:
        """Evaluations per (strategy, outcome) (a snapshot)."""
        return Counter(
            {
                (strategy_id, outcome): count
                for strategy_id, counts in self.outcome_counts.items()
                for outcome, count in counts.items()
                if count
            }
        )

    def outcome_counter(self, strategy_id: str) -> dict[str, int]:
        """The (live) outcome counts of ``strategy_id``, created with every outcome at 0."""
        counts = self.outcome_counts.get(strategy_id)
        if counts is None:
            counts = self.outcome_counts[strategy_id] = dict.fromkeys(Outcome.ALL, 0)
        return counts

    def count_held(self, strategy_id: str, reason: str) -> None:
        """One signal of ``strategy_id`` that the engine emitted was held after all, for
        ``reason`` (a :class:`~domain.governance.Suppression`): see :attr:`held_after`."""
        if reason not in Suppression.ALL:
            raise ValueError(f"not a suppression reason: {reason!r}")
        self.held_after[(strategy_id, reason)] += 1

    def suppressed(self) -> dict[str, int]:
        """Suppressed signals per :class:`~domain.governance.Suppression` reason, all
        strategies together (every reason present, zeros included)."""
        totals = dict.fromkeys(Suppression.ALL, 0)
        for counts in self.outcome_counts.values():
            for reason in Suppression.ALL:
                totals[reason] += counts[reason]
        for (_, reason), count in self.held_after.items():
            totals[reason] += count
        return totals

    def suppressed_by_strategy(self) -> dict[tuple[str, str], int]:
        """Suppressed signals per (strategy, reason), without the zeros."""
        totals = Counter(self.held_after)
        for strategy_id, counts in self.outcome_counts.items():
            for reason in Suppression.ALL:
                if counts[reason]:
                    totals[(strategy_id, reason)] += counts[reason]
        return dict(totals)

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def signals(self) -> int:
        return sum(self.signals_by_strategy_action.values())


_Consumer = tuple[str, Callable[[MarketEvent], str | None], Evaluation, dict[str, int]]
"""(strategy id, its config_symbol, its evaluation, its outcome counts)."""
_Route = tuple[
    str,
    Callable[[MarketEvent], str] | None,
    Callable[[MarketEvent], object] | None,
    tuple[_Consumer, ...],
]
"""Per event type: (type name, how to read the symbol the engine bounds state by (None: the
type has none), the depth observer's ``on_depth`` for depth snapshots (else None), the
consumers in engine order)."""

_symbol_of: Callable[[MarketEvent], str] = attrgetter("symbol")


class SignalEngine:
    """Owns the strategy instances (their state) and the governance gate, and walks events.

    Each strategy is checked once, here, against the :class:`~domain.strategies.base.Strategy`
    protocol and the optional abilities it has (:func:`~domain.strategies.base.capabilities_of`):
    a strategy with an ability it does not really implement fails now, with a clear error.

    Per-symbol state is bounded: :meth:`touch` keeps the ``max_symbols`` most recently seen
    symbols; the least recently seen one beyond that is forgotten by the governance gate and
    by every :class:`~domain.strategies.base.SymbolStateStrategy` (a flood of new symbols
    under ``TRADING_SYMBOLS=*`` cannot grow memory without bound). A forgotten symbol that
    comes back starts afresh, as after a restart.
    """

    def __init__(
        self,
        strategies: Sequence[Strategy[CommonParams]],
        config: ConfigLookup,
        *,
        max_symbols: int = DEFAULT_MAX_SYMBOLS,
        depth_observer: DepthObserver | None = None,
        instrument: Instrument | None = None,
        governance: Governance | None = None,
    ) -> None:
        if max_symbols < 1:
            raise ValueError(f"max_symbols must be >= 1, got {max_symbols}")
        self.strategies: tuple[Strategy[CommonParams], ...] = tuple(strategies)
        capabilities = [capabilities_of(strategy) for strategy in self.strategies]
        self.config = config
        self.max_symbols = max_symbols
        self.depth_observer = depth_observer
        self.stats = EngineStats()
        self.evicted_symbols = 0
        self.governance = governance if governance is not None else Governance()
        """The gate every evaluation of this engine checks (fixed for the engine's life)."""
        self._hold: list[str | None] = [None]
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._consumes = [c.consumes for c in capabilities]
        self._forgetters = tuple(c.forget_symbol for c in capabilities if c.forget_symbol)
        self._evaluations: tuple[Evaluation, ...] = tuple(
            self._bind(strategy, capability, instrument)
            for strategy, capability in zip(self.strategies, capabilities, strict=True)
        )
        self._index = {id(strategy): index for index, strategy in enumerate(self.strategies)}
        self._by_type: dict[type, tuple[Strategy[CommonParams], ...]] = {}
        self._routes: dict[type, _Route] = {}

    # --- the walk -----------------------------------------------------------------------

    def process(self, event: MarketEvent, hold: str | None = None) -> list[Signal]:
        """Run every strategy that consumes ``event``; return the signals emitted.

        ``hold`` (a :class:`~domain.governance.Suppression` reason, e.g. ``stale``) holds back
        every signal this event would emit past the other rules: the strategies still update
        their state and the signals are counted under that reason.

        Marks the event's symbol as seen (:meth:`touch`), counts the event, hands a depth
        snapshot to the depth observer, then evaluates each consuming strategy with its
        effective config. A strategy that raises is isolated: the error is counted in
        :attr:`stats` and the other strategies still run (a bug in one strategy costs its
        signal, not the message).
        """
        route = self._routes.get(event.__class__)
        if route is None:
            route = self._route(event.__class__)
        type_name, symbol_of, on_depth, consumers = route
        if symbol_of is not None:
            self.touch(symbol_of(event))
        stats = self.stats
        self._hold[0] = hold
        # Counter is a dict subclass, so ``c[k] += 1`` takes CPython's generic subscript path
        # twice; get() and one store are cheaper, with the same count.
        events_by_type = stats.events_by_type
        events_by_type[type_name] = events_by_type.get(type_name, 0) + 1
        if on_depth is not None:
            on_depth(event)
        signals: list[Signal] = []
        for strategy_id, config_symbol, evaluate, outcome_counts in consumers:
            symbol = config_symbol(event)
            if symbol is None:
                continue
            try:
                outcome, signal = evaluate(event, symbol)
            except Exception:  # isolate one strategy's bug
                stats.strategy_errors[strategy_id] += 1
                continue
            outcome_counts[outcome] += 1
            if signal is not None:
                stats.signals_by_strategy_action[(strategy_id, signal.action.value)] += 1
                signals.append(signal)
        return signals

    def _route(self, event_type: type) -> _Route:
        """What :meth:`process` needs for ``event_type``, bound once and memoised."""
        stats = self.stats
        on_depth: Callable[[MarketEvent], object] | None = None
        if self.depth_observer is not None and issubclass(event_type, DepthSnapshot):
            # Sound: this route only ever sees events of event_type, a DepthSnapshot.
            on_depth = cast(Callable[[MarketEvent], object], self.depth_observer.on_depth)
        route = self._routes[event_type] = (
            event_type.__name__,
            _symbol_of if hasattr(event_type, "symbol") else None,
            on_depth,
            tuple(
                (
                    strategy.strategy_id,
                    strategy.config_symbol,
                    self._evaluations[self._index[id(strategy)]],
                    stats.outcome_counter(strategy.strategy_id),
                )
                for strategy in self.strategies_for(event_type)
            ),
        )
        return route

    def strategies_for(self, event_type: type) -> tuple[Strategy[CommonParams], ...]:
        """The strategies that may consume events of ``event_type``, in engine order.

        A :class:`~domain.strategies.base.RoutedStrategy` is left out for every type outside
        its ``consumes``; any other strategy is always in. Only a shortcut: ``config_symbol``
        still decides on each event, so the signals are the same as asking every strategy.
        Memoised per type.
        """
        route = self._by_type.get(event_type)
        if route is None:
            route = self._by_type[event_type] = tuple(
                strategy
                for strategy, consumes in zip(self.strategies, self._consumes, strict=True)
                if consumes is None or issubclass(event_type, consumes)
            )
        return route

    # --- bounded per-symbol state -------------------------------------------------------

    def touch(self, symbol: str) -> None:
        """Mark ``symbol`` as just seen; forget the least recent one beyond the bound."""
        recent = self._recent
        if symbol in recent:
            recent.move_to_end(symbol)
            return
        recent[symbol] = None
        if len(recent) > self.max_symbols:
            oldest, _ = recent.popitem(last=False)
            self.forget(oldest)

    def forget(self, symbol: str) -> None:
        """Drop every piece of per-symbol state this engine holds for ``symbol``."""
        self._recent.pop(symbol, None)
        self.governance.forget_symbol(symbol)
        for forget_symbol in self._forgetters:
            forget_symbol(symbol)
        self.evicted_symbols += 1

    # --- state snapshots ------------------------------------------------------------------

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The state of the symbols ``owns`` accepts — every strategy's
        (:class:`~domain.strategies.base.StatefulStrategy`) and the governance gate's — as
        plain data. Counters (:attr:`stats`) are not state: they are not included.

        Raises :class:`~domain.strategies.base.StrategyContractError` if a strategy cannot
        give its state.
        """
        strategies: dict[str, object] = {}
        for strategy in self.strategies:
            if not isinstance(strategy, StatefulStrategy):
                raise StrategyContractError(
                    f"strategy {strategy.strategy_id!r} has no to_state/merge_state: its state "
                    "cannot be checkpointed"
                )
            strategies[strategy.strategy_id] = strategy.to_state(owns)
        return {"strategies": strategies, "governance": self.governance.to_state(owns)}

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned (keeping the symbols it does not name).

        Every strategy of this engine must be in ``state`` (a snapshot of another strategy
        set is refused with ``ValueError`` before anything is restored)."""
        saved = mapping(state, "strategies", "engine")
        governance = mapping(state, "governance", "engine")
        missing = [s.strategy_id for s in self.strategies if s.strategy_id not in saved]
        if missing:
            raise ValueError(f"engine state: no state of strategies {missing}")
        for strategy in self.strategies:
            if not isinstance(strategy, StatefulStrategy):
                raise StrategyContractError(
                    f"strategy {strategy.strategy_id!r} has no to_state/merge_state"
                )
            strategy_state = saved[strategy.strategy_id]
            if not isinstance(strategy_state, Mapping):
                raise ValueError(f"engine state: {strategy.strategy_id!r} must be an object")
            strategy.merge_state(strategy_state)
        self.governance.merge_state(governance)

    # --- one strategy's evaluation ------------------------------------------------------

    def _bind(
        self,
        strategy: Strategy[CommonParams],
        capabilities: Capabilities,
        instrument: Instrument | None,
    ) -> Evaluation:
        """The evaluation of one strategy, with everything it looks up bound once.

        Disabled → DISABLED; no decision → NO_SIGNAL; a decision the strategy holds itself
        (hysteresis) or governance suppresses → that :class:`~domain.governance.Suppression`
        reason; else SIGNAL with the signal. For a ``ProposingStrategy`` the cooldown and
        reversal rules are checked on the proposal, before its decision is built (on a busy
        order book most are suppressed); the outcome and the signal are the same as deciding
        first and asking the gate after.
        """
        strategy_id = strategy.strategy_id
        governance = self.governance
        check_cooldown = governance.cooldown
        lookup = self.config
        hold = self._hold
        evaluation: Evaluation
        proposing: ProposeFn | None = capabilities.propose
        if proposing is not None:
            propose: ProposeFn = proposing

            def evaluate_proposing(event: MarketEvent, symbol: str) -> Result:
                config = lookup(strategy_id, symbol)
                params = config.params
                if not params.enabled:
                    return _DISABLED
                proposal = propose(event, params)
                if proposal is None:
                    return _NO_SIGNAL
                if type(proposal) is str:
                    return _HELD[proposal]
                assert not isinstance(proposal, str)  # for mypy: narrowed above
                time_ms = event.event_time_ms
                reason = check_cooldown(
                    strategy_id,
                    proposal.symbol,
                    proposal.action,
                    time_ms,
                    params.cooldown_ms,
                    params.reversal_ms,
                )
                if reason is not None:
                    return _HELD[reason]
                decision = proposal.decide()
                return _admit(governance, strategy_id, decision, time_ms, config, hold[0])

            evaluation = evaluate_proposing
        else:
            on_event = strategy.on_event

            def evaluate(event: MarketEvent, symbol: str) -> Result:
                config = lookup(strategy_id, symbol)
                params = config.params
                if not params.enabled:
                    return _DISABLED
                decision = on_event(event, params)
                if decision is None:
                    return _NO_SIGNAL
                if isinstance(decision, str):
                    return _HELD[decision]
                time_ms = event.event_time_ms
                reason = check_cooldown(
                    strategy_id,
                    decision.symbol,
                    decision.action,
                    time_ms,
                    params.cooldown_ms,
                    params.reversal_ms,
                )
                if reason is not None:
                    return _HELD[reason]
                return _admit(governance, strategy_id, decision, time_ms, config, hold[0])

            evaluation = evaluate
        return evaluation if instrument is None else instrument(strategy_id, evaluation)


def _admit(
    governance: Governance,
    strategy_id: str,
    decision: Decision,
    time_ms: int,
    config: EffectiveConfig[CommonParams],
    hold: str | None,
) -> Result:
    """The confidence floor, then pauses, the caller's hold and the rate caps: a
    suppression reason, or SIGNAL with the signal built from ``decision`` (then recorded).

    The signal is built between governance's check and its record: a decision no signal
    can carry (e.g. a forged price so small that the quantity overflows) raises there,
    counted as the strategy's error, without taking a cooldown or a rate-cap slot from real
    signals; a held decision is not built at all.
    """
    confidence = decision.confidence
    if confidence < config.params.min_confidence:
        return _HELD[Suppression.CONFIDENCE]
    symbol = decision.symbol
    verdict = governance.check(strategy_id, symbol, time_ms, hold)
    if isinstance(verdict, str):
        return _HELD[verdict]
    signal = build_signal(strategy_id, decision, time_ms, config)
    governance.record(strategy_id, symbol, decision.action, time_ms, verdict)
    return Outcome.SIGNAL, signal


def build_signal(
    strategy_id: str, decision: Decision, event_time_ms: int, config: EffectiveConfig[CommonParams]
) -> Signal:
    """Size the decision, place stop-loss / take-profit, and stamp id and config."""
    params = config.params
    price = decision.price
    quantity = decision.quantity
    if quantity is None:
        quantity = params.position_notional_usdt / price
    quantity = round(quantity, _QTY_DECIMALS) or 10**-_QTY_DECIMALS
    sl = params.stop_loss_percent / 100.0
    tp = params.take_profit_percent / 100.0
    if decision.action is Action.BUY:
        stop_loss, take_profit = price * (1.0 - sl), price * (1.0 + tp)
    else:
        stop_loss, take_profit = price * (1.0 + sl), price * (1.0 - tp)
    confidence = min(1.0, max(0.0, decision.confidence))
    return Signal(
        signal_id=signal_id_for(
            strategy_id, decision.symbol, decision.action, event_time_ms, config.version
        ),
        strategy_id=strategy_id,
        symbol=decision.symbol,
        action=decision.action,
        confidence=confidence,
        price=price,
        quantity=quantity,
        current_price=decision.current_price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        event_time_ms=event_time_ms,
        config=config.stamp(),
        indicators=dict(decision.indicators),
        metadata=dict(decision.metadata),
    )
