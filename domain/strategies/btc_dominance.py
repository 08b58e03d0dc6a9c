"""BTC dominance: trade BTCUSDT on the level and trend of BTC market-cap dominance."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    MarketEvent,
    Ticker,
    Trade,
)
from domain.params import CommonParams, FieldError, param
from domain.signal import Action, JsonValue
from domain.state import integer, items, optional_number, row
from domain.strategies.base import Decision, Owns

SYMBOL = "BTCUSDT"
"""The only symbol this strategy trades (and whose configuration applies)."""

MAX_HISTORY_POINTS = 4096
"""Upper bound of the stored dominance history, whatever the window and the feed rate."""

_MIN_CONFIDENCE = 0.5
_MAX_CONFIDENCE = 0.95
_HOUR_MS = 3_600_000
# A tuple, not a union built on every call: config_symbol runs for every market event.
_PRICE_EVENTS = (Trade, Ticker, DepthSnapshot)


@dataclass(frozen=True, slots=True)
class BtcDominanceParams(CommonParams):
    """Parameters of :class:`BtcDominanceStrategy`."""

    strategy_id: ClassVar[str] = "btc_dominance"

    high_threshold: float = param(
        70.0,
        min=50.0,
        max=95.0,
        description=(
            "Dominance (percent) above which a rising dominance is a BTC buy. "
            "Range [50, 95] chosen by us (the spec gives none)."
        ),
    )
    low_threshold: float = param(
        40.0,
        min=10.0,
        max=60.0,
        description=(
            "Dominance (percent) below which a falling dominance is a BTC sell (rotation to "
            "alts). Must be below high_threshold. Range [10, 60] chosen by us."
        ),
    )
    change_threshold: float = param(
        5.0,
        min=0.5,
        max=30.0,
        description=(
            "Change of dominance in percentage points over window_hours that signals in its "
            "direction; also the scale of confidence. Range [0.5, 30] chosen by us."
        ),
    )
    window_hours: int = param(
        24,
        min=1,
        max=168,
        description=(
            "Look-back window in hours (event time) over which the dominance change is "
            "measured. Range [1, 168] chosen by us."
        ),
    )
    min_signal_interval: int = param(
        14400,
        min=60,
        max=604800,
        description=(
            "Minimum seconds (event time) between two equal signals. "
            "Range [60, 604800] chosen by us."
        ),
    )
    cooldown_seconds: int = param(
        0,
        min=0,
        max=86400,
        description=(
            "Extra cooldown; the effective cooldown is max(cooldown_seconds, min_signal_interval)."
        ),
    )

    def cross_field_errors(self) -> list[FieldError]:
        if self.low_threshold >= self.high_threshold:
            return [
                FieldError(
                    "__root__",
                    "cross_field",
                    f"low_threshold ({self.low_threshold}) must be below "
                    f"high_threshold ({self.high_threshold})",
                )
            ]
        return []


class BtcDominanceStrategy:
    """Buy or sell BTCUSDT from BTC market-cap dominance observations.

    Business rules, evaluated on every :class:`DominanceObservation` (config of ``BTCUSDT``):

    * ``change`` is the current dominance minus the oldest observation still inside the last
      ``window_hours`` of event time (0 when there is none); ``rising`` means change > 0,
      ``falling`` change < 0.
    * Dominance above ``high_threshold`` and rising → **buy** BTCUSDT (capital rotating into
      BTC, ``rotation: "to_btc"``).
    * Dominance below ``low_threshold`` and falling → **sell** BTCUSDT (``rotation:
      "to_alts"``).
    * Otherwise, ``|change| >= change_threshold`` → buy when rising, sell when falling
      (``rotation`` null).
    * No signal until a BTCUSDT price is known: the strategy also consumes BTCUSDT trades
      (price), tickers (last price) and depth snapshots (mid) only to learn that price; those
      events never produce a decision. The signal's price and current price are that price.
    * Confidence is 0.5 + 0.45 × min(1, excess / change_threshold), where excess is the
      largest of how far dominance is past the crossed threshold and how far ``|change|`` is
      past ``change_threshold`` (in percentage points) — so it lies within [0.5, 0.95].

    Observations older than the newest one seen are ignored (out of order). The history is
    bounded: points closer together than window/4096 are not stored (the newest is always
    compared), and at most :data:`MAX_HISTORY_POINTS` are kept.
    """

    strategy_id: ClassVar[str] = BtcDominanceParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = BtcDominanceParams
    consumes: ClassVar[tuple[type, ...]] = (DominanceObservation, *_PRICE_EVENTS)

    __slots__ = ("_history", "_last_time_ms", "_price", "_price_time_ms")

    def __init__(self) -> None:
        self._history: deque[tuple[int, float]] = deque(maxlen=MAX_HISTORY_POINTS)
        self._last_time_ms = -1
        self._price: float | None = None
        self._price_time_ms = -1

    @property
    def price(self) -> float | None:
        """The latest known BTCUSDT price (None until one was seen)."""
        return self._price

    @property
    def history_points(self) -> int:
        """How many dominance observations are kept (bounded by MAX_HISTORY_POINTS)."""
        return len(self._history)

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The dominance history and the BTCUSDT price — the state of BTCUSDT (dominance
        lives with it): empty unless ``owns`` accepts BTCUSDT."""
        if not owns(SYMBOL):
            return {}
        return {
            "history": [[t, d] for t, d in self._history],
            "last_time_ms": self._last_time_ms,
            "price": self._price,
            "price_time_ms": self._price_time_ms,
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned (nothing when it is empty)."""
        if not state:
            return
        where = self.strategy_id
        history = deque(
            (
                (int(t), float(d))
                for t, d in (row(p, 2, where) for p in items(state, "history", where))
            ),
            maxlen=MAX_HISTORY_POINTS,
        )
        last_time_ms = integer(state.get("last_time_ms"), "last_time_ms", where)
        price = optional_number(state.get("price"), "price", where)
        price_time_ms = integer(state.get("price_time_ms"), "price_time_ms", where)
        self._history = history
        self._last_time_ms = last_time_ms
        self._price = price
        self._price_time_ms = price_time_ms

    def config_symbol(self, event: MarketEvent) -> str | None:
        if isinstance(event, DominanceObservation):
            return SYMBOL
        if isinstance(event, _PRICE_EVENTS) and event.symbol == SYMBOL:
            return SYMBOL
        return None

    def on_event(self, event: MarketEvent, params: BtcDominanceParams) -> Decision | None:
        if isinstance(event, DominanceObservation):
            return self._on_dominance(event, params)
        # Price path (cheap): BTCUSDT events only teach the latest price.
        if isinstance(event, Trade):
            if event.symbol == SYMBOL:
                self._learn_price(event.price, event.event_time_ms)
        elif isinstance(event, DepthSnapshot):
            if event.symbol == SYMBOL and event.bids and event.asks:
                bid = event.bids[0][0]
                self._learn_price(bid + (event.asks[0][0] - bid) / 2.0, event.event_time_ms)
        elif isinstance(event, Ticker) and event.symbol == SYMBOL:
            self._learn_price(event.last_price, event.event_time_ms)
        return None

    def _learn_price(self, price: float, time_ms: int) -> None:
        if time_ms >= self._price_time_ms:
            self._price = price
            self._price_time_ms = time_ms

    def _on_dominance(
        self, event: DominanceObservation, params: BtcDominanceParams
    ) -> Decision | None:
        now = event.event_time_ms
        dominance = event.btc_dominance
        if now < self._last_time_ms:
            return None  # out of order: the history only moves forward
        self._last_time_ms = now
        history = self._history
        window_ms = max(1, params.window_hours) * _HOUR_MS
        horizon = now - window_ms
        while history and history[0][0] < horizon:
            history.popleft()
        reference = history[0][1] if history else dominance
        change = dominance - reference
        if not history or now - history[-1][0] >= window_ms // MAX_HISTORY_POINTS:
            history.append((now, dominance))

        price = self._price
        if price is None:
            return None

        scale = params.change_threshold if params.change_threshold > 0.0 else 1.0
        change_excess = abs(change) - params.change_threshold
        action: Action
        rotation: str | None = None
        if dominance > params.high_threshold and change > 0.0:
            action, rule, rotation = Action.BUY, "high_dominance_rising", "to_btc"
            excess = max(dominance - params.high_threshold, change_excess)
        elif dominance < params.low_threshold and change < 0.0:
            action, rule, rotation = Action.SELL, "low_dominance_falling", "to_alts"
            excess = max(params.low_threshold - dominance, change_excess)
        elif change != 0.0 and change_excess >= 0.0:
            action = Action.BUY if change > 0.0 else Action.SELL
            rule = "dominance_change"
            excess = change_excess
        else:
            return None

        confidence = _MIN_CONFIDENCE + (_MAX_CONFIDENCE - _MIN_CONFIDENCE) * min(
            1.0, max(0.0, excess / scale)
        )
        trend = "rising" if change > 0.0 else "falling"
        metadata: dict[str, JsonValue] = {
            "dominance": dominance,
            "change": change,
            "reference_dominance": reference,
            "window_hours": params.window_hours,
            "trend": trend,
            "rotation": rotation,
            "rule": rule,
        }
        return Decision(
            symbol=SYMBOL,
            action=action,
            confidence=confidence,
            price=price,
            current_price=price,
            indicators={"dominance": dominance, "dominance_change": change},
            metadata=metadata,
        )
