"""orderbook_skew: order-book imbalance of the top levels of a partial depth snapshot."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from domain.market import DepthSnapshot, MarketEvent
from domain.params import CommonParams, FieldError, param
from domain.signal import Action
from domain.state import mapping
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
REARM_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class OrderbookSkewParams(CommonParams):
    """Parameters of :class:`OrderbookSkewStrategy` (SPEC §5)."""

    strategy_id: ClassVar[str] = "orderbook_skew"

    top_levels: int = param(
        5, min=1, max=20, description="Number of best levels per side summed into the volumes."
    )
    buy_threshold: float = param(
        1.2, min=1.0, max=3.0, description="Buy when bid volume / ask volume is above this."
    )
    sell_threshold: float = param(
        0.8, min=0.3, max=1.0, description="Sell when bid volume / ask volume is below this."
    )
    min_spread_percent: float = param(
        0.1,
        min=0.01,
        max=1.0,
        description=(
            "Despite its name, the WIDEST spread (percent of best bid) at which a signal is "
            "allowed; wider books stay silent."
        ),
    )
    base_confidence: float = param(
        0.70,
        min=0.5,
        max=1.0,
        description="Confidence of a signal just past its threshold (grows up to 0.95).",
    )
    imbalance_weight: float = param(
        0.6,
        min=0.0,
        max=1.0,
        description="Weight of the imbalance strength in the confidence boost.",
    )
    spread_weight: float = param(
        0.4,
        min=0.0,
        max=1.0,
        description="Weight of the spread tightness in the confidence boost.",
    )
    min_total_volume: float = param(
        0.001,
        min=0.0001,
        max=10.0,
        description="No signal when bid + ask volume over the top levels is below this.",
    )
    hysteresis: bool = hysteresis_switch()
    confirm_seconds: float = confirm_seconds_param(
        CONFIRM_SECONDS, "its threshold has been crossed"
    )
    rearm_margin: float = rearm_margin_param(REARM_MARGIN, 1.0, "ratio")

    def cross_field_errors(self) -> list[FieldError]:
        return self.below("sell_threshold", "buy_threshold") + self.some_weight(
            "imbalance_weight", "spread_weight"
        )


class OrderbookSkewStrategy:
    """Order-book skew: trade in the direction of the heavier side of the book.

    Business rules, per depth snapshot (stateless; each snapshot is judged on its own):

    * ``bid_volume`` / ``ask_volume`` = sum of the quantities of the best ``top_levels``
      levels of each side; ``ratio = bid_volume / ask_volume``.
    * ``spread_percent = (best_ask - best_bid) / best_bid * 100``.
    * No signal when a side is empty, ``ask_volume`` is 0, ``bid_volume + ask_volume`` is
      below ``min_total_volume``, ``spread_percent`` is above ``min_spread_percent`` (the
      widest spread allowed), or the numbers are not finite.
    * Buy when ``ratio > buy_threshold`` at the best bid; sell when ``ratio < sell_threshold``
      at the best ask. ``current_price`` is the mid. Each side fires once per crossing
      (``confirm_seconds``, ``rearm_margin``: :class:`~domain.strategies.hysteresis.Hysteresis`).
    * Confidence = ``base_confidence + (0.95 - base_confidence) * blend`` (cap 0.95), where
      ``blend`` is the weighted mean (``imbalance_weight``, ``spread_weight``) of

      - imbalance strength in [0, 1]: buy ``(ratio - buy_threshold) / buy_threshold``,
        sell ``(sell_threshold - ratio) / sell_threshold``, capped at 1;
      - spread tightness in [0, 1]: ``1 - spread_percent / min_spread_percent``.
    """

    strategy_id: ClassVar[str] = OrderbookSkewParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = OrderbookSkewParams
    consumes: ClassVar[tuple[type, ...]] = (DepthSnapshot,)

    __slots__ = ("hysteresis",)

    def __init__(self) -> None:
        self.hysteresis = Hysteresis()

    def config_symbol(self, event: MarketEvent) -> str | None:
        return event.symbol if isinstance(event, DepthSnapshot) else None

    def forget_symbol(self, symbol: str) -> None:
        """Drop the state kept for ``symbol``."""
        self.hysteresis.forget_symbol(symbol)

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The per-symbol crossing state of the symbols ``owns`` accepts (plain data)."""
        return {"hysteresis": self.hysteresis.to_state(owns)}

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols."""
        self.hysteresis.merge_state(mapping(state, "hysteresis", self.strategy_id))

    def on_event(self, event: MarketEvent, params: OrderbookSkewParams) -> Decision | Held | None:
        proposal = self.propose(event, params)
        if proposal is None or isinstance(proposal, str):
            return proposal
        return proposal.decide()

    def propose(
        self, event: MarketEvent, params: OrderbookSkewParams
    ) -> _SkewProposal | Held | None:
        """The action this snapshot calls for; the decision is built by ``decide()``."""
        if not isinstance(event, DepthSnapshot):
            return None
        bids = event.bids
        asks = event.asks
        if not bids or not asks:
            return None
        levels = params.top_levels
        bid_volume = 0.0
        for _, qty in bids[:levels]:
            bid_volume += qty
        ask_volume = 0.0
        for _, qty in asks[:levels]:
            ask_volume += qty
        # Also rejects overflowing (infinite) volumes.
        if not (ask_volume > 0.0 and params.min_total_volume <= bid_volume + ask_volume < _INF):
            return None
        top_bid = bids[0][0]
        top_ask = asks[0][0]
        spread_percent = (top_ask - top_bid) / top_bid * 100.0
        if not spread_percent <= params.min_spread_percent:
            return None
        ratio = bid_volume / ask_volume
        if ratio == _INF:
            return None

        buy_threshold = params.buy_threshold
        sell_threshold = params.sell_threshold
        margin = params.rearm_margin
        if ratio > buy_threshold:
            action: Action | None = Action.BUY
        elif ratio < sell_threshold:
            action = Action.SELL
        else:
            action = None
        if params.hysteresis:
            fired = self.hysteresis.judge(
                event.symbol,
                event.event_time_ms,
                ratio,
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
            strength = (ratio - buy_threshold) / buy_threshold if buy_threshold > 0.0 else 1.0
            price = top_bid
        else:
            strength = (sell_threshold - ratio) / sell_threshold if sell_threshold > 0.0 else 1.0
            price = top_ask

        return _SkewProposal(
            event.symbol,
            fired,
            params,
            price,
            strength,
            spread_percent,
            bid_volume,
            ask_volume,
            ratio,
            top_bid,
            top_ask,
        )


class _SkewProposal(NamedTuple):
    """What :meth:`OrderbookSkewStrategy.propose` found; ``decide()`` builds the Decision.

    A named tuple: cheap to create, which matters because the cooldown drops most of them.
    """

    symbol: str
    action: Action
    params: OrderbookSkewParams
    price: float
    strength: float
    spread_percent: float
    bid_volume: float
    ask_volume: float
    ratio: float
    top_bid: float
    top_ask: float

    def decide(self) -> Decision:
        spread_percent = self.spread_percent
        top_bid = self.top_bid
        top_ask = self.top_ask
        return Decision(
            symbol=self.symbol,
            action=self.action,
            confidence=_confidence(self.params, self.strength, spread_percent),
            price=self.price,
            current_price=(top_bid + top_ask) / 2.0,
            indicators={
                "bid_volume": self.bid_volume,
                "ask_volume": self.ask_volume,
                "ratio": self.ratio,
                "spread_percent": spread_percent,
            },
            metadata={"top_bid": top_bid, "top_ask": top_ask},
        )


def _clip01(value: float) -> float:
    # NaN compares false everywhere: it falls through to 0.0.
    if value >= 1.0:
        return 1.0
    if value > 0.0:
        return value
    return 0.0


def _confidence(params: OrderbookSkewParams, strength: float, spread_percent: float) -> float:
    max_spread = params.min_spread_percent
    tightness = 1.0 - spread_percent / max_spread if max_spread > 0.0 else 0.0
    w_imbalance = params.imbalance_weight
    w_spread = params.spread_weight
    w_total = w_imbalance + w_spread
    blend = 0.0
    if w_total > 0.0:
        blend = (w_imbalance * _clip01(strength) + w_spread * _clip01(tightness)) / w_total
    base = params.base_confidence
    confidence = base + (_CONFIDENCE_CAP - base) * _clip01(blend)
    if not confidence <= _CONFIDENCE_CAP:  # also catches NaN
        confidence = _CONFIDENCE_CAP
    return confidence if confidence > 0.0 else 0.0
