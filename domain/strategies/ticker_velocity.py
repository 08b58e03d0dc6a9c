"""ticker_velocity: speed (and acceleration) of the last price over a window of 24h tickers."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from domain.market import MarketEvent, Ticker
from domain.params import CommonParams, FieldError, param
from domain.signal import Action
from domain.state import items, mapping
from domain.strategies.base import Decision, Held, Owns
from domain.strategies.hysteresis import (
    Hysteresis,
    confirm_seconds_param,
    hysteresis_switch,
    rearm_margin_param,
)

_CONFIDENCE_CAP = 0.95
_INF = math.inf
CONFIRM_SECONDS = 5.0
REARM_MARGIN = 0.2
_MS_PER_MINUTE = 60_000.0
# Points closer together than window / _RESOLUTION are thinned (see _Window.add), which
# bounds a symbol's history to about 2 * _RESOLUTION points whatever the ticker rate.
_RESOLUTION = 256
_MAX_POINTS = 4 * _RESOLUTION


@dataclass(frozen=True, slots=True)
class TickerVelocityParams(CommonParams):
    """Parameters of :class:`TickerVelocityStrategy` (SPEC §5)."""

    strategy_id: ClassVar[str] = "ticker_velocity"

    time_window: int = param(
        60,
        min=30,
        max=300,
        description=(
            "Seconds of ticker history the velocity is measured over; a decision needs at "
            "least half of it."
        ),
    )
    buy_threshold: float = param(
        0.5, min=0.1, max=2.0, description="Buy when the velocity (% per minute) is above this."
    )
    sell_threshold: float = param(
        -0.5,
        min=-2.0,
        max=-0.1,
        description="Sell when the velocity (% per minute) is below this.",
    )
    min_price_change: float = param(
        0.1,
        min=0.01,
        max=1.0,
        description="Minimum absolute price change over the window, in percent.",
    )
    base_confidence: float = param(
        0.65,
        min=0.5,
        max=1.0,
        description="Confidence of a signal just past its threshold (grows up to 0.95).",
    )
    acceleration_weight: float = param(
        0.5,
        min=0.0,
        max=1.0,
        description=(
            "How much an acceleration in the signal's direction (second half of the window "
            "faster than the first) lifts the confidence towards 0.95."
        ),
    )
    volume_confirmation: bool = param(
        True,
        description="Require the 24h quote volume to rise by min_volume_change over the window.",
    )
    min_volume_change: float = param(
        0.2,
        min=0.1,
        max=2.0,
        description="Minimum rise of the 24h quote volume over the window, in percent.",
    )
    hysteresis: bool = hysteresis_switch()
    confirm_seconds: float = confirm_seconds_param(
        CONFIRM_SECONDS, "its condition (threshold, price change, volume) has held"
    )
    rearm_margin: float = rearm_margin_param(REARM_MARGIN, 2.0, "velocity (% per minute)")

    def cross_field_errors(self) -> list[FieldError]:
        return self.below("sell_threshold", "buy_threshold")


class _Window:
    """One symbol's ticker history, oldest first, in three parallel deques."""

    __slots__ = ("prices", "times", "volumes")

    def __init__(self) -> None:
        self.times: deque[int] = deque(maxlen=_MAX_POINTS)
        self.prices: deque[float] = deque(maxlen=_MAX_POINTS)
        self.volumes: deque[float] = deque(maxlen=_MAX_POINTS)

    def add(self, time_ms: int, price: float, volume: float, min_gap_ms: float) -> None:
        """Append a point; if it is within ``min_gap_ms`` of the point before the newest,
        it replaces the newest instead (so a burst of tickers keeps only its latest)."""
        times = self.times
        if len(times) >= 2 and time_ms - times[-2] < min_gap_ms:
            times[-1] = time_ms
            self.prices[-1] = price
            self.volumes[-1] = volume
        else:
            times.append(time_ms)
            self.prices.append(price)
            self.volumes.append(volume)

    def evict_before(self, cutoff_ms: int) -> None:
        times = self.times
        while times and times[0] < cutoff_ms:
            times.popleft()
            self.prices.popleft()
            self.volumes.popleft()

    def price_at(self, time_ms: float) -> float:
        """The last price known at ``time_ms`` (a point at or before it must exist)."""
        index = bisect_right(self.times, time_ms) - 1
        return self.prices[index if index > 0 else 0]


