"""Market-metrics math (domain/metrics.py): exact numbers, edge cases, history bounds."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market import DepthSnapshot, Level
from domain.metrics import (
    DepthMetrics,
    Interpretation,
    MarketMetricsBook,
    PriceLevel,
    SideDepth,
    SortField,
    Timeframe,
    downsample,
    pressures,
    summarize,
)
from tests.data import CAPTURE

pytestmark = pytest.mark.unit


def snap(
    symbol: str = "BTCUSDT",
    t: int = 0,
    bids: Sequence[Level] = (),
    asks: Sequence[Level] = (),
) -> DepthSnapshot:
    return DepthSnapshot(symbol, t, tuple(bids), tuple(asks))


def flat(symbol: str, t: int, bid_qty: float, ask_qty: float) -> DepthSnapshot:
    """One level per side: net pressure = (bid − ask)/(bid + ask)·100."""
    return snap(symbol, t, [(100.0, bid_qty)], [(101.0, ask_qty)])


# 12 bid levels 100..89 of qty 1, plus 4 more at 97 (qty 5); 3 ask levels.
BIDS: list[Level] = [(float(p), 5.0 if p == 97 else 1.0) for p in range(100, 88, -1)]
ASKS: list[Level] = [(101.0, 2.0), (102.0, 1.0), (103.0, 1.0)]


# -- DepthMetrics ---------------------------------------------------------------------


def test_hand_built_book_exact_numbers() -> None:
    m = DepthMetrics.of(snap(t=1_000, bids=BIDS, asks=ASKS))
    assert (m.symbol, m.event_time_ms) == ("BTCUSDT", 1_000)
    assert (m.bid_volume, m.ask_volume) == (16.0, 4.0)
    assert (m.bid_levels, m.ask_levels) == (12, 3)
    assert m.imbalance == pytest.approx(0.6)
    assert m.bid_ask_ratio == pytest.approx(4.0)
    assert m.buy_pressure == pytest.approx(80.0)
    assert m.sell_pressure == pytest.approx(20.0)
    assert m.net_pressure == pytest.approx(60.0)
    assert m.interpretation is Interpretation.BULLISH
    assert m.depth_top5 == SideDepth(9.0, 4.0)
    assert m.depth_top10 == SideDepth(14.0, 4.0)
    assert m.total_liquidity == 20.0
    # bids: Σp over 100..89 = 1134, plus 4·97 extra = 1522; asks: 202 + 102 + 103 = 407
    assert m.total_liquidity_quote == pytest.approx(1929.0)
    assert (m.best_bid, m.best_ask, m.mid, m.spread) == (100.0, 101.0, 100.5, 1.0)
    assert m.spread_bps == pytest.approx(1.0 / 100.5 * 10_000)  # 99.5025 bps
    assert m.vwap_bid == pytest.approx(1522.0 / 16.0)  # 95.125
    assert m.vwap_ask == pytest.approx(407.0 / 4.0)  # 101.75
    assert m.strongest_support == PriceLevel(97.0, 5.0)
    assert m.strongest_resistance == PriceLevel(101.0, 2.0)


def test_as_dict_is_grouped_like_the_reference_and_json_ready() -> None:
    d = DepthMetrics.of(snap(bids=BIDS, asks=ASKS)).as_dict()
    assert set(d) == {
        "symbol",
        "event_time_ms",
        "imbalance",
        "pressure",
        "liquidity",
        "spread",
        "levels",
    }
    assert set(d["pressure"]) == {"buy_pressure", "sell_pressure", "net_pressure", "interpretation"}
    assert d["pressure"]["interpretation"] == "bullish"
    assert d["liquidity"]["depth_top5"] == {"bid": 9.0, "ask": 4.0, "total": 13.0}
    assert d["levels"]["strongest_support"] == {"price": 97.0, "quantity": 5.0}
    assert d["spread"]["mid"] == 100.5
    json.dumps(d, allow_nan=False)


def test_strongest_level_ties_go_to_the_level_nearest_the_touch() -> None:
    m = DepthMetrics.of(snap(bids=[(100.0, 3.0), (99.0, 3.0)], asks=[(101.0, 1.0), (102.0, 1.0)]))
    assert m.strongest_support == PriceLevel(100.0, 3.0)
    assert m.strongest_resistance == PriceLevel(101.0, 1.0)


def pressure(m: DepthMetrics) -> tuple[float, float, float, float]:
    """Buy, sell and net pressure and the imbalance of ``m``."""
    return (m.buy_pressure, m.sell_pressure, m.net_pressure, m.imbalance)


def test_empty_ask_side_gives_defined_values() -> None:
    m = DepthMetrics.of(snap(bids=[(100.0, 2.0)]))
    assert pressure(m) == (100.0, 0.0, 100.0, 1.0)
    assert m.interpretation is Interpretation.BULLISH
    assert m.bid_ask_ratio is None
    assert (m.best_bid, m.best_ask, m.mid, m.spread, m.spread_bps) == (
        100.0,
        None,
        None,
        None,
        None,
    )
    assert (m.vwap_bid, m.vwap_ask) == (100.0, None)
    assert m.strongest_resistance is None
    json.dumps(m.as_dict(), allow_nan=False)


def test_empty_book_and_zero_quantities_are_neutral() -> None:
    for s in (snap(), snap(bids=[(100.0, 0.0)], asks=[(101.0, 0.0)])):
        m = DepthMetrics.of(s)
        assert pressure(m) == (50.0, 50.0, 0.0, 0.0)
        assert m.interpretation is Interpretation.NEUTRAL
        assert (m.vwap_bid, m.vwap_ask, m.bid_ask_ratio) == (None, None, None)
        assert (m.strongest_support, m.strongest_resistance) == (None, None)
        assert m.total_liquidity == 0.0
        json.dumps(m.as_dict(), allow_nan=False)
    assert DepthMetrics.of(snap(bids=[(100.0, 0.0)], asks=[(101.0, 0.0)])).mid == 100.5


@pytest.mark.parametrize(
    ("bid", "ask", "expected"),
    [
        (6.0, 4.0, Interpretation.NEUTRAL),  # net 20: not > 20
        (6.1, 3.9, Interpretation.BULLISH),
        (4.0, 6.0, Interpretation.NEUTRAL),
        (3.9, 6.1, Interpretation.BEARISH),
    ],
)
def test_interpretation_thresholds(bid: float, ask: float, expected: Interpretation) -> None:
    assert DepthMetrics.of(flat("BTCUSDT", 0, bid, ask)).interpretation is expected


def test_pressures_never_overflow() -> None:
    big = 1.7e308
    assert pressures(big, big) == (50.0, 50.0, 0.0)
    assert pressures(float("inf"), 1.0) == (100.0, 0.0, 100.0)


_prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
_qtys = st.floats(min_value=0.0, max_value=1.7e308, allow_nan=False, allow_infinity=False)


@st.composite
def books(draw: st.DrawFn) -> DepthSnapshot:
    bid_prices = sorted(set(draw(st.lists(_prices, max_size=25))), reverse=True)
    ask_prices = sorted({p * 2.0 + 1e6 for p in draw(st.lists(_prices, max_size=25))})
    bids = tuple((p, draw(_qtys)) for p in bid_prices)
    asks = tuple((p, draw(_qtys)) for p in ask_prices)
    return DepthSnapshot("XYZUSDT", draw(st.integers(0, 2**40)), bids, asks)


@settings(max_examples=300, deadline=None)
@given(books())
def test_random_books_never_raise_and_stay_in_range(book: DepthSnapshot) -> None:
    m = DepthMetrics.of(book)
    assert 0.0 <= m.buy_pressure <= 100.0
    assert 0.0 <= m.sell_pressure <= 100.0
    assert -100.0 <= m.net_pressure <= 100.0
    assert -1.0 <= m.imbalance <= 1.0
    assert m.buy_pressure + m.sell_pressure == pytest.approx(100.0)
    json.dumps(m.as_dict(), allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(books(), max_size=30))
def test_random_event_streams_keep_the_book_bounded(stream: list[DepthSnapshot]) -> None:
    book = MarketMetricsBook(history_seconds=60, max_history=7)
    for s in stream:
        book.on_depth(s)
    if stream:
        series = book.pressure("XYZUSDT", Timeframe.H1)
        assert series is not None
        assert 1 <= series.summary.count <= 7
        assert -100.0 <= series.summary.avg_net_pressure <= 100.0
        assert 0.0 <= series.summary.trend_strength <= 1.0
        json.dumps(series.as_dict(), allow_nan=False)
        json.dumps(book.summary().as_dict(), allow_nan=False)


# -- history ------------------------------------------------------------------------


def test_history_is_trimmed_by_event_time() -> None:
    book = MarketMetricsBook(history_seconds=10)
    for t in range(0, 20_001, 1_000):
        assert book.on_depth(flat("BTCUSDT", t, 1.0, 1.0))
    assert book.history_length("BTCUSDT") == 11  # 10_000 .. 20_000 inclusive
    series = book.pressure("BTCUSDT", Timeframe.H1)
    assert series is not None
    assert (series.summary.first_time_ms, series.summary.last_time_ms) == (10_000, 20_000)


def test_history_is_trimmed_by_max_length() -> None:
    book = MarketMetricsBook(history_seconds=3600, max_history=5)
    for t in range(20):
        book.on_depth(flat("BTCUSDT", t, 1.0, 1.0))
    assert book.history_length("BTCUSDT") == 5
    series = book.pressure("BTCUSDT", Timeframe.H1)
    assert series is not None
    assert [p.event_time_ms for p in series.points] == [15, 16, 17, 18, 19]


def test_default_max_length_is_twenty_per_second_of_history() -> None:
    book = MarketMetricsBook(history_seconds=2)
    for t in range(100):  # 100 events within 100 ms: only the count bound applies
        book.on_depth(flat("BTCUSDT", t, 1.0, 1.0))
    assert book.history_length("BTCUSDT") == 40


def test_long_stream_compacts_and_keeps_the_window_exact() -> None:
    book = MarketMetricsBook(history_seconds=10)
    for i in range(5_000):
        book.on_depth(flat("BTCUSDT", i * 100, 1.0 + i % 3, 1.0))
    assert book.history_length("BTCUSDT") == 101  # 10 s at 10/s, both ends inclusive
    series = book.pressure("BTCUSDT", Timeframe.M1)
    assert series is not None
    assert series.summary.count == 101
    assert series.summary.first_time_ms == 499_900 - 10_000


def test_out_of_order_events_are_counted_and_ignored() -> None:
    book = MarketMetricsBook()
    assert book.on_depth(flat("BTCUSDT", 5_000, 3.0, 1.0))
    assert not book.on_depth(flat("BTCUSDT", 4_999, 1.0, 3.0))
    assert book.stale_events == 1
    depth = book.depth("BTCUSDT")
    assert depth is not None
    assert (depth.event_time_ms, depth.net_pressure) == (5_000, 50.0)
    assert book.history_length("BTCUSDT") == 1
    assert book.on_depth(flat("BTCUSDT", 5_000, 1.0, 3.0))  # same time: accepted
    depth = book.depth("BTCUSDT")
    assert depth is not None
    assert depth.net_pressure == -50.0
    assert book.history_length("BTCUSDT") == 2


def test_depth_is_recomputed_only_for_a_new_snapshot() -> None:
    book = MarketMetricsBook()
    book.on_depth(flat("BTCUSDT", 1, 3.0, 1.0))
    first = book.depth("BTCUSDT")
    assert first is book.depth("BTCUSDT")
    book.on_depth(flat("BTCUSDT", 2, 1.0, 3.0))
    second = book.depth("BTCUSDT")
    assert second is not first
    assert second is not None
    assert second.event_time_ms == 2


def test_max_symbols_evicts_the_least_recently_updated() -> None:
    book = MarketMetricsBook(max_symbols=2)
    book.on_depth(flat("AAAUSDT", 1, 1.0, 1.0))
    book.on_depth(flat("BBBUSDT", 2, 1.0, 1.0))
    book.on_depth(flat("AAAUSDT", 3, 1.0, 1.0))  # AAA is now the most recent
    book.on_depth(flat("CCCUSDT", 4, 1.0, 1.0))
    assert book.symbols() == ["AAAUSDT", "CCCUSDT"]
    assert book.evicted_symbols == 1
    assert book.depth("BBBUSDT") is None
    assert book.pressure("BBBUSDT", Timeframe.M1) is None
    assert len(book) == 2


def test_stale_event_does_not_refresh_recency() -> None:
    book = MarketMetricsBook(max_symbols=2)
    book.on_depth(flat("AAAUSDT", 10, 1.0, 1.0))
    book.on_depth(flat("BBBUSDT", 20, 1.0, 1.0))
    book.on_depth(flat("AAAUSDT", 5, 1.0, 1.0))  # stale
    book.on_depth(flat("CCCUSDT", 30, 1.0, 1.0))
    assert book.symbols() == ["BBBUSDT", "CCCUSDT"]


@pytest.mark.parametrize(
    ("kwargs"), [{"history_seconds": 0}, {"max_symbols": 0}, {"max_history": 0}]
)
def test_book_rejects_non_positive_bounds(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        MarketMetricsBook(**kwargs)


# -- pressure series ------------------------------------------------------------------


def test_timeframe_window_is_relative_to_the_latest_event_time() -> None:
    latest = 10_000_000
    book = MarketMetricsBook()
    for t in (latest - 61_000, latest - 60_000, latest - 30_000, latest):
        book.on_depth(flat("BTCUSDT", t, 1.0, 1.0))
    one = book.pressure("BTCUSDT", Timeframe.M1)
    assert one is not None
    assert one.summary.count == 3  # 61 s old: out; exactly 60 s old: in
    assert one.summary.first_time_ms == latest - 60_000
    assert (one.window_start_ms, one.window_end_ms) == (latest - 60_000, latest)
    five = book.pressure("BTCUSDT", Timeframe.M5)
    assert five is not None
    assert five.summary.count == 4


def test_timeframe_seconds() -> None:
    assert [tf.seconds for tf in Timeframe] == [60, 300, 900, 3600]
    assert [tf.value for tf in Timeframe] == ["1m", "5m", "15m", "1h"]


def _series(nets_as_bid_ask: list[tuple[float, float]], step_ms: int = 1_000) -> MarketMetricsBook:
    book = MarketMetricsBook()
    for i, (bid, ask) in enumerate(nets_as_bid_ask):
        book.on_depth(flat("BTCUSDT", i * step_ms, bid, ask))
    return book


def test_bullish_trend_and_strength() -> None:
    # nets 60, 60, 60, −20 → avg 40; magnitude 0.4, consistency 3/4 → 0.575
    book = _series([(8.0, 2.0), (8.0, 2.0), (8.0, 2.0), (4.0, 6.0)])
    series = book.pressure("BTCUSDT", Timeframe.M5)
    assert series is not None
    s = series.summary
    assert s.count == 4
    assert s.trend is Interpretation.BULLISH
    assert s.avg_net_pressure == pytest.approx(40.0)
    assert (s.min_net_pressure, s.max_net_pressure) == pytest.approx((-20.0, 60.0))
    assert s.avg_buy_pressure == pytest.approx(70.0)
    assert s.avg_sell_pressure == pytest.approx(30.0)
    assert s.trend_strength == pytest.approx(0.575)
    assert series.as_dict()["summary"]["avg_pressure"] == pytest.approx(40.0)


def test_bearish_trend_and_strength() -> None:
    # nets −60, −60, −60, −60 → avg −60; magnitude 0.6, consistency 1 → 0.8
    book = _series([(2.0, 8.0)] * 4)
    series = book.pressure("BTCUSDT", Timeframe.M1)
    assert series is not None
    assert series.summary.trend is Interpretation.BEARISH
    assert series.summary.trend_strength == pytest.approx(0.8)


def test_neutral_trend_and_strength() -> None:
    # nets 0, 30 → avg 15: neutral; centredness 1 − 15/20 = 0.25, share |net| ≤ 20 = 1/2
    book = _series([(5.0, 5.0), (6.5, 3.5)])
    series = book.pressure("BTCUSDT", Timeframe.M1)
    assert series is not None
    assert series.summary.trend is Interpretation.NEUTRAL
    assert series.summary.trend_strength == pytest.approx(0.375)
    flat_series = _series([(5.0, 5.0)] * 3).pressure("BTCUSDT", Timeframe.M1)
    assert flat_series is not None
    assert flat_series.summary.trend_strength == pytest.approx(1.0)


def test_slope_is_net_pressure_points_per_minute() -> None:
    s = summarize([0, 60_000, 120_000], [50.0, 60.0, 70.0], [50.0, 40.0, 30.0])
    assert s.slope_per_minute == pytest.approx(20.0)
    assert summarize([5], [60.0], [40.0]).slope_per_minute == 0.0
    with pytest.raises(ValueError, match="empty"):
        summarize([], [], [])


def test_points_are_downsampled_but_the_summary_uses_all() -> None:
    book = _series([(1.0 + i % 5, 1.0) for i in range(1_000)], step_ms=100)
    series = book.pressure("BTCUSDT", Timeframe.M5, max_points=300)
    assert series is not None
    assert series.summary.count == 1_000
    assert len(series.points) == 300
    assert series.points[-1].event_time_ms == 99_900
    times = [p.event_time_ms for p in series.points]
    assert times == sorted(times)
    full = book.pressure("BTCUSDT", Timeframe.M5, max_points=5_000)
    assert full is not None
    assert len(full.points) == 1_000


def test_downsample_bucket_means() -> None:
    points = downsample([1, 2, 3, 4], [60.0, 80.0, 40.0, 20.0], [40.0, 20.0, 60.0, 80.0], 2)
    assert [(p.event_time_ms, p.buy_pressure, p.net_pressure) for p in points] == [
        (2, 70.0, 40.0),
        (4, 30.0, -40.0),
    ]


# -- summary and all ------------------------------------------------------------------


def _market() -> MarketMetricsBook:
    book = MarketMetricsBook()
    book.on_depth(flat("AAAUSDT", 1, 8.0, 2.0))  # +60, quote liq 8·100 + 2·101 = 1002
    book.on_depth(flat("BBBUSDT", 2, 2.0, 8.0))  # −60, 1008
    book.on_depth(flat("CCCUSDT", 3, 5.0, 5.0))  # 0, 1005
    book.on_depth(snap("DDDUSDT", 4, bids=[(10.0, 9.0)], asks=[(10.5, 1.0)]))  # +80, 100.5
    book.on_depth(snap("EEEUSDT", 5, bids=[(10.0, 3.0)]))  # +100, one-sided, 30
    return book


def test_summary_counts_and_extremes() -> None:
    s = _market().summary()
    assert (s.symbols, s.bullish_symbols, s.bearish_symbols, s.neutral_symbols) == (5, 3, 1, 1)
    assert s.avg_net_pressure == pytest.approx((60 - 60 + 0 + 80 + 100) / 5)
    assert s.sentiment is Interpretation.BULLISH
    assert s.most_bullish is not None
    assert s.most_bullish.symbol == "EEEUSDT"
    assert s.most_bearish is not None
    assert s.most_bearish.symbol == "BBBUSDT"
    assert s.latest_event_time_ms == 5
    d = s.as_dict()
    assert d["market_sentiment"]["bullish_symbols"] == 3
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize(
    ("bid_qty", "ask_qty", "bullish", "bearish"),
    [(8.0, 2.0, "ONEUSDT", None), (2.0, 8.0, None, "ONEUSDT"), (5.0, 5.0, None, None)],
)
def test_summary_of_one_symbol_names_it_only_on_its_own_side(
    bid_qty: float, ask_qty: float, bullish: str | None, bearish: str | None
) -> None:
    """One bullish symbol is the most bullish and not also the most bearish (issue 15)."""
    book = MarketMetricsBook()
    book.on_depth(flat("ONEUSDT", 1, bid_qty, ask_qty))
    s = book.summary()
    assert (s.most_bullish.symbol if s.most_bullish else None) == bullish
    assert (s.most_bearish.symbol if s.most_bearish else None) == bearish


def test_summary_extremes_are_taken_from_their_own_side_only() -> None:
    book = MarketMetricsBook()
    book.on_depth(flat("AAAUSDT", 1, 8.0, 2.0))  # +60
    book.on_depth(flat("BBBUSDT", 2, 6.0, 4.0))  # +20: neutral
    s = book.summary()
    assert s.most_bullish is not None
    assert s.most_bullish.symbol == "AAAUSDT"
    assert s.most_bearish is None


def test_summary_of_an_empty_book() -> None:
    s = MarketMetricsBook().summary()
    assert (s.symbols, s.avg_net_pressure, s.most_bullish, s.sentiment) == (0, None, None, None)
    json.dumps(s.as_dict(), allow_nan=False)


def test_all_filters_sorts_and_pages() -> None:
    book = _market()
    page = book.all()
    assert page.total == 5
    assert [m.symbol for m in page.items] == ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]
    bullish = book.all(interpretation=Interpretation.BULLISH)
    assert [m.symbol for m in bullish.items] == ["AAAUSDT", "DDDUSDT", "EEEUSDT"]
    liquid = book.all(min_liquidity=1000.0, sort_by=SortField.NET_PRESSURE, descending=True)
    assert [m.symbol for m in liquid.items] == ["AAAUSDT", "CCCUSDT", "BBBUSDT"]
    by_net = book.all(sort_by=SortField.NET_PRESSURE, offset=1, limit=2)
    assert by_net.total == 5
    assert [m.symbol for m in by_net.items] == ["CCCUSDT", "AAAUSDT"]
    by_symbol_desc = book.all(descending=True, limit=2)
    assert [m.symbol for m in by_symbol_desc.items] == ["EEEUSDT", "DDDUSDT"]
    assert book.all(offset=10).items == ()


def test_all_sorts_missing_values_last_in_both_directions() -> None:
    book = _market()
    asc = [m.symbol for m in book.all(sort_by=SortField.SPREAD_BPS).items]
    desc = [m.symbol for m in book.all(sort_by=SortField.SPREAD_BPS, descending=True).items]
    assert asc[-1] == desc[-1] == "EEEUSDT"
    # AAA/BBB/CCC: spread 1 at mid 100.5 (tie → symbol order); DDD: 0.5 at 10.25 (~487.8 bps)
    assert asc == ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]
    assert desc == ["DDDUSDT", "AAAUSDT", "BBBUSDT", "CCCUSDT", "EEEUSDT"]
    by_liq = [m.symbol for m in book.all(sort_by=SortField.TOTAL_LIQUIDITY, descending=True).items]
    assert by_liq[-1] == "EEEUSDT"


def test_all_rejects_negative_offset_and_limit() -> None:
    with pytest.raises(ValueError, match="offset"):
        _market().all(offset=-1)
    with pytest.raises(ValueError, match="limit"):
        _market().all(limit=-1)


# -- the real capture -----------------------------------------------------------------


def _iso_ms(stamp: str) -> int:
    return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _depth_snapshots(path: Path) -> list[DepthSnapshot]:
    """depth20 envelopes → snapshots (a local stand-in for the adapters' wire codec)."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            message = json.loads(line)
            stream = message.get("stream", "")
            if "@depth" not in stream:
                continue
            data = message["data"]
            out.append(
                DepthSnapshot(
                    symbol=stream.split("@", 1)[0].upper(),
                    event_time_ms=_iso_ms(message["timestamp"]),
                    bids=tuple((float(p), float(q)) for p, q in data["bids"]),
                    asks=tuple((float(p), float(q)) for p, q in data["asks"]),
                )
            )
    return out


@pytest.mark.skipif(not CAPTURE.exists(), reason="bundled capture not available")
def test_real_capture_depth_messages() -> None:
    snapshots = _depth_snapshots(CAPTURE)
    assert len(snapshots) > 1_000
    book = MarketMetricsBook()
    for s in snapshots:
        book.on_depth(s)
    assert book.symbols() == ["BTCUSDT"]
    depth = book.depth("BTCUSDT")
    assert depth is not None
    assert depth.bid_levels == depth.ask_levels == 20
    assert depth.best_bid is not None
    assert 50_000 < depth.best_bid < 70_000
    assert depth.spread_bps is not None
    assert 0.0 < depth.spread_bps < 10.0
    assert -100.0 <= depth.net_pressure <= 100.0
    series = book.pressure("BTCUSDT", Timeframe.M5)
    assert series is not None
    assert series.summary.count > 100
    assert 0 < len(series.points) <= 300
    assert series.summary.last_time_ms == depth.event_time_ms
    assert series.summary.first_time_ms >= depth.event_time_ms - 300_000
    assert book.stale_events < len(snapshots) // 100
    json.dumps(series.as_dict(), allow_nan=False)
    json.dumps(depth.as_dict(), allow_nan=False)
