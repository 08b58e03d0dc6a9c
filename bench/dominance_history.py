"""BTC dominance inputs spanning more than a day of event time (checkpoint tests and bench).

btc_dominance measures the change of dominance over ``window_hours`` (24 h by default): a
takeover that only replays the market-data stream's last hour loses that history, a
restored checkpoint keeps it. :func:`history` is a slow climb, one observation an hour,
whose last hour alone changes too little to signal; :func:`jump` is the observation whose
change over 24 h does signal (a ``dominance_change`` buy with the default parameters).
"""

from __future__ import annotations

from bench import market_inputs

HOUR_MS = 3_600_000


def observation(time_ms: int, dominance: float) -> bytes:
    return market_inputs.dominance(dominance, market_inputs.iso(time_ms))


def history(end_ms: int, hours: int = 30, start: float = 55.0, step: float = 0.25) -> list[bytes]:
    """``hours`` + 1 hourly observations ending at ``end_ms``, rising by ``step`` an hour
    from ``start`` (below the 70 % high threshold; 0.25 an hour is under the 5-point change
    threshold over any hour, 6 points over 24 h)."""
    first = end_ms - hours * HOUR_MS
    return [observation(first + i * HOUR_MS, start + i * step) for i in range(hours + 1)]


JUMP_AFTER_MS = 3 * HOUR_MS
"""The history signals every 4 h (btc_dominance's ``min_signal_interval``), the last time
2 h before its end: the jump comes 3 h after the end, past that cooldown."""


def jump(after_ms: int, hours: int = 30, start: float = 55.0, step: float = 0.25) -> bytes:
    """The observation :data:`JUMP_AFTER_MS` after ``after_ms`` (the end of :func:`history`),
    one step up: its change over the last 24 h of the history is 21 steps (5.25 points: a
    signal), over the history's last hour a single step."""
    return observation(after_ms + JUMP_AFTER_MS, start + (hours + 1) * step)
