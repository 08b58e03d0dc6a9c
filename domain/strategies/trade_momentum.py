"""trade_momentum: time-decayed tick direction and taker flow over the last trades."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from domain.market import MarketEvent, Trade
from domain.params import CommonParams, FieldError, param
from domain.signal import Action
from domain.state import items, mapping, row
from domain.strategies.base import Decision, Held, Owns
from domain.strategies.hysteresis import (
    Hysteresis,
    confirm_seconds_param,
    hysteresis_switch,
    rearm_margin_param,
)

_CONFIDENCE_CAP = 0.95
_INF = math.inf
CONFIRM_SECONDS = 1.0
REARM_MARGIN = 0.2
_exp = math.exp

# One window entry: (event_time_ms, price, quantity, taker side +1.0 buy / -1.0 sell).
_Entry = tuple[int, float, float, float]


@dataclass(frozen=True, slots=True)
class TradeMomentumParams(CommonParams):
    """Parameters of :class:`TradeMomentumStrategy` (SPEC §5)."""

    strategy_id: ClassVar[str] = "trade_momentum"

    price_weight: float = param(
        0.4, min=0.0, max=1.0, description="Weight of the tick-direction score in the momentum."
    )
    quantity_weight: float = param(
        0.3, min=0.0, max=1.0, description="Weight of the signed-volume score in the momentum."
    )
    maker_weight: float = param(
        0.3,
        min=0.0,
        max=1.0,
        description="Weight of the signed-count (taker buy vs taker sell) score in the momentum.",
    )
    buy_threshold: float = param(
        0.7, min=0.3, max=1.0, description="Buy when the momentum (in [-1, 1]) is above this."
    )
    sell_threshold: float = param(
        -0.7, min=-1.0, max=-0.3, description="Sell when the momentum (in [-1, 1]) is below this."
    )
    min_quantity: float = param(
        0.001,
        min=0.0001,
        max=1.0,
        description="Trades with a smaller quantity are ignored (not part of the window).",
    )
    base_confidence: float = param(
        0.68,
        min=0.5,
        max=1.0,
        description="Confidence of a signal just past its threshold (grows up to 0.95).",
    )
    time_decay_seconds: int = param(
        300,
        min=60,
        max=600,
        description="A trade's weight in the window is exp(-age / time_decay_seconds).",
    )
    momentum_window: int = param(
        10,
        min=5,
        max=50,
        description="Number of most recent qualifying trades the momentum is computed over.",
    )
    hysteresis: bool = hysteresis_switch()
    confirm_seconds: float = confirm_seconds_param(
        CONFIRM_SECONDS, "its threshold has been crossed"
    )
    rearm_margin: float = rearm_margin_param(REARM_MARGIN, 1.0, "momentum")

    def cross_field_errors(self) -> list[FieldError]:
        return self.below("sell_threshold", "buy_threshold") + self.some_weight(
            "price_weight", "quantity_weight", "maker_weight"
        )


class TradeMomentumStrategy:
    """Trade momentum: follow a run of same-direction, aggressor-driven trades.

    Business rules, per symbol:

    * Trades with ``quantity < min_quantity`` are ignored entirely (no state change, no
      decision). The others enter a window of the last ``momentum_window`` trades; nothing
      is decided until the window is full.
    * Each trade ``i`` in the window weighs ``w_i = exp(-age_i / time_decay_seconds)``, its
      age measured in event time from the current trade (never negative: a trade stamped
      later than the current one weighs 1).
    * Three scores, each in [-1, 1]:

      - tick direction ``Σ w_i·sign(p_i - p_{i-1}) / Σ w_i`` over the consecutive pairs of
        the window (a zero tick counts 0; the pair weighs as its later trade);
      - signed volume ``Σ w_i·s_i·q_i / Σ w_i·q_i`` with ``s_i = +1`` for a taker buy
        (Binance ``m`` false) and ``-1`` for a taker sell;
      - signed count ``Σ w_i·s_i / Σ w_i``.

    * ``momentum`` is the mean of the three scores weighted by ``price_weight``,
      ``quantity_weight`` and ``maker_weight`` (no decision if they sum to 0).
    * Buy when ``momentum > buy_threshold``, sell when ``momentum < sell_threshold``, at the
      trade price. Confidence = ``base_confidence + (0.95 - base_confidence) *
      min(1, excess / (1 - |threshold|))`` where ``excess`` is how far momentum passed the
      threshold; capped at 0.95. Each side fires once per crossing (``confirm_seconds``,
      ``rearm_margin``: :class:`~domain.strategies.hysteresis.Hysteresis`).
    * After a configuration change the window is kept: a new ``momentum_window`` keeps the
      newest trades, a higher ``min_quantity`` stops counting the now-too-small ones.
    """

    strategy_id: ClassVar[str] = TradeMomentumParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = TradeMomentumParams
    consumes: ClassVar[tuple[type, ...]] = (Trade,)

    __slots__ = ("_windows", "hysteresis")

    def __init__(self) -> None:
        self._windows: dict[str, deque[_Entry]] = {}
        self.hysteresis = Hysteresis()

    def config_symbol(self, event: MarketEvent) -> str | None:
        return event.symbol if isinstance(event, Trade) else None

    def forget_symbol(self, symbol: str) -> None:
        """Drop the state kept for ``symbol``."""
        self._windows.pop(symbol, None)
        self.hysteresis.forget_symbol(symbol)

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The trade windows (with their sizes) and crossing state of the symbols ``owns``
        accepts (plain data)."""
        return {
            "windows": {
                symbol: {"size": window.maxlen, "trades": [list(entry) for entry in window]}
                for symbol, window in self._windows.items()
                if owns(symbol)
            },
            "hysteresis": self.hysteresis.to_state(owns),
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols."""
        where = self.strategy_id
        windows: dict[str, deque[_Entry]] = {}
        for symbol, saved in mapping(state, "windows", where).items():
            size = saved.get("size") if isinstance(saved, Mapping) else None
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"{where} state: window of {symbol!r} has no valid size")
            windows[str(symbol)] = deque(
                (
                    (int(t), float(p), float(q), float(side))
                    for t, p, q, side in (row(e, 4, where) for e in items(saved, "trades", where))
                ),
                maxlen=size,
            )
        hysteresis = mapping(state, "hysteresis", where)
        self.hysteresis.merge_state(hysteresis)
        self._windows.update(windows)

    def on_event(self, event: MarketEvent, params: TradeMomentumParams) -> Decision | Held | None:
        proposal = self.propose(event, params)
        if proposal is None or isinstance(proposal, str):
            return proposal
        return proposal.decide()

    def propose(
        self, event: MarketEvent, params: TradeMomentumParams
    ) -> _MomentumProposal | Held | None:
        """Update the window; the action it calls for (``decide()`` builds the Decision)."""
        if not isinstance(event, Trade):
            return None
        min_quantity = params.min_quantity
        quantity = event.quantity
        if quantity < min_quantity:
            return None
        size = params.momentum_window
        window = self._windows.get(event.symbol)
        if window is None or window.maxlen != size:
            window = deque(window or (), maxlen=size)
            self._windows[event.symbol] = window
        now = event.event_time_ms
        price = event.price
        window.append((now, price, quantity, -1.0 if event.is_buyer_maker else 1.0))
        if len(window) < size:
            return None

        decay_ms = params.time_decay_seconds * 1000.0
        inv_decay = 1.0 / decay_ms if decay_ms > 0.0 else _INF
        # age * -inv_decay is exactly -age * inv_decay (IEEE products are sign-symmetric),
        # without negating an int per trade.
        neg_inv_decay = -inv_decay
        w_sum = 0.0
        signed_count = 0.0
        q_sum = 0.0
        signed_q = 0.0
        pair_w = 0.0
        tick = 0.0
        prev_price = -1.0
        for t, p, q, side in window:
            if q < min_quantity:
                # A trade kept from before min_quantity was raised: it does not count, so the
                # window is short of ``size`` qualifying trades and there is no decision.
                return None
            age = now - t
            w = _exp(age * neg_inv_decay) if age > 0 else 1.0
            w_sum += w
            signed_count += w * side
            wq = w * q
            q_sum += wq
            signed_q += wq * side
            if prev_price > 0.0:
                pair_w += w
                if p > prev_price:
                    tick += w
                elif p < prev_price:
                    tick -= w
            prev_price = p
        count = size

        # The current trade weighs 1, so w_sum >= 1 and q_sum >= min_quantity > 0 unless
        # the quantities overflow.
        tick_score = tick / pair_w if pair_w > 0.0 else 0.0
        volume_score = signed_q / q_sum if 0.0 < q_sum < _INF else 0.0
        count_score = signed_count / w_sum if w_sum > 0.0 else 0.0
        wp = params.price_weight
        wv = params.quantity_weight
        wc = params.maker_weight
        weights = wp + wv + wc
        if not weights > 0.0:
            return None
        momentum = (wp * tick_score + wv * volume_score + wc * count_score) / weights

        buy_threshold = params.buy_threshold
        sell_threshold = params.sell_threshold
        if momentum > buy_threshold:
            action: Action | None = Action.BUY
        elif momentum < sell_threshold:
            action = Action.SELL
        elif momentum == momentum:
            action = None
        else:  # NaN: no metric to observe
            return None
        margin = params.rearm_margin
        if params.hysteresis:
            fired = self.hysteresis.judge(
                event.symbol,
                now,
                momentum,
                action,
                buy_threshold - margin,
                sell_threshold + margin,
                params.confirm_seconds * 1000.0,
            )
        else:
            fired = action
        if not isinstance(fired, Action):
            return fired  # None, or the reason the side is held
        if fired is Action.BUY:
            excess = momentum - buy_threshold
            room = 1.0 - abs(buy_threshold)
        else:
            excess = sell_threshold - momentum
            room = 1.0 - abs(sell_threshold)
        return _MomentumProposal(
            event.symbol,
            fired,
            params.base_confidence,
            price,
            excess,
            room,
            momentum,
            tick_score,
            volume_score,
            count_score,
            count,
        )


class _MomentumProposal(NamedTuple):
    """What :meth:`TradeMomentumStrategy.propose` found; ``decide()`` builds the Decision.

    A named tuple: cheap to create, which matters because the cooldown drops most of them.
    """

    symbol: str
    action: Action
    base_confidence: float
    price: float
    excess: float
    room: float
    momentum: float
    tick_score: float
    volume_score: float
    count_score: float
    window_trades: int

    def decide(self) -> Decision:
        room = self.room
        fraction = self.excess / room if room > 0.0 else 1.0
        if not fraction < 1.0:
            fraction = 1.0
        elif not fraction > 0.0:
            fraction = 0.0
        base = self.base_confidence
        confidence = base + (_CONFIDENCE_CAP - base) * fraction
        if not confidence <= _CONFIDENCE_CAP:
            confidence = _CONFIDENCE_CAP
        elif not confidence > 0.0:
            confidence = 0.0
        price = self.price
        return Decision(
            symbol=self.symbol,
            action=self.action,
            confidence=confidence,
            price=price,
            current_price=price,
            indicators={
                "momentum": self.momentum,
                "tick_score": self.tick_score,
                "volume_score": self.volume_score,
                "count_score": self.count_score,
                "window_trades": float(self.window_trades),
            },
        )
