"""The signal engine: routes events to strategies and turns decisions into signals.

Shared by the live service and the backtest, so both produce identical signals for
identical input. The application layer supplies the effective config per (strategy, symbol).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from domain.config import EffectiveConfig
from domain.cooldown import CooldownGate
from domain.market import MarketEvent
from domain.params import CommonParams
from domain.signal import Action, Signal, signal_id_for
from domain.strategies.base import Decision, ProposeFn, Strategy

ConfigLookup = Callable[[str, str], EffectiveConfig[CommonParams]]
"""(strategy_id, symbol) -> effective config."""

_QTY_DECIMALS = 8


class Outcome:
    """Why a strategy evaluation did or did not produce a signal (for metrics)."""

    SIGNAL = "signal"
    NO_SIGNAL = "no_signal"
    DISABLED = "disabled"
    COOLDOWN = "cooldown"
    ALL = (SIGNAL, NO_SIGNAL, DISABLED, COOLDOWN)


Result = tuple[str, Signal | None]
"""(outcome, the signal when the outcome is SIGNAL)."""
Runner = Callable[[MarketEvent, EffectiveConfig[CommonParams]], Result]
"""``SignalEngine.evaluate`` of one strategy: (event, its effective config) -> result."""

# The results without a signal, built once: the hot path returns these very tuples.
_DISABLED: Result = (Outcome.DISABLED, None)
_NO_SIGNAL: Result = (Outcome.NO_SIGNAL, None)
_COOLDOWN: Result = (Outcome.COOLDOWN, None)


DEFAULT_MAX_SYMBOLS = 10_000


class SignalEngine:
    """Owns the strategy instances (their state) and the cooldown gate.

    Per-symbol state is bounded: :meth:`touch` keeps the ``max_symbols`` most recently seen
    symbols; the least recently seen one beyond that is forgotten by the cooldown gate and
    by every strategy with a ``forget_symbol`` (a flood of new symbols under
    ``TRADING_SYMBOLS=*`` cannot grow memory without bound). A forgotten symbol that comes
    back starts afresh, as after a restart.
    """

    def __init__(
        self, strategies: Sequence[Strategy[CommonParams]], max_symbols: int = DEFAULT_MAX_SYMBOLS
    ) -> None:
        if max_symbols < 1:
            raise ValueError(f"max_symbols must be >= 1, got {max_symbols}")
        self.strategies: tuple[Strategy[CommonParams], ...] = tuple(strategies)
        self.max_symbols = max_symbols
        self.evicted_symbols = 0
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.cooldowns = CooldownGate()
        """The gate every runner of this engine checks (fixed for the engine's life)."""
        self._routes: dict[type, tuple[Strategy[CommonParams], ...]] = {}
        # One runner per strategy, by id(): strategies need not be hashable, and
        # self.strategies keeps every id in here alive and unique.
        self._runners: dict[int, Runner] = {id(s): self._bind(s) for s in self.strategies}

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
        self.cooldowns.forget_symbol(symbol)
        for strategy in self.strategies:
            forget = getattr(strategy, "forget_symbol", None)
            if callable(forget):
                forget(symbol)
        self.evicted_symbols += 1

    def strategies_for(self, event_type: type) -> tuple[Strategy[CommonParams], ...]:
        """The strategies that may consume events of ``event_type``, in engine order.

        A strategy that declares ``consumes`` (the event types its ``config_symbol`` can
        return a symbol for) is left out for every other type; one that does not is always
        in. Only a shortcut: ``config_symbol`` still decides on each event, so the signals
        are the same as asking every strategy. Memoised per type.
        """
        route = self._routes.get(event_type)
        if route is None:
            route = self._routes[event_type] = tuple(
                strategy
                for strategy in self.strategies
                if issubclass(event_type, getattr(strategy, "consumes", object))
            )
        return route

    def evaluate(
        self,
        strategy: Strategy[CommonParams],
        event: MarketEvent,
        config: EffectiveConfig[CommonParams],
    ) -> Result:
        """Run one strategy on one event with its effective config."""
        return self.runner(strategy)(event, config)

    def runner(self, strategy: Strategy[CommonParams]) -> Runner:
        """:meth:`evaluate` for ``strategy``, with everything it looks up bound once.

        The processor keeps these per event type, so an evaluation costs one call. A
        strategy of this engine shares its runner (and state); any other gets a new one.
        """
        run = self._runners.get(id(strategy))
        return run if run is not None else self._bind(strategy)

    def _bind(self, strategy: Strategy[CommonParams]) -> Runner:
        """The runner of one strategy.

        Disabled → DISABLED; no decision → NO_SIGNAL; suppressed by the cooldown → COOLDOWN;
        else SIGNAL with the signal. For a ``ProposingStrategy`` the cooldown is checked on
        the proposal, before its decision is built (on a busy order book most are
        suppressed); the outcome and the signal are the same as deciding first and asking
        the cooldown after.
        """
        strategy_id = strategy.strategy_id
        gate = self.cooldowns
        propose: ProposeFn | None = getattr(strategy, "propose", None)
        if callable(propose):
            proposing: ProposeFn = propose
            # cooldown_ms of the last params seen: params are immutable and change only with
            # the configuration, and the property costs more than this identity check.
            cooldown_of: CommonParams | None = None
            cooldown_ms = 0

            def run_proposing(event: MarketEvent, config: EffectiveConfig[CommonParams]) -> Result:
                nonlocal cooldown_of, cooldown_ms
                params = config.params
                if not params.enabled:
                    return _DISABLED
                proposal = proposing(event, params)
                if proposal is None:
                    return _NO_SIGNAL
                if params is not cooldown_of:
                    cooldown_of = params
                    cooldown_ms = params.cooldown_ms
                time_ms = event.event_time_ms
                if gate.blocks(strategy_id, proposal.symbol, proposal.action, time_ms, cooldown_ms):
                    return _COOLDOWN
                return _admit(gate, strategy_id, proposal.decide(), time_ms, config)

            return run_proposing

        on_event = strategy.on_event

        def run(event: MarketEvent, config: EffectiveConfig[CommonParams]) -> Result:
            params = config.params
            if not params.enabled:
                return _DISABLED
            decision = on_event(event, params)
            if decision is None:
                return _NO_SIGNAL
            return _admit(gate, strategy_id, decision, event.event_time_ms, config)

        return run

    def process(self, event: MarketEvent, lookup: ConfigLookup) -> list[Signal]:
        """Run every strategy that consumes ``event``; return the signals emitted."""
        signals: list[Signal] = []
        for strategy in self.strategies_for(event.__class__):
            symbol = strategy.config_symbol(event)
            if symbol is None:
                continue
            _, signal = self.evaluate(strategy, event, lookup(strategy.strategy_id, symbol))
            if signal is not None:
                signals.append(signal)
        return signals


def _admit(
    gate: CooldownGate,
    strategy_id: str,
    decision: Decision,
    time_ms: int,
    config: EffectiveConfig[CommonParams],
) -> Result:
    """COOLDOWN, or SIGNAL with the signal built from ``decision`` (then recorded)."""
    if not gate.admit(
        strategy_id, decision.symbol, decision.action, time_ms, config.params.cooldown_ms
    ):
        return _COOLDOWN
    return Outcome.SIGNAL, build_signal(strategy_id, decision, time_ms, config)


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
