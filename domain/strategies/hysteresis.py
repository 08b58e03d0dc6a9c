"""Hysteresis and confirmation of the threshold strategies (pure, event time), and the
parameters of their hysteresis (``hysteresis``, ``confirm_seconds``, ``rearm_margin``).

``orderbook_skew``, ``trade_momentum`` and ``ticker_velocity`` compare a metric with a buy
and a sell threshold. Without memory, a metric hovering around a threshold would call for a
signal on every event. :class:`Hysteresis` gives each (symbol, side) two rules:

* **confirmation** — a side fires when its condition *becomes* true and has held, without
  interruption, for ``confirm_ms`` of event time (until then: ``unconfirmed``);
* **re-arming** — once a side has fired it is disarmed, and re-arms only after the metric has
  come back inside the neutral band by ``rearm_margin``: below ``buy_threshold - margin`` for
  buy, above ``sell_threshold + margin`` for sell (until then: ``not_rearmed``).

A side disarms when it fires, whether or not governance then lets the signal out: one
crossing, one decision. An event that yields no metric at all (an empty book, a window not
yet full) leaves the state as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.governance import Suppression
from domain.params import param
from domain.signal import Action
from domain.strategies.base import Held


def hysteresis_switch() -> Any:
    """The ``hysteresis`` parameter of a threshold strategy (on by default)."""
    return param(
        True,
        description=(
            "Fire once per threshold crossing (confirm_seconds, rearm_margin); false: every "
            "event beyond a threshold calls for a signal."
        ),
    )


def confirm_seconds_param(default: float, condition: str) -> Any:
    """The ``confirm_seconds`` parameter: how long ``condition`` must hold before a side fires."""
    return param(
        default,
        min=0.0,
        max=600.0,
        description=(
            f"A side fires only once {condition} without interruption for this many "
            "event-time seconds."
        ),
    )


def rearm_margin_param(default: float, max: float, metric: str) -> Any:
    """The ``rearm_margin`` parameter, in units of the strategy's ``metric``."""
    return param(
        default,
        min=0.0,
        max=max,
        description=(
            f"After firing, a side re-arms only once the {metric} is back below "
            "buy_threshold - margin (buy) or above sell_threshold + margin (sell)."
        ),
    )


_NEVER = -1
"""``since`` of a side whose condition is not currently true."""


class Hysteresis:
    """Per-symbol crossing state: ``[buy armed, sell armed, buy since, sell since]``."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[str, list[int]] = {}

    def judge(
        self,
        symbol: str,
        time_ms: int,
        metric: float,
        action: Action | None,
        buy_rearm: float,
        sell_rearm: float,
        confirm_ms: float,
    ) -> Action | Held | None:
        """Observe ``metric`` (and the ``action`` its thresholds call for, None inside the
        band) at ``time_ms``; return the action when it fires, the reason it is held, or
        None. ``buy_rearm`` / ``sell_rearm`` are the levels the metric must reach to re-arm
        the buy / sell side."""
        state = self._state.get(symbol)
        if state is None:
            state = self._state[symbol] = [1, 1, _NEVER, _NEVER]
        if metric <= buy_rearm:
            state[0] = 1
        if metric >= sell_rearm:
            state[1] = 1
        if action is None:
            state[2] = state[3] = _NEVER
            return None
        side = 0 if action is Action.BUY else 1
        state[3 - side] = _NEVER  # the other side's condition is not true
        since = state[2 + side]
        if since == _NEVER:
            since = state[2 + side] = time_ms
        if not state[side]:
            return Suppression.NOT_REARMED
        if time_ms - since < confirm_ms:
            return Suppression.UNCONFIRMED
        state[side] = 0
        state[2 + side] = _NEVER
        return action

    def forget_symbol(self, symbol: str) -> None:
        self._state.pop(symbol, None)

    def to_state(self, owns: Callable[[str], bool] | None = None) -> dict[str, list[int]]:
        """Plain data (JSON-ready) for a snapshot of the per-symbol state (of the symbols
        ``owns`` accepts; all without it)."""
        return {
            symbol: list(state)
            for symbol, state in sorted(self._state.items())
            if owns is None or owns(symbol)
        }

    def load_state(self, state: Mapping[str, list[int]]) -> None:
        """Restore what :meth:`to_state` returned (replacing the current state)."""
        self._state = {}
        self.merge_state(state)

    def merge_state(self, state: Mapping[str, list[int]]) -> None:
        """Restore the symbols of ``state`` (what :meth:`to_state` returned), keeping the
        others."""
        loaded: dict[str, list[int]] = {}
        for symbol, values in state.items():
            if len(values) != 4:
                raise ValueError(f"hysteresis state of {symbol!r} must have 4 values")
            loaded[str(symbol)] = [int(v) for v in values]
        self._state.update(loaded)
