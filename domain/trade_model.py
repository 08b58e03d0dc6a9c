"""Trade model: signals become simulated positions, positions become trades with P&L after costs.

One pure, incremental model shared by the backtest (issue 13) and the live scoring of
published signals (issue 14). It is a state machine fed in **event order**, one call at a
time, so the offline and the live driver run it the same way::

    simulator = TradeSimulator(TradeModelSettings(fee_bps=10.0))
    for event in events:
        closed.extend(simulator.on_event(event))        # fills, stops, targets, timeouts
        for signal in strategies_emitting_on(event):
            closed.extend(simulator.on_signal(signal))  # opens one; closes opposite ones
    closed.extend(simulator.finish())                   # end of data (backtest only)

Rules (every time is the exchange's event time; nothing here reads a clock):

- **One position per signal**, sized ``position_notional_usdt`` of the signal's own effective
  configuration (``quantity * price`` when a strategy has no such parameter), long for a buy,
  short for a sell.
- **Entry**: ``FillRule.NEXT_TRADE`` (default) fills at the price of the first trade of the
  symbol handed to :meth:`TradeSimulator.on_event` *after* the signal; ``FillRule.TOUCH``
  fills at once at the touch, crossing the spread (a buy pays the best ask, a sell gets the
  best bid) of the last depth snapshot, else at the last trade price, else the signal's price.
  A position not filled within ``max_hold_seconds`` is dropped as *unfilled* (no trade).
- **Exit**, checked against every later trade of the symbol, first match wins:

  - ``REVERSAL``: an opposite signal of the same strategy and symbol closes every open position
    of the other side, at the same fill rule as an entry (next trade, or the touch at once);
  - ``TIMEOUT``: once event time passes ``entry + max_hold_seconds``, the position is closed
    at the deadline at the last trade price before it (the mark at that moment);
  - ``STOP_LOSS``: a trade at or through the signal's ``stop_loss`` closes the position at
    that trade's price (a stop becomes a market order when touched: never better than its
    level, worse when the market gaps through it);
  - ``TAKE_PROFIT``: a trade at or through the signal's ``take_profit`` closes it at the
    level (a resting limit order);
  - ``END_OF_DATA``: :meth:`TradeSimulator.finish` closes what is still open at the last
    trade price (the backtest's end; live scoring never calls it).

  The trade that fills an entry is not checked against that position's levels: exits start
  with the next one.
- **Costs**: slippage ``slippage_bps`` moves both fills against the position; fees
  ``fee_bps`` are charged per side on the filled notional. With direction ``d`` (+1 long,
  −1 short), ``s`` and ``f`` as fractions::

      entry_fill = entry * (1 + d*s)        exit_fill = exit * (1 - d*s)
      gross_bps  = d * (exit - entry) / entry * 1e4           (the bare price move)
      net_bps    = (d * (exit_fill / entry_fill - 1) - f * (1 + exit_fill / entry_fill)) * 1e4
      net_usdt   = notional * net_bps / 1e4

- **Bounded state**: at most ``max_open_per_symbol`` positions per symbol (the oldest is
  dropped and counted in :attr:`TradeSimulator.dropped`) and ``max_symbols`` symbols (the
  oldest symbol without open positions is forgotten first).

:class:`PnlTally` aggregates closed trades incrementally (count, wins after costs, sums,
drawdown of the cumulative net curve, exposure, breakdown by exit reason), so a live scorer
keeps running totals without keeping the trades.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from itertools import islice

from domain.market import DepthSnapshot, MarketEvent, Ticker, Trade
from domain.signal import Action, Signal
from domain.state import (
    flag,
    integer,
    items,
    number,
    optional_positive,
    positive,
    row,
    symbol_entries,
    text,
)

BPS = 1e4


class FillRule(StrEnum):
    """How a position is entered (and closed on a reversal)."""

    NEXT_TRADE = "next_trade"
    """At the price of the first trade of the symbol after the signal."""
    TOUCH = "touch"
    """At once at the touch: a buy at the best ask, a sell at the best bid."""


class ExitReason(StrEnum):
    """Why a position was closed."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    REVERSAL = "reversal"
    TIMEOUT = "timeout"
    END_OF_DATA = "end_of_data"


EXIT_REASONS: tuple[ExitReason, ...] = tuple(ExitReason)


