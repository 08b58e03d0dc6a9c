"""Live scoring of published signals: returns at fixed horizons and a closed simulated trade.

The service follows every signal it published against the later market events of its
symbol, in **event time** only, with the very trade model of the backtest's P&L
(:class:`~domain.trade_model.TradeSimulator`, ADR 11): the same fills, exits, fees and
slippage, so live and offline figures are comparable. Fed like the simulator::

    scorer = LiveScorer(TradeModelSettings(fee_bps=10.0))
    for event in events:
        updates = scorer.on_event(event)            # horizons reached, trades closed
        for signal in published_signals_of(event):
            updates += scorer.on_signal(signal)     # a new outcome (and reversals)

Every call returns the :class:`LiveOutcome` snapshots that changed, in order; the last
snapshot of a signal is its complete outcome.

- **Horizons** ``1m``, ``5m``, ``15m``, ``1h``: once the symbol's event time (trades, depth,
  tickers: the exchange's clock) passes ``signal time + horizon``, the horizon's price is the
  last trade price at or before that moment (the signal's own price when no trade came in
  between). Its ``gross_bps`` is the move in the signal's direction from the signal's price,
  ``net_bps`` the same after a round trip's fees and slippage (the trade model's formula); a
  horizon is a *hit* when the move went the signal's way (``gross_bps > 0``).
- **Trade**: the signal's simulated position as the trade model closes it (stop-loss,
  take-profit, reversal, timeout). A position that never fills is reported as unfilled once
  it can no longer close (``2 × max_hold`` after the signal).
- **Bounded**: at most ``max_pending_per_symbol`` signals per symbol are followed (the oldest
  is dropped and counted in :attr:`LiveScorer.dropped`) and ``max_symbols`` symbols (the
  symbol with the oldest signal is dropped first, its signals counted as dropped). A signal id
  already followed is ignored and counted in :attr:`LiveScorer.duplicates`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from domain.market import DepthSnapshot, MarketEvent, Ticker, Trade
from domain.signal import Action, JsonValue, Signal, signal_from_state, signal_to_state
from domain.state import integer, items, mapping, number, row, symbol_entries, text
from domain.trade_model import (
    ClosedTrade,
    TradeModelSettings,
    TradeSimulator,
    trade_from_state,
    trade_pnl_bps,
    trade_to_state,
)

_EXCHANGE_CLOCK: frozenset[type[MarketEvent]] = frozenset({Trade, DepthSnapshot, Ticker})
"""The event kinds that carry the exchange's clock (horizons are reached on them)."""

HORIZONS: tuple[tuple[str, int], ...] = (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600))
"""(label, seconds) of every scoring horizon, shortest first."""
HORIZON_LABELS: tuple[str, ...] = tuple(label for label, _ in HORIZONS)
TRADE = "trade"
"""The label of the closed simulated trade, next to the horizon labels (metrics, reports)."""

DEFAULT_MAX_PENDING_PER_SYMBOL = 1_000
DEFAULT_MAX_SYMBOLS = 10_000


class OutcomeChange(StrEnum):
    """What a :class:`LiveOutcome` snapshot reports as new."""

    PUBLISHED = "published"
    HORIZON = "horizon"
    TRADE = "trade"
    UNFILLED = "unfilled"


@dataclass(frozen=True, slots=True)
class HorizonResult:
    """A signal's price and return at one horizon."""

    horizon: str
    price: float
    gross_bps: float
    net_bps: float

    def __post_init__(self) -> None:
        if self.horizon not in HORIZON_LABELS:
            raise ValueError(f"unknown horizon {self.horizon!r}")
        if not self.price > 0.0:
            raise ValueError(f"horizon price must be > 0, got {self.price}")

    @property
    def is_hit(self) -> bool:
        """The market moved the signal's way (before costs)."""
        return self.gross_bps > 0.0


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    """A published signal with its outcome so far."""

    signal: Signal
    horizons: Mapping[str, HorizonResult] = field(default_factory=dict)
    trade: ClosedTrade | None = None
    trade_unfilled: bool = False
    change: OutcomeChange = OutcomeChange.PUBLISHED
    changed_horizon: str | None = None
    """The horizon just reached, for a ``HORIZON`` change."""

    @property
    def complete(self) -> bool:
        """Every horizon reached and the trade closed (or never filled)."""
        return len(self.horizons) == len(HORIZONS) and (
            self.trade is not None or self.trade_unfilled
        )


