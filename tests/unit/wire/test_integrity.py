"""The integrity components (adapters/wire/integrity.py) and their inline copies agree.

``TimeLines.accept`` has a fast case (in order, nothing pending) in front of the full rule,
and the Binance codec copies that fast case into its trade path and ``RecentIds.remember``
into its message-id check (one call per message less). Any sequence of event times, with or
without a wall clock, must give the same outcomes and leave the same state through all three:
the codec, ``accept`` and the full rule alone.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wire.binance import BinanceDecoder
from adapters.wire.binance_streams import STREAM_TRADE
from adapters.wire.integrity import IntegrityOptions, RecentIds, Rejected, TimeLines
from adapters.wire.stats import Skip, SkipReason

pytestmark = pytest.mark.unit

NOW_MS = 1_723_161_700_000
DAY_MS = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")

# Steps of event time from the previous one: in order, equal, a little or far back, a little
# or far (more than a day / in the future) ahead, and absolute times (year 2100, negative).
_steps = st.one_of(
    st.sampled_from([0, 1, 100, -1, -5_000, 3 * DAY_MS, -3 * DAY_MS, 10_000]),
    st.integers(min_value=-2 * DAY_MS, max_value=2 * DAY_MS),
)
_events = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), _steps | st.sampled_from([None])), max_size=160
)


def trade(symbol: str, time_ms: int, trade_id: int) -> bytes:
    data = {"e": "trade", "E": time_ms, "s": symbol, "t": trade_id, "p": "1", "q": "1", "m": True}
    return orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": data})


def outcome(call: Callable[[], object]) -> str:
    try:
        result = call()
    except Rejected as rejected:
        return rejected.reason
    return result.reason if isinstance(result, Skip) else "accepted"


@settings(max_examples=300, deadline=None)
@given(
    _events,
    st.booleans(),
    st.sampled_from([1, 3, 50, None]),
    st.sampled_from([0, 1_000, None]),
)
def test_trade_fast_path_and_accept_agree_with_the_full_rule(
    events: list[tuple[str, int | None]],
    with_clock: bool,
    reanchor_after: int | None,
    tolerance: int | None,
) -> None:
    clock = (lambda: NOW_MS) if with_clock else None
    options = IntegrityOptions(
        out_of_order_tolerance_ms=tolerance,
        reanchor_after=reanchor_after,
        clock_ms=clock,
        max_forward_jump_ms=DAY_MS,
    )
    decoder = BinanceDecoder(integrity=options)
    fast = TimeLines([STREAM_TRADE], options)
    full = TimeLines([STREAM_TRADE], options)
    times = dict.fromkeys(SYMBOLS, NOW_MS - DAY_MS)
    for trade_id, (symbol, step) in enumerate(events):
        time_ms = 4_102_444_800_000 if step is None else times[symbol] + step
        times[symbol] = time_ms if step is not None else times[symbol]
        if time_ms < 0:
            time_ms = -1
        got = outcome(lambda: decoder.decode(trade(symbol, time_ms, trade_id)))  # noqa: B023
        via_accept = outcome(lambda: fast.accept(STREAM_TRADE, symbol, time_ms))  # noqa: B023
        reference = outcome(lambda: full.accept_in_full(STREAM_TRADE, symbol, time_ms))  # noqa: B023
        assert got == via_accept == reference, (trade_id, symbol, time_ms)
    lines = decoder._lines
    for other in (fast, full):
        assert lines.last[STREAM_TRADE] == other.last[STREAM_TRADE]
        assert (lines.rejects, lines.jumps, lines.streaks) == (
            other.rejects,
            other.jumps,
            other.streaks,
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), max_size=80), st.integers(0, 6))
def test_message_id_check_agrees_with_recent_ids(ids: list[int], window: int) -> None:
    """The codec's inline message-id window is :meth:`RecentIds.remember`."""
    decoder = BinanceDecoder(
        integrity=IntegrityOptions(dedup_window=window, out_of_order_tolerance_ms=None)
    )
    recent: RecentIds[str] = RecentIds(window)
    for trade_id, number in enumerate(ids):
        message_id = f"id-{number}"
        message = orjson.loads(trade("BTCUSDT", NOW_MS, trade_id))
        message["message_id"] = message_id
        result = decoder.decode(orjson.dumps(message))
        expected_duplicate = message_id in recent
        assert isinstance(result, Skip) == expected_duplicate
        if expected_duplicate:
            assert isinstance(result, Skip)
            assert result.reason == SkipReason.DUPLICATE
        else:
            recent.remember(message_id)
    assert list(decoder._message_ids) == list(recent)


def test_recent_ids_forget_the_oldest_beyond_the_window() -> None:
    recent: RecentIds[int] = RecentIds(3)
    for item in range(5):
        recent.remember(item)
    assert list(recent) == [2, 3, 4]
    assert 1 not in recent
    assert 4 in recent
    assert len(RecentIds[int](0)) == 0
    off: RecentIds[int] = RecentIds(0)
    off.remember(1)
    assert 1 not in off