@dataclass(frozen=True, slots=True)
class TradeModelSettings:
    """Fill rule, holding limit, costs and bounds of the model (validated)."""

    fill: FillRule = FillRule.NEXT_TRADE
    fee_bps: float = 10.0
    """Fee per side, in basis points of the filled notional (Binance spot: ~10)."""
    slippage_bps: float = 0.0
    """Price concession per fill, in basis points, always against the position."""
    max_hold_seconds: float = 300.0
    max_open_per_symbol: int = 1_000
    max_symbols: int = 10_000

    def __post_init__(self) -> None:
        if not isinstance(self.fill, FillRule):
            raise ValueError(f"fill must be a FillRule, got {self.fill!r}")
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not (0.0 <= value < 10_000.0):
                raise ValueError(f"{name} must be within [0, 10000), got {value}")
        if not (0.0 < self.max_hold_seconds < math.inf):
            raise ValueError(
                f"max_hold_seconds must be finite and > 0, got {self.max_hold_seconds}"
            )
        if self.max_open_per_symbol < 1 or self.max_symbols < 1:
            raise ValueError("max_open_per_symbol and max_symbols must be >= 1")

    @property
    def max_hold_ms(self) -> int:
        return round(self.max_hold_seconds * 1000)

    def as_dict(self) -> dict[str, str | float | int]:
        return {
            "fill": self.fill.value,
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
            "max_hold_seconds": self.max_hold_seconds,
        }


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One simulated round trip of one signal, with its P&L before and after costs."""

    signal_id: str
    strategy_id: str
    symbol: str
    config_version: int
    action: Action
    signal_time_ms: int
    entry_time_ms: int
    entry_price: float
    exit_time_ms: int
    exit_price: float
    exit_reason: ExitReason
    notional_usdt: float
    gross_bps: float
    net_bps: float

    @property
    def net_usdt(self) -> float:
        return self.notional_usdt * self.net_bps / BPS

    @property
    def exposure_seconds(self) -> float:
        return (self.exit_time_ms - self.entry_time_ms) / 1000.0

    @property
    def is_win(self) -> bool:
        """A win is a trade that made money after fees and slippage."""
        return self.net_bps > 0.0


def trade_pnl_bps(
    action: Action, entry: float, exit_: float, fee_bps: float, slippage_bps: float
) -> tuple[float, float]:
    """(gross, net) basis points of a round trip from ``entry`` to ``exit_`` (formulas above)."""
    d = 1.0 if action is Action.BUY else -1.0
    slip = slippage_bps / BPS
    entry_fill = entry * (1.0 + d * slip)
    exit_fill = exit_ * (1.0 - d * slip)
    ratio = exit_fill / entry_fill
    gross = d * (exit_ - entry) / entry * BPS
    net = (d * (ratio - 1.0) - fee_bps / BPS * (1.0 + ratio)) * BPS
    return gross, net


def trade_to_state(trade: ClosedTrade) -> dict[str, object]:
    """``trade`` as plain JSON-ready data, field by field (enums as their value), for state
    snapshots."""
    return {
        name: value.value if isinstance(value := getattr(trade, name), StrEnum) else value
        for name in _TRADE_FIELDS
    }


def trade_from_state(state: object, where: str) -> ClosedTrade:
    """The trade :func:`trade_to_state` gave (``ValueError`` naming what is wrong)."""
    if not isinstance(state, Mapping):
        raise ValueError(f"{where} state: a trade must be an object, got {state!r:.80}")
    values = {name: _TRADE_FIELDS[name](state.get(name), name, where) for name in _TRADE_FIELDS}
    return ClosedTrade(**values)  # type: ignore[arg-type]


def _enum_reader(kind: type[StrEnum]) -> Callable[[object, str, str], object]:
    return lambda value, what, where: kind(text(value, what, where))


_READERS: Mapping[str, Callable[[object, str, str], object]] = {
    "str": text,
    "int": integer,
    "float": number,
    "Action": _enum_reader(Action),
    "ExitReason": _enum_reader(ExitReason),
}
_TRADE_FIELDS: Mapping[str, Callable[[object, str, str], object]] = {
    spec.name: _READERS[str(spec.type)] for spec in fields(ClosedTrade)
}
"""Each field of :class:`ClosedTrade` with how its snapshot value is read back."""


class _Position:
    """A signal's position: pending entry (``entry_price`` None) or open."""

    __slots__ = (
        "action",
        "closing",
        "config_version",
        "deadline_ms",
        "entry_price",
        "entry_time_ms",
        "is_buy",
        "notional",
        "signal_id",
        "signal_time_ms",
        "stop_loss",
        "strategy_id",
        "symbol",
        "take_profit",
    )

    def __init__(self, signal: Signal, notional: float) -> None:
        self.signal_id = signal.signal_id
        self.strategy_id = signal.strategy_id
        self.symbol = signal.symbol
        self.config_version = signal.config.version
        self.action = signal.action
        self.is_buy = signal.action is Action.BUY
        self.signal_time_ms = signal.event_time_ms
        self.stop_loss = signal.stop_loss
        self.take_profit = signal.take_profit
        self.notional = notional
        self.entry_price: float | None = None
        self.entry_time_ms = signal.event_time_ms
        self.deadline_ms = 0
        self.closing = False
        """An opposite signal came: close at the next fill."""

    def to_row(self) -> list[object]:
        """Every slot but the symbol (its state's) and ``is_buy`` (the action's)."""
        return [
            self.signal_id,
            self.strategy_id,
            self.config_version,
            self.action.value,
            self.signal_time_ms,
            self.stop_loss,
            self.take_profit,
            self.notional,
            self.entry_price,
            self.entry_time_ms,
            self.deadline_ms,
            self.closing,
        ]

    @classmethod
    def from_row(cls, value: object, symbol: str, where: str) -> _Position:
        (
            signal_id,
            strategy_id,
            config_version,
            action,
            signal_time_ms,
            stop_loss,
            take_profit,
            notional,
            entry_price,
            entry_time_ms,
            deadline_ms,
            closing,
        ) = row(value, 12, where)
        position = cls.__new__(cls)
        position.signal_id = text(signal_id, "position signal_id", where)
        position.strategy_id = text(strategy_id, "position strategy_id", where)
        position.symbol = symbol
        position.config_version = integer(config_version, "position config_version", where)
        position.action = Action(text(action, "position action", where))
        position.is_buy = position.action is Action.BUY
        position.signal_time_ms = integer(signal_time_ms, "position signal_time_ms", where)
        position.stop_loss = positive(stop_loss, "position stop_loss", where)
        position.take_profit = positive(take_profit, "position take_profit", where)
        position.notional = positive(notional, "position notional", where)
        position.entry_price = optional_positive(entry_price, "position entry_price", where)
        position.entry_time_ms = integer(entry_time_ms, "position entry_time_ms", where)
        position.deadline_ms = integer(deadline_ms, "position deadline_ms", where)
        position.closing = flag(closing, "position closing", where)
        return position


