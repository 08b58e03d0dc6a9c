"""Input integrity (issue 9, item 5): future-dated, forged and duplicated messages.

Each case reproduces what a hostile test found, on the bundled capture: the forged or
duplicated messages must not block, silence or trigger anything.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from adapters.wire.binance import BinanceDecoder
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.stats import Skip, SkipReason
from domain.engine import SignalEngine
from domain.market import DepthSnapshot, MarketEvent
from domain.signal import Signal
from entrypoints.backtest_container import BacktestParts
from tests.data import CAPTURE, capture_lines

pytestmark = pytest.mark.unit

YEAR_2100_MS = 4_102_444_800_000
NOW_MS = 1_723_161_700_000  # a wall clock shortly after the capture


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    if not CAPTURE.exists():
        pytest.skip(f"bundled capture missing: {CAPTURE}")
    return capture_lines()


def forged(line: bytes, index: int) -> bytes:
    """``line`` restamped in 2100, with its own message id (and trade id)."""
    message = orjson.loads(line)
    message["message_id"] = f"forged-{index}"
    message["timestamp"] = "2100-01-01T00:00:00.000Z"
    data = message["data"]
    if "E" in data:
        data["E"] = YEAR_2100_MS
    if "t" in data:
        data["t"] = 10**15 + index
    return orjson.dumps(message)


def decode_all(decoder: BinanceDecoder, raw: list[bytes]) -> tuple[list[MarketEvent], Counter[str]]:
    events: list[MarketEvent] = []
    skipped: Counter[str] = Counter()
    for line in raw:
        result = decoder.decode(line)
        if isinstance(result, Skip):
            skipped[result.reason] += 1
        else:
            events.append(result)
    return events, skipped


def signals_of(events: list[MarketEvent]) -> list[Signal]:
    parts = BacktestParts()
    engine: SignalEngine = parts.engine()
    out: list[Signal] = []
    for event in events:
        out.extend(engine.process(event))
    return out


def test_with_a_wall_clock_a_year_2100_event_is_rejected_and_blocks_nothing(
    lines: list[bytes],
) -> None:
    decoder = BinanceDecoder(integrity=IntegrityOptions(clock_ms=lambda: NOW_MS))
    depth = next(i for i, line in enumerate(lines) if b"@depth" in line)
    raw = [forged(lines[depth], 0), *lines]
    events, skipped = decode_all(decoder, raw)
    assert skipped == Counter({SkipReason.FUTURE_DATED: 1})
    assert len(events) == len(lines)
    result = decoder.decode(forged(lines[depth], 1))
    assert isinstance(result, Skip)
    assert result.reason == SkipReason.FUTURE_DATED


def test_forged_year_2100_messages_do_not_silence_the_real_capture(lines: list[bytes]) -> None:
    """Two depth and 30 trade messages dated 2100, then the real capture (a replay: no wall
    clock). They used to publish 4 signals dated 2100 and leave 0 of the real ones."""
    depth = [i for i, line in enumerate(lines) if b"@depth" in line][:2]
    trades = [i for i, line in enumerate(lines) if b"@trade" in line][:30]
    forgeries = [forged(lines[i], n) for n, i in enumerate(depth + trades)]
    clean_events, _ = decode_all(BinanceDecoder(), lines)
    clean = signals_of(clean_events)
    events, skipped = decode_all(BinanceDecoder(), forgeries + lines)
    signals = signals_of(events)
    assert clean
    assert not [s for s in signals if s.event_time_ms >= YEAR_2100_MS]
    real = [s for s in signals if s.event_time_ms < YEAR_2100_MS]
    assert {s.strategy_id for s in real} == {s.strategy_id for s in clean}
    # what the forgeries cost: at most the re-anchoring run per (symbol, kind)
    assert skipped[SkipReason.OUT_OF_ORDER] <= 2 * 51


def test_sparse_forged_depth_cannot_starve_the_symbol(lines: list[bytes]) -> None:
    """One forged depth message dated 2100 before every 40th real one (0.6 % of traffic)
    used to make all the real depth messages be skipped as out_of_order."""
    raw: list[bytes] = []
    real_depth = 0
    for index, line in enumerate(lines):
        if b"@depth" in line:
            if real_depth % 40 == 0:
                raw.append(forged(line, index))
            real_depth += 1
        raw.append(line)
    forged_count = len(raw) - len(lines)
    assert real_depth > 3000
    # Live (wall clock): every forgery is future_dated, every real message is accepted.
    events, skipped = decode_all(
        BinanceDecoder(integrity=IntegrityOptions(clock_ms=lambda: NOW_MS)), raw
    )
    assert skipped == Counter({SkipReason.FUTURE_DATED: forged_count})
    assert sum(1 for e in events if isinstance(e, DepthSnapshot)) == real_depth
    # Replay (no wall clock): the very first depth message is a forgery, so it anchors the
    # time line (and the next forgery, 40 messages later, is in line with it); the real ones
    # re-anchor it after one run of 50, and every later forgery is future_dated (far ahead
    # of the real time line).
    events, skipped = decode_all(BinanceDecoder(), raw)
    assert skipped == Counter(
        {SkipReason.OUT_OF_ORDER: 50, SkipReason.FUTURE_DATED: forged_count - 2}
    )
    assert sum(1 for e in events if isinstance(e, DepthSnapshot)) == real_depth - 50 + 2


def test_every_message_twice_gives_the_signals_of_once(lines: list[bytes]) -> None:
    """Sending every message twice changed 11 of 19 trade_momentum signals."""
    once, _ = decode_all(BinanceDecoder(), lines)
    doubled = [line for line in lines for _ in range(2)]
    twice, skipped = decode_all(BinanceDecoder(), doubled)
    assert skipped == Counter({SkipReason.DUPLICATE: len(lines)})
    assert [s.signal_id for s in signals_of(twice)] == [s.signal_id for s in signals_of(once)]


def test_the_same_trade_id_under_a_new_message_id_is_a_duplicate(lines: list[bytes]) -> None:
    trade = next(line for line in lines if b"@trade" in line)
    copy = orjson.loads(trade)
    copy["message_id"] = "another-id"
    decoder = BinanceDecoder()
    assert not isinstance(decoder.decode(trade), Skip)
    result = decoder.decode(orjson.dumps(copy))
    assert isinstance(result, Skip)
    assert result.reason == SkipReason.DUPLICATE


def test_a_rejected_forgery_does_not_shadow_the_real_trade_id(lines: list[bytes]) -> None:
    """A forged future trade carrying a real trade id is rejected without remembering it."""
    first, second = [line for line in lines if b"@trade" in line][:2]
    decoder = BinanceDecoder(integrity=IntegrityOptions(clock_ms=lambda: NOW_MS))
    assert not isinstance(decoder.decode(first), Skip)
    fake = orjson.loads(second)
    fake["message_id"] = "forged"
    fake["data"]["E"] = YEAR_2100_MS
    rejected = decoder.decode(orjson.dumps(fake))
    assert isinstance(rejected, Skip)
    assert rejected.reason == SkipReason.FUTURE_DATED
    assert not isinstance(decoder.decode(second), Skip)


def test_a_real_jump_ahead_re_anchors_after_a_run() -> None:
    """Replaying two captures days apart: the jump is followed after ``reanchor_after`` events."""
    decoder = BinanceDecoder(integrity=IntegrityOptions(reanchor_after=3))

    def trade(time_ms: int, trade_id: int) -> bytes:
        data: dict[str, object] = {
            "e": "trade",
            "E": time_ms,
            "s": "BTCUSDT",
            "t": trade_id,
            "p": "1",
            "q": "1",
        }
        data["m"] = True
        return orjson.dumps({"stream": "btcusdt@trade", "data": data})

    assert not isinstance(decoder.decode(trade(NOW_MS, 1)), Skip)
    later = NOW_MS + 3 * 86_400_000
    results = [decoder.decode(trade(later + i, 10 + i)) for i in range(5)]
    assert [isinstance(r, Skip) for r in results] == [True, True, True, False, False]