class _Pending:
    __slots__ = ("horizons", "next_index", "signal", "trade", "unfilled_after_ms")

    def __init__(self, signal: Signal, unfilled_after_ms: int) -> None:
        self.signal = signal
        self.horizons: dict[str, HorizonResult] = {}
        self.next_index = 0
        self.trade: ClosedTrade | None = None
        self.unfilled_after_ms = unfilled_after_ms

    def due_ms(self) -> int:
        """Event time after which something of this signal is due."""
        if self.next_index < len(HORIZONS):
            return self.signal.event_time_ms + HORIZONS[self.next_index][1] * 1000
        return self.unfilled_after_ms

    def to_state(self) -> dict[str, object]:
        return {
            "signal": signal_to_state(self.signal),
            "horizons": [
                [result.horizon, result.price, result.gross_bps, result.net_bps]
                for result in self.horizons.values()
            ],
            "next_index": self.next_index,
            "trade": None if self.trade is None else trade_to_state(self.trade),
            "unfilled_after_ms": self.unfilled_after_ms,
        }

    @classmethod
    def from_state(cls, saved: object, symbol: str, where: str) -> _Pending:
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where} state: a pending signal must be an object")
        signal = signal_from_state(saved.get("signal"), where)
        if signal.symbol != symbol:
            raise ValueError(f"{where} state: a signal of {signal.symbol!r} under {symbol!r}")
        pending = cls(signal, integer(saved.get("unfilled_after_ms"), "unfilled_after_ms", where))
        for value in items(saved, "horizons", where):
            label, price, gross, net = row(value, 4, where)
            result = HorizonResult(
                text(label, "horizon", where),
                number(price, "horizon price", where),
                number(gross, "horizon gross_bps", where),
                number(net, "horizon net_bps", where),
            )
            pending.horizons[result.horizon] = result
        pending.next_index = integer(saved.get("next_index"), "next_index", where)
        if not 0 <= pending.next_index <= len(HORIZON_LABELS):
            raise ValueError(
                f"{where} state: next_index {pending.next_index} of signal "
                f"{signal.signal_id!r} is outside 0..{len(HORIZON_LABELS)}"
            )
        if list(pending.horizons) != list(HORIZON_LABELS[: pending.next_index]):
            raise ValueError(
                f"{where} state: horizons {list(pending.horizons)} of signal "
                f"{signal.signal_id!r} do not match next_index {pending.next_index}"
            )
        trade = saved.get("trade")
        pending.trade = None if trade is None else trade_from_state(trade, where)
        return pending

    def snapshot(
        self, change: OutcomeChange, horizon: str | None = None, unfilled: bool = False
    ) -> LiveOutcome:
        return LiveOutcome(
            signal=self.signal,
            horizons=dict(self.horizons),
            trade=self.trade,
            trade_unfilled=unfilled,
            change=change,
            changed_horizon=horizon,
        )


class _SymbolState:
    __slots__ = ("last_price", "last_trade_ms", "next_due_ms", "pending")

    def __init__(self) -> None:
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.last_price = 0.0
        self.last_trade_ms = -1
        self.next_due_ms = 0