def _percent_change(old: float, new: float) -> float:
    return (new - old) / old * 100.0 if old > 0.0 else 0.0


class TickerVelocityStrategy:
    """Ticker velocity: follow a fast move of the last price, confirmed by volume.

    Business rules, per symbol, all times in event time:

    * Keep the (event time, last price, 24h quote volume) of the tickers of the last
      ``time_window`` seconds. A ticker older than the newest one kept is ignored. Bursts
      are thinned (a point closer than ``time_window / 256`` to the point before the newest
      replaces the newest), so memory per symbol is bounded whatever the ticker rate.
    * The 24h quote volume at ``t0`` of 0 gives a volume change of 0 (no confirmation).
    * Decide only once the kept points span at least ``time_window / 2`` seconds. With the
      oldest point in the window at ``t0`` (price ``p0``) and the current ticker at ``t``:
      ``price_change_percent = (p - p0) / p0 * 100`` and
      ``velocity = price_change_percent / ((t - t0) / 60 s)`` in % per minute.
    * No signal unless ``|price_change_percent| >= min_price_change``.
    * With ``volume_confirmation``: no signal unless the 24h quote volume rose by at least
      ``min_volume_change`` percent since ``t0`` (a 24h rolling volume can fall: then there
      is no confirmation and no signal).
    * Buy when ``velocity > buy_threshold``, sell when ``velocity < sell_threshold``, at the
      last price (also ``current_price``). Each side fires once per crossing
      (``confirm_seconds``, ``rearm_margin``: :class:`~domain.strategies.hysteresis.Hysteresis`).
    * Confidence = ``base_confidence + (0.95 - base_confidence) * min(1, (|velocity| -
      |threshold|) / |threshold|)``. Acceleration then lifts it: the span is cut at its
      midpoint ``tm`` (price there = last price known at ``tm``), ``acceleration`` = velocity
      of ``[tm, t]`` minus velocity of ``[t0, tm]`` (% per minute); the part in the signal's
      direction, ``a``, adds ``acceleration_weight * min(1, a / |threshold|)`` of the
      remaining distance to 0.95. Capped at 0.95.
    """

    strategy_id: ClassVar[str] = TickerVelocityParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = TickerVelocityParams
    consumes: ClassVar[tuple[type, ...]] = (Ticker,)

    __slots__ = ("_windows", "hysteresis")

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self.hysteresis = Hysteresis()

    def config_symbol(self, event: MarketEvent) -> str | None:
        return event.symbol if isinstance(event, Ticker) else None

    def forget_symbol(self, symbol: str) -> None:
        """Drop the state kept for ``symbol``."""
        self._windows.pop(symbol, None)
        self.hysteresis.forget_symbol(symbol)

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The ticker histories and crossing state of the symbols ``owns`` accepts."""
        return {
            "windows": {
                symbol: {
                    "times": list(window.times),
                    "prices": list(window.prices),
                    "volumes": list(window.volumes),
                }
                for symbol, window in self._windows.items()
                if owns(symbol)
            },
            "hysteresis": self.hysteresis.to_state(owns),
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols."""
        where = self.strategy_id
        windows: dict[str, _Window] = {}
        for symbol, saved in mapping(state, "windows", where).items():
            if not isinstance(saved, Mapping):
                raise ValueError(f"{where} state: window of {symbol!r} must be an object")
            times = [int(t) for t in items(saved, "times", where)]
            prices = [float(p) for p in items(saved, "prices", where)]
            volumes = [float(v) for v in items(saved, "volumes", where)]
            if not len(times) == len(prices) == len(volumes):
                raise ValueError(f"{where} state: window of {symbol!r} has uneven lengths")
            window = _Window()
            window.times.extend(times)
            window.prices.extend(prices)
            window.volumes.extend(volumes)
            windows[str(symbol)] = window
        self.hysteresis.merge_state(mapping(state, "hysteresis", where))
        self._windows.update(windows)

    def on_event(self, event: MarketEvent, params: TickerVelocityParams) -> Decision | Held | None:
        if not isinstance(event, Ticker):
            return None
        window = self._windows.get(event.symbol)
        if window is None:
            window = self._windows[event.symbol] = _Window()
        now = event.event_time_ms
        times = window.times
        if times and now < times[-1]:
            return None  # out of order: keep the history sorted by time
        window_ms = params.time_window * 1000
        price = event.last_price
        quote_volume = event.quote_volume
        window.add(now, price, quote_volume, window_ms / _RESOLUTION)
        window.evict_before(now - window_ms)

        span_ms = now - times[0]
        if span_ms <= 0 or span_ms * 2 < window_ms:
            return None
        old_price = window.prices[0]
        change = _percent_change(old_price, price)
        velocity = change / (span_ms / _MS_PER_MINUTE)
        if not abs(velocity) < _INF:  # also NaN: no metric to observe
            return None
        volume_change = _percent_change(window.volumes[0], quote_volume)
        if not abs(volume_change) < _INF:
            volume_change = 0.0
        action: Action | None = None
        if abs(change) >= params.min_price_change and (
            not params.volume_confirmation or volume_change >= params.min_volume_change
        ):
            if velocity > params.buy_threshold:
                action = Action.BUY
            elif velocity < params.sell_threshold:
                action = Action.SELL
        margin = params.rearm_margin
        if params.hysteresis:
            fired = self.hysteresis.judge(
                event.symbol,
                now,
                velocity,
                action,
                params.buy_threshold - margin,
                params.sell_threshold + margin,
                params.confirm_seconds * 1000.0,
            )
        else:
            fired = action
        if not isinstance(fired, Action):
            return fired  # None, or the reason the side is held
        threshold = params.buy_threshold if fired is Action.BUY else params.sell_threshold

        half_minutes = span_ms / 2.0 / _MS_PER_MINUTE
        mid_price = window.price_at(now - span_ms / 2.0)
        first_half = _percent_change(old_price, mid_price) / half_minutes
        second_half = _percent_change(mid_price, price) / half_minutes
        acceleration = second_half - first_half
        if not abs(acceleration) < _INF:
            acceleration = 0.0

        confidence = _confidence(params, velocity, threshold, acceleration)
        return Decision(
            symbol=event.symbol,
            action=fired,
            confidence=confidence,
            price=price,
            current_price=price,
            indicators={
                "velocity": velocity,
                "acceleration": acceleration,
                "price_change_percent": change,
                "window_seconds": span_ms / 1000.0,
                "volume_change_percent": volume_change,
            },
        )


def _clip01(value: float) -> float:
    # NaN compares false everywhere: it falls through to 0.0.
    if value >= 1.0:
        return 1.0
    if value > 0.0:
        return value
    return 0.0


def _confidence(
    params: TickerVelocityParams, velocity: float, threshold: float, acceleration: float
) -> float:
    limit = abs(threshold)
    # Acceleration in the signal's direction, relative to the threshold.
    along = acceleration if velocity > 0.0 else -acceleration
    if limit > 0.0:
        excess = (abs(velocity) - limit) / limit
        boost = along / limit
    else:  # unreachable with validated params (|threshold| >= 0.1)
        excess = 1.0
        boost = 1.0 if along > 0.0 else 0.0
    base = params.base_confidence
    confidence = base + (_CONFIDENCE_CAP - base) * _clip01(excess)
    lift = _clip01(params.acceleration_weight) * _clip01(boost)
    confidence += lift * (_CONFIDENCE_CAP - confidence)
    if not confidence <= _CONFIDENCE_CAP:  # also catches NaN
        return _CONFIDENCE_CAP
    return confidence if confidence > 0.0 else 0.0