_NEVER = 2**63


class _SymbolState:
    __slots__ = ("ask", "bid", "expires_ms", "last_price", "now_ms", "positions")

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.bid: float | None = None
        self.ask: float | None = None
        self.now_ms = -1
        self.positions: deque[_Position] = deque()
        self.expires_ms = _NEVER
        """No position times out (or goes unfilled) while ``now_ms`` is at most this: a lower
        bound of their deadlines, exact after each :meth:`TradeSimulator._advance` scan."""


def signal_notional(signal: Signal) -> float:
    """The position size of a signal: its config's ``position_notional_usdt``, else qty × price."""
    value = signal.config.parameters.get("position_notional_usdt")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < math.inf:
        return float(value)
    return signal.quantity * signal.price


class TradeSimulator:
    """The incremental trade model (see the module docstring for the rules).

    Feed every market event with :meth:`on_event` and every signal with :meth:`on_signal`,
    in event order, the event before the signals it produced. Each call returns the trades
    it closed, in the order they closed.
    """

    def __init__(self, settings: TradeModelSettings | None = None) -> None:
        self.settings = settings if settings is not None else TradeModelSettings()
        self._touch = self.settings.fill is FillRule.TOUCH
        self._max_hold_ms = self.settings.max_hold_ms
        self._symbols: dict[str, _SymbolState] = {}
        self.opened = 0
        """Positions opened (signals taken)."""
        self.unfilled = 0
        """Positions never filled (no trade of the symbol within ``max_hold_seconds``)."""
        self.dropped = 0
        """Positions dropped unclosed by the per-symbol bound."""

    # -- state ------------------------------------------------------------------------------

    @property
    def open_positions(self) -> int:
        return sum(len(state.positions) for state in self._symbols.values())

    def _state(self, symbol: str) -> _SymbolState:
        state = self._symbols.get(symbol)
        if state is None:
            if len(self._symbols) >= self.settings.max_symbols:
                self._forget_one()
            state = self._symbols[symbol] = _SymbolState()
        return state

    def _forget_one(self, keep: Collection[str] = ()) -> None:
        for symbol, state in self._symbols.items():
            if not state.positions and symbol not in keep:
                del self._symbols[symbol]
                return

    # -- state snapshots --------------------------------------------------------------------

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]:
        """The per-symbol state of the symbols ``owns`` accepts, as plain JSON-ready data:
        last trade price, touch, clock, expiry bound and every position (pending or open).
        Counters (:attr:`opened`, :attr:`unfilled`, :attr:`dropped`) are not state."""
        return {
            "symbols": [
                {
                    "symbol": symbol,
                    "last_price": state.last_price,
                    "bid": state.bid,
                    "ask": state.ask,
                    "now_ms": state.now_ms,
                    "expires_ms": state.expires_ms,
                    "positions": [position.to_row() for position in state.positions],
                }
                for symbol, state in self._symbols.items()
                if owns(symbol)
            ]
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols (a restored
        symbol replaces this one's and becomes the newest; the bounds apply, the symbol bound
        to the symbols held before). A malformed
        ``state`` raises ``ValueError`` naming what is wrong, before anything is restored."""
        where = "trade model"
        loaded: list[tuple[str, _SymbolState]] = []
        for symbol, saved in symbol_entries(state, where):
            entry = _SymbolState()
            entry.last_price = optional_positive(saved.get("last_price"), "last_price", where)
            entry.bid = optional_positive(saved.get("bid"), "bid", where)
            entry.ask = optional_positive(saved.get("ask"), "ask", where)
            entry.now_ms = integer(saved.get("now_ms"), "now_ms", where)
            entry.expires_ms = integer(saved.get("expires_ms"), "expires_ms", where)
            entry.positions = deque(
                _Position.from_row(value, symbol, where)
                for value in items(saved, "positions", where)
            )
            loaded.append((symbol, entry))
        bound = self.settings.max_open_per_symbol
        restored = {symbol for symbol, _ in loaded}
        for symbol, entry in loaded:
            while len(entry.positions) > bound:
                entry.positions.popleft()
                self.dropped += 1
            if self._symbols.pop(symbol, None) is None and len(self._symbols) >= (
                self.settings.max_symbols
            ):
                # Room is made among the symbols held before: a snapshot restores all of its
                # own (the live model, too, may exceed the bound while positions are open).
                self._forget_one(keep=restored)
            self._symbols[symbol] = entry

    # -- inputs -----------------------------------------------------------------------------

    def on_event(self, event: MarketEvent) -> list[ClosedTrade]:
        """Advance the event's symbol: fill pending entries, check exits, record prices.

        Trades fill and close positions; depth snapshots keep the touch; trades, depth and
        tickers (the exchange's clock) expire timeouts. Other events change nothing.
        """
        if event.__class__ is Trade:  # the common case first, without a call when idle
            state = self._symbols.get(event.symbol)
            if state is not None and not state.positions:
                state.last_price = event.price
                if event.event_time_ms > state.now_ms:
                    state.now_ms = event.event_time_ms
                return []
        if isinstance(event, Trade):
            return self._on_trade(event)
        if isinstance(event, DepthSnapshot):
            return self._on_depth(event)
        if isinstance(event, Ticker):  # the exchange's own clock moves on (timeouts)
            state = self._symbols.get(event.symbol)
            if state is not None and state.positions:
                return self._advance(state, event.event_time_ms)
        return []  # other venues' quotes and on-chain events run on other clocks

    def on_signal(self, signal: Signal) -> list[ClosedTrade]:
        """Open the signal's position; close opposite positions of its strategy and symbol."""
        state = self._state(signal.symbol)
        closed = self._advance(state, signal.event_time_ms) if state.positions else []
        time_ms = max(state.now_ms, signal.event_time_ms)
        if state.positions:
            keep: deque[_Position] = deque()
            for position in state.positions:
                if (
                    position.strategy_id == signal.strategy_id
                    and position.action is not signal.action
                ):
                    if self._touch and position.entry_price is not None:
                        price = self._touch_price(state, signal, buying=not position.is_buy)
                        closed.append(self._close(position, price, time_ms, ExitReason.REVERSAL))
                        continue
                    position.closing = True
                keep.append(position)
            state.positions = keep
        position = _Position(signal, signal_notional(signal))
        if self._touch:
            self._fill(position, self._touch_price(state, signal, buying=position.is_buy), time_ms)
        if len(state.positions) >= self.settings.max_open_per_symbol:
            state.positions.popleft()
            self.dropped += 1
        state.positions.append(position)
        expiry = (
            position.deadline_ms if self._touch else position.signal_time_ms + self._max_hold_ms
        )
        state.expires_ms = min(state.expires_ms, expiry)
        self.opened += 1
        return closed

    def finish(self) -> list[ClosedTrade]:
        """Close every open position at its symbol's last trade price (end of the data).

        Positions whose holding time has already run out close as timeouts at their deadline;
        positions never filled are counted as unfilled.
        """
        closed: list[ClosedTrade] = []
        for state in self._symbols.values():
            for position in state.positions:
                if position.entry_price is None:
                    self.unfilled += 1
                    continue
                price = state.last_price if state.last_price is not None else position.entry_price
                if state.now_ms > position.deadline_ms:
                    closed.append(
                        self._close(position, price, position.deadline_ms, ExitReason.TIMEOUT)
                    )
                else:
                    end = max(state.now_ms, position.entry_time_ms)
                    closed.append(self._close(position, price, end, ExitReason.END_OF_DATA))
            state.positions.clear()
        return closed

    # -- internals --------------------------------------------------------------------------

    def _touch_price(self, state: _SymbolState, signal: Signal, *, buying: bool) -> float:
        touch = state.ask if buying else state.bid
        if touch is not None:
            return touch
        return state.last_price if state.last_price is not None else signal.price

    def _fill(self, position: _Position, price: float, time_ms: int) -> None:
        position.entry_price = price
        position.entry_time_ms = max(time_ms, position.signal_time_ms)
        position.deadline_ms = position.entry_time_ms + self._max_hold_ms

    def _close(
        self, position: _Position, price: float, time_ms: int, reason: ExitReason
    ) -> ClosedTrade:
        entry = position.entry_price
        assert entry is not None
        settings = self.settings
        gross, net = trade_pnl_bps(
            position.action, entry, price, settings.fee_bps, settings.slippage_bps
        )
        return ClosedTrade(
            signal_id=position.signal_id,
            strategy_id=position.strategy_id,
            symbol=position.symbol,
            config_version=position.config_version,
            action=position.action,
            signal_time_ms=position.signal_time_ms,
            entry_time_ms=position.entry_time_ms,
            entry_price=entry,
            exit_time_ms=max(time_ms, position.entry_time_ms),
            exit_price=price,
            exit_reason=reason,
            notional_usdt=position.notional,
            gross_bps=gross,
            net_bps=net,
        )

    def _advance(self, state: _SymbolState, time_ms: int) -> list[ClosedTrade]:
        """Move the symbol's clock to ``time_ms``: timeouts and unfilled entries expire."""
        if time_ms > state.now_ms:
            state.now_ms = time_ms
        now = state.now_ms
        if now <= state.expires_ms:
            return []
        closed: list[ClosedTrade] = []
        keep: deque[_Position] = deque()
        max_hold = self._max_hold_ms
        expires_ms = _NEVER
        for position in state.positions:
            if position.entry_price is None:
                expiry = position.signal_time_ms + max_hold
                if now > expiry:
                    self.unfilled += 1
                    continue
            else:
                expiry = position.deadline_ms
                if now > expiry:
                    price = (
                        state.last_price if state.last_price is not None else position.entry_price
                    )
                    closed.append(self._close(position, price, expiry, ExitReason.TIMEOUT))
                    continue
            expires_ms = min(expires_ms, expiry)
            keep.append(position)
        if len(keep) != len(state.positions):
            state.positions = keep
        state.expires_ms = expires_ms
        return closed

    def _on_depth(self, depth: DepthSnapshot) -> list[ClosedTrade]:
        state = self._symbols.get(depth.symbol)
        if state is None:
            if not self._touch:
                return []  # the touch is needed only to fill at it
            state = self._state(depth.symbol)
        if depth.bids:
            state.bid = depth.bids[0][0]
        if depth.asks:
            state.ask = depth.asks[0][0]
        if state.positions:
            return self._advance(state, depth.event_time_ms)
        if depth.event_time_ms > state.now_ms:
            state.now_ms = depth.event_time_ms
        return []

    def _on_trade(self, trade: Trade) -> list[ClosedTrade]:
        symbol = trade.symbol
        state = self._symbols.get(symbol)
        if state is None:
            state = self._state(symbol)
        if not state.positions:
            state.last_price = trade.price
            if trade.event_time_ms > state.now_ms:
                state.now_ms = trade.event_time_ms
            return []
        closed = self._advance(state, trade.event_time_ms)
        price = trade.price
        time_ms = trade.event_time_ms
        positions = state.positions
        keep: deque[_Position] | None = None  # built when the first position leaves
        for index, position in enumerate(positions):
            if position.entry_price is None:
                self._fill(position, price, time_ms)
                if not position.closing:
                    if keep is not None:
                        keep.append(position)
                    continue
                reason, exit_price = ExitReason.REVERSAL, price
            else:
                side = 1.0 if position.is_buy else -1.0
                if position.closing:
                    reason, exit_price = ExitReason.REVERSAL, price
                elif side * (price - position.stop_loss) <= 0.0:
                    reason, exit_price = ExitReason.STOP_LOSS, price
                elif side * (price - position.take_profit) >= 0.0:
                    reason, exit_price = ExitReason.TAKE_PROFIT, position.take_profit
                else:
                    if keep is not None:
                        keep.append(position)
                    continue
            if keep is None:
                keep = deque(islice(positions, index))
            closed.append(self._close(position, exit_price, time_ms, reason))
        if keep is not None:
            state.positions = keep
        state.last_price = price
        return closed


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclass(frozen=True, slots=True)
class ReasonSummary:
    trades: int
    net_pnl_bps: float


@dataclass(frozen=True, slots=True)
class PnlSummary:
    """Totals of a set of closed trades (``hit_rate``/``mean_net_bps`` None without trades)."""

    trades: int
    wins: int
    gross_pnl_bps: float
    net_pnl_bps: float
    net_pnl_usdt: float
    max_drawdown_bps: float
    exposure_seconds: float
    by_exit_reason: Mapping[ExitReason, ReasonSummary]

    @property
    def hit_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def mean_net_bps(self) -> float | None:
        return self.net_pnl_bps / self.trades if self.trades else None


@dataclass(slots=True)
class PnlTally:
    """Running totals of closed trades, added in the order they closed.

    ``max_drawdown_bps`` is the largest fall of the cumulative net bps curve from its running
    peak (the curve starts at 0, so a first losing trade is a drawdown).
    """

    trades: int = 0
    wins: int = 0
    gross_pnl_bps: float = 0.0
    net_pnl_bps: float = 0.0
    net_pnl_usdt: float = 0.0
    exposure_seconds: float = 0.0
    peak_bps: float = 0.0
    max_drawdown_bps: float = 0.0
    reason_trades: dict[ExitReason, int] = field(default_factory=dict)
    reason_net_bps: dict[ExitReason, float] = field(default_factory=dict)

    def add(self, trade: ClosedTrade) -> None:
        self.trades += 1
        if trade.is_win:
            self.wins += 1
        self.gross_pnl_bps += trade.gross_bps
        self.net_pnl_bps += trade.net_bps
        self.net_pnl_usdt += trade.net_usdt
        self.exposure_seconds += trade.exposure_seconds
        if self.net_pnl_bps > self.peak_bps:
            self.peak_bps = self.net_pnl_bps
        drawdown = self.peak_bps - self.net_pnl_bps
        if drawdown > self.max_drawdown_bps:
            self.max_drawdown_bps = drawdown
        reason = trade.exit_reason
        self.reason_trades[reason] = self.reason_trades.get(reason, 0) + 1
        self.reason_net_bps[reason] = self.reason_net_bps.get(reason, 0.0) + trade.net_bps

    def extend(self, trades: Iterable[ClosedTrade]) -> PnlTally:
        for trade in trades:
            self.add(trade)
        return self

    def summary(self) -> PnlSummary:
        return PnlSummary(
            trades=self.trades,
            wins=self.wins,
            gross_pnl_bps=self.gross_pnl_bps,
            net_pnl_bps=self.net_pnl_bps,
            net_pnl_usdt=self.net_pnl_usdt,
            max_drawdown_bps=self.max_drawdown_bps,
            exposure_seconds=self.exposure_seconds,
            by_exit_reason={
                reason: ReasonSummary(self.reason_trades[reason], self.reason_net_bps[reason])
                for reason in EXIT_REASONS
                if reason in self.reason_trades
            },
        )