class LiveScorer:
    """Follows published signals to their outcome (see the module docstring)."""

    def __init__(
        self,
        settings: TradeModelSettings | None = None,
        *,
        max_pending_per_symbol: int = DEFAULT_MAX_PENDING_PER_SYMBOL,
        max_symbols: int = DEFAULT_MAX_SYMBOLS,
    ) -> None:
        if max_pending_per_symbol < 1 or max_symbols < 1:
            raise ValueError("max_pending_per_symbol and max_symbols must be >= 1")
        base = settings if settings is not None else TradeModelSettings()
        self.settings = replace(
            base, max_open_per_symbol=max_pending_per_symbol, max_symbols=max_symbols
        )
        self.simulator = TradeSimulator(self.settings)
        self.max_pending_per_symbol = max_pending_per_symbol
        self.max_symbols = max_symbols
        self._symbols: dict[str, _SymbolState] = {}
        self._by_id: dict[str, _Pending] = {}
        self.followed = 0
        """Signals taken for scoring."""
        self.completed = 0
        """Signals whose outcome is complete (and no longer held)."""
        self.dropped = 0
        """Signals dropped unscored by the bounds."""
        self.duplicates = 0
        """Signals ignored because their id was already followed."""

    @property
    def pending(self) -> int:
        return len(self._by_id)

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]:
        """The state of the symbols ``owns`` accepts, as plain JSON-ready data: per symbol
        the last trade price and time, the next due time and every pending signal (with its
        horizons reached, closed trade and unfilled deadline), and the trade model's state
        (:meth:`TradeSimulator.to_state`). A scorer restored from it with
        :meth:`merge_state` gives the same later outcome updates as this one. Counters
        (:attr:`followed`, :attr:`completed`, :attr:`dropped`, :attr:`duplicates`) are not
        state."""
        return {
            "symbols": [
                {
                    "symbol": symbol,
                    "last_price": state.last_price,
                    "last_trade_ms": state.last_trade_ms,
                    "next_due_ms": state.next_due_ms,
                    "pending": [pending.to_state() for pending in state.pending.values()],
                }
                for symbol, state in self._symbols.items()
                if owns(symbol)
            ],
            "simulator": self.simulator.to_state(owns),
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols (a restored
        symbol replaces this scorer's and becomes the newest; the bounds apply, what they
        drop is counted in :attr:`dropped`). A malformed ``state`` raises ``ValueError``
        naming what is wrong, before anything is restored."""
        where = "live outcomes"
        simulator = mapping(state, "simulator", where)
        loaded: list[tuple[str, _SymbolState]] = []
        seen: set[str] = set()
        for symbol, saved in symbol_entries(state, where):
            entry = _SymbolState()
            entry.last_price = number(saved.get("last_price"), "last_price", where)
            entry.last_trade_ms = integer(saved.get("last_trade_ms"), "last_trade_ms", where)
            entry.next_due_ms = integer(saved.get("next_due_ms"), "next_due_ms", where)
            for value in items(saved, "pending", where):
                pending = _Pending.from_state(value, symbol, where)
                signal_id = pending.signal.signal_id
                other = self._by_id.get(signal_id)
                if signal_id in seen or (other is not None and other.signal.symbol != symbol):
                    raise ValueError(f"{where} state: signal {signal_id!r} twice")
                seen.add(signal_id)
                entry.pending[signal_id] = pending
            if not entry.pending:
                raise ValueError(f"{where} state: no pending signal of {symbol!r}")
            loaded.append((symbol, entry))
        self.simulator.merge_state(simulator)
        for symbol, entry in loaded:
            while len(entry.pending) > self.max_pending_per_symbol:
                entry.pending.popitem(last=False)
                self.dropped += 1
            replaced = self._symbols.pop(symbol, None)
            if replaced is not None:
                for signal_id in replaced.pending:
                    del self._by_id[signal_id]
            elif len(self._symbols) >= self.max_symbols:
                self._drop_oldest_symbol()
            self._symbols[symbol] = entry
            self._by_id.update(entry.pending)

    def on_event(self, event: MarketEvent) -> list[LiveOutcome]:
        """Advance the event's symbol: horizons reached, trades the model closed."""
        closed = self.simulator.on_event(event)
        if not self._by_id:
            return []
        updates = self._closed(closed) if closed else []
        kind = event.__class__
        if kind in _EXCHANGE_CLOCK:
            symbol: str = event.symbol  # type: ignore[union-attr]
            state = self._symbols.get(symbol)
            if state is not None:
                time_ms = event.event_time_ms
                if time_ms > state.next_due_ms:
                    updates.extend(self._advance(symbol, state, time_ms))
                if isinstance(event, Trade) and time_ms >= state.last_trade_ms:
                    state.last_price = event.price
                    state.last_trade_ms = time_ms
        return updates

    def on_signal(self, signal: Signal) -> list[LiveOutcome]:
        """Follow a published signal; returns its first snapshot (and reversals it caused)."""
        if signal.signal_id in self._by_id:
            self.duplicates += 1
            return []
        state = self._symbols.get(signal.symbol)
        if state is None:
            if len(self._symbols) >= self.max_symbols:
                self._drop_oldest_symbol()
            state = self._symbols[signal.symbol] = _SymbolState()
        if len(state.pending) >= self.max_pending_per_symbol:
            _, oldest = state.pending.popitem(last=False)
            del self._by_id[oldest.signal.signal_id]
            self.dropped += 1
        closed = self.simulator.on_signal(signal)
        unfilled_after = signal.event_time_ms + 2 * self.settings.max_hold_ms
        pending = _Pending(signal, unfilled_after)
        state.pending[signal.signal_id] = pending
        self._by_id[signal.signal_id] = pending
        self.followed += 1
        due = pending.due_ms()
        if len(state.pending) == 1 or due < state.next_due_ms:
            state.next_due_ms = due
        updates = [pending.snapshot(OutcomeChange.PUBLISHED)]
        if closed:
            updates.extend(self._closed(closed))
        return updates

    # -- internals --------------------------------------------------------------------------

    def _closed(self, trades: list[ClosedTrade]) -> list[LiveOutcome]:
        updates: list[LiveOutcome] = []
        for trade in trades:
            pending = self._by_id.get(trade.signal_id)
            if pending is None:  # dropped meanwhile
                continue
            pending.trade = trade
            snapshot = pending.snapshot(OutcomeChange.TRADE)
            updates.append(snapshot)
            if snapshot.complete:
                self._forget(pending)
        return updates

    def _advance(self, symbol: str, state: _SymbolState, now_ms: int) -> list[LiveOutcome]:
        updates: list[LiveOutcome] = []
        finished: list[_Pending] = []
        next_due: int | None = None
        for pending in state.pending.values():
            signal = pending.signal
            while pending.next_index < len(HORIZONS):
                label, seconds = HORIZONS[pending.next_index]
                if now_ms <= signal.event_time_ms + seconds * 1000:
                    break
                price = state.last_price if state.last_trade_ms >= signal.event_time_ms else 0.0
                price = price if price > 0.0 else signal.price
                gross, net = trade_pnl_bps(
                    signal.action,
                    signal.price,
                    price,
                    self.settings.fee_bps,
                    self.settings.slippage_bps,
                )
                pending.horizons[label] = HorizonResult(label, price, gross, net)
                pending.next_index += 1
                updates.append(pending.snapshot(OutcomeChange.HORIZON, label))
            if pending.next_index == len(HORIZONS):
                if pending.trade is not None:
                    finished.append(pending)
                    continue
                if now_ms > pending.unfilled_after_ms:
                    updates.append(pending.snapshot(OutcomeChange.UNFILLED, unfilled=True))
                    finished.append(pending)
                    continue
            due = pending.due_ms()
            next_due = due if next_due is None or due < next_due else next_due
        for pending in finished:
            self._forget(pending)
        if symbol in self._symbols:
            state.next_due_ms = next_due if next_due is not None else 0
        return updates

    def _forget(self, pending: _Pending) -> None:
        signal_id = pending.signal.signal_id
        if self._by_id.pop(signal_id, None) is None:
            return
        self.completed += 1
        state = self._symbols.get(pending.signal.symbol)
        if state is not None:
            state.pending.pop(signal_id, None)
            if not state.pending:
                del self._symbols[pending.signal.symbol]

    def _drop_oldest_symbol(self) -> None:
        oldest_symbol = min(
            self._symbols,
            key=lambda s: next(iter(self._symbols[s].pending.values())).signal.event_time_ms,
        )
        state = self._symbols.pop(oldest_symbol)
        for signal_id in state.pending:
            del self._by_id[signal_id]
            self.dropped += 1


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What is stored and served per published signal: its trade-engine payload, its
    provenance and its outcome so far (one record per ``signal_id``, replaced as it grows).

    ``recorded_at_ms`` is the wall time the service first recorded it (retention only).
    """

    signal_id: str
    strategy_id: str
    symbol: str
    action: Action
    config_version: int
    signal_time_ms: int
    price: float
    recorded_at_ms: int
    payload: Mapping[str, JsonValue]
    horizons: Mapping[str, HorizonResult] = field(default_factory=dict)
    trade: ClosedTrade | None = None
    trade_unfilled: bool = False

    def __post_init__(self) -> None:
        if not self.signal_id or not self.strategy_id or not self.symbol:
            raise ValueError("an outcome record needs a signal id, strategy id and symbol")
        if not self.price > 0.0:
            raise ValueError(f"outcome record price must be > 0, got {self.price}")
        unknown = set(self.horizons) - set(HORIZON_LABELS)
        if unknown:
            raise ValueError(f"unknown horizons {sorted(unknown)}")

    @property
    def complete(self) -> bool:
        return len(self.horizons) == len(HORIZONS) and (
            self.trade is not None or self.trade_unfilled
        )

    @classmethod
    def of(
        cls, outcome: LiveOutcome, payload: Mapping[str, JsonValue], recorded_at_ms: int
    ) -> OutcomeRecord:
        signal = outcome.signal
        return cls(
            signal_id=signal.signal_id,
            strategy_id=signal.strategy_id,
            symbol=signal.symbol,
            action=signal.action,
            config_version=signal.config.version,
            signal_time_ms=signal.event_time_ms,
            price=signal.price,
            recorded_at_ms=recorded_at_ms,
            payload=payload,
            horizons=outcome.horizons,
            trade=outcome.trade,
            trade_unfilled=outcome.trade_unfilled,
        )
