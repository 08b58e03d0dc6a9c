"""The signal engine: routes events to strategies and turns decisions into signals.

Shared by the live service and the backtest, so both produce identical signals for
identical input. The application layer supplies the effective config per (strategy, symbol).
"""

from __future__ import annotations

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


class SignalEngine:
    """Owns the strategy instances (their state) and the cooldown gate."""

    def __init__(self, strategies: Sequence[Strategy[CommonParams]]) -> None:
        self.strategies: tuple[Strategy[CommonParams], ...] = tuple(strategies)
        self.cooldowns = CooldownGate()
        self._routes: dict[type, tuple[Strategy[CommonParams], ...]] = {}
        # ``propose`` of the strategies that have one (ProposingStrategy), by id(): strategies
        # need not be hashable, and self.strategies keeps every id in here alive and unique.
        self._proposers: dict[int, ProposeFn] = {
            id(strategy): strategy.propose  # type: ignore[attr-defined]
            for strategy in self.strategies
            if callable(getattr(strategy, "propose", None))
        }

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
    ) -> tuple[str, Signal | None]:
        """Run one strategy on one event with its effective config.

        For a strategy of this engine that proposes (``ProposingStrategy``), a proposal the
        cooldown would suppress ends here as COOLDOWN, before its decision is built; the
        outcome and the signals are the same as deciding first and asking the cooldown after.
        """
        params = config.params
        if not params.enabled:
            return Outcome.DISABLED, None
        time_ms = event.event_time_ms
        propose = self._proposers.get(id(strategy))
        if propose is None:
            decision = strategy.on_event(event, params)
            if decision is None:
                return Outcome.NO_SIGNAL, None
        else:
            proposal = propose(event, params)
            if proposal is None:
                return Outcome.NO_SIGNAL, None
            if self.cooldowns.blocks(
                strategy.strategy_id,
                proposal.symbol,
                proposal.action,
                time_ms,
                params.cooldown_ms,
            ):
                return Outcome.COOLDOWN, None
            decision = proposal.decide()
        if not self.cooldowns.admit(
            strategy.strategy_id, decision.symbol, decision.action, time_ms, params.cooldown_ms
        ):
            return Outcome.COOLDOWN, None
        return Outcome.SIGNAL, build_signal(strategy.strategy_id, decision, time_ms, config)

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
