"""The metrics query use case (application/metrics_query.py): validation, lookup, shape, and
the merge of the partitioned workers' answers."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.metrics_query import (
    MAX_LIMIT,
    InvalidQueryError,
    InvalidTimeframeError,
    MarketMetricsQuery,
    PageQuery,
    UnknownSymbolError,
    merge_pages,
    merge_summaries,
)
from application.partitioning import owner_of
from bench.fanout import SYMBOLS_50
from domain.market import DepthSnapshot
from domain.metrics import MarketMetricsBook, SortField

pytestmark = pytest.mark.unit


def flat(symbol: str, t: int, bid_qty: float, ask_qty: float) -> DepthSnapshot:
    return DepthSnapshot(symbol, t, ((100.0, bid_qty),), ((101.0, ask_qty),))


@pytest.fixture
def query() -> MarketMetricsQuery:
    book = MarketMetricsBook()
    for t in range(0, 120_001, 1_000):
        book.on_depth(flat("BTCUSDT", t, 8.0, 2.0))  # net +60
    book.on_depth(flat("ETHUSDT", 5_000, 2.0, 8.0))  # net −60
    book.on_depth(flat("SOLUSDT", 6_000, 5.0, 5.0))  # net 0
    return MarketMetricsQuery(book)


def _json(value: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    return loaded


def test_depth_is_case_insensitive_and_json_ready(query: MarketMetricsQuery) -> None:
    d = _json(query.depth(" btcusdt "))
    assert d["symbol"] == "BTCUSDT"
    assert d["pressure"]["net_pressure"] == pytest.approx(60.0)
    assert d["pressure"]["interpretation"] == "bullish"


def test_unknown_symbol_raises(query: MarketMetricsQuery) -> None:
    with pytest.raises(UnknownSymbolError) as err:
        query.depth("dogeusdt")
    assert err.value.symbol == "DOGEUSDT"
    assert isinstance(err.value, LookupError)
    with pytest.raises(UnknownSymbolError):
        query.pressure("DOGEUSDT", "5m")


def test_pressure_by_timeframe(query: MarketMetricsQuery) -> None:
    one = _json(query.pressure("BTCUSDT", "1m"))
    assert one["timeframe"] == "1m"
    assert one["summary"]["count"] == 61  # 60 s back from t=120 s, inclusive
    assert one["summary"]["trend"] == "bullish"
    assert one["history_seconds"] == 3600
    five = query.pressure("btcusdt", " 5M ")
    assert five["summary"]["count"] == 121
    small = query.pressure("BTCUSDT", "5m", max_points=10)
    assert len(small["points"]) == 10


@pytest.mark.parametrize("timeframe", ["2m", "", "1d", "60", "m1"])
def test_bad_timeframe_raises_even_for_unknown_symbols(
    query: MarketMetricsQuery, timeframe: str
) -> None:
    for symbol in ("BTCUSDT", "NOPEUSDT"):
        with pytest.raises(InvalidTimeframeError) as err:
            query.pressure(symbol, timeframe)
        assert err.value.field == "timeframe"
        assert isinstance(err.value, InvalidQueryError)
        assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("max_points", [0, -1, 5_001])
def test_bad_max_points(query: MarketMetricsQuery, max_points: int) -> None:
    with pytest.raises(InvalidQueryError) as err:
        query.pressure("BTCUSDT", "5m", max_points=max_points)
    assert err.value.field == "max_points"


def test_summary(query: MarketMetricsQuery) -> None:
    s = _json(query.summary())
    assert s["market_sentiment"] == {
        "bullish_symbols": 1,
        "bearish_symbols": 1,
        "neutral_symbols": 1,
        "avg_net_pressure": pytest.approx(0.0),
        "sentiment": "neutral",
    }
    assert s["symbols"] == 3
    assert s["most_bullish"]["symbol"] == "BTCUSDT"
    assert s["most_bearish"]["symbol"] == "ETHUSDT"
    assert (s["stale_events"], s["evicted_symbols"]) == (0, 0)


def test_all_filters_sorts_and_pages(query: MarketMetricsQuery) -> None:
    page = _json(query.all())
    assert (page["total"], page["count"], page["offset"], page["limit"]) == (3, 3, 0, 100)
    assert [item["symbol"] for item in page["items"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    bearish = query.all(interpretation="Bearish")
    assert [item["symbol"] for item in bearish["items"]] == ["ETHUSDT"]
    by_net = query.all(sort_by="net_pressure", descending=True, offset=1, limit=1)
    assert by_net["total"] == 3
    assert [item["symbol"] for item in by_net["items"]] == ["SOLUSDT"]
    assert (by_net["sort_by"], by_net["descending"]) == ("net_pressure", True)
    assert query.all(min_liquidity=1_006.0)["total"] == 1  # ETH: 2·100 + 8·101 = 1008


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sort_by": "price"}, "sort_by"),
        ({"sort_by": ""}, "sort_by"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"interpretation": "bullishish"}, "interpretation"),
        ({"min_liquidity": -1.0}, "min_liquidity"),
        ({"min_liquidity": math.nan}, "min_liquidity"),
        ({"min_liquidity": math.inf}, "min_liquidity"),
    ],
)
def test_all_rejects_bad_parameters(
    query: MarketMetricsQuery, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidQueryError) as err:
        query.all(**kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_empty_book_queries() -> None:
    query = MarketMetricsQuery(MarketMetricsBook())
    assert _json(query.summary())["symbols"] == 0
    assert _json(query.all())["items"] == []
    with pytest.raises(UnknownSymbolError):
        query.depth("BTCUSDT")


# --- the partitioned workers' answers merged ------------------------------------------------


def _snapshot(symbol: str, time_ms: int, bid_qty: float, ask_qty: float) -> DepthSnapshot:
    return DepthSnapshot(
        symbol, time_ms, ((100.0, bid_qty), (99.0, bid_qty)), ((101.0, ask_qty), (102.0, 1.0))
    )


@settings(max_examples=60, deadline=None)
@given(
    quantities=st.lists(
        st.tuples(st.floats(0.1, 50), st.floats(0.1, 50), st.booleans()), min_size=1, max_size=12
    ),
    workers=st.integers(1, 4),
    sort_by=st.sampled_from(list(SortField)),
    descending=st.booleans(),
    offset=st.integers(0, 5),
    limit=st.integers(1, 7),
)
def test_merged_worker_answers_equal_one_book(
    quantities: list[tuple[float, float, bool]],
    workers: int,
    sort_by: SortField,
    descending: bool,
    offset: int,
    limit: int,
) -> None:
    """What the proxy answers from the workers' JSON is what one book over every symbol
    answers (one-sided books put None values in the sort)."""
    whole = MarketMetricsQuery(MarketMetricsBook())
    parts = [MarketMetricsQuery(MarketMetricsBook()) for _ in range(workers)]
    for i, (bid, ask, one_sided) in enumerate(quantities):
        snapshot = _snapshot(SYMBOLS_50[i], 1_000 + i, bid, ask)
        if one_sided:
            snapshot = DepthSnapshot(snapshot.symbol, snapshot.event_time_ms, snapshot.bids, ())
        whole.book.on_depth(snapshot)
        parts[owner_of(snapshot.symbol, 16, workers)].book.on_depth(snapshot)
    page = PageQuery.of(f" {sort_by.value.upper()} ", descending, offset, limit)
    expected = whole.all(sort_by=sort_by.value, descending=descending, offset=offset, limit=limit)
    [(_, worker_limit)] = page.worker_pages
    answers = [
        _json(p.all(sort_by=sort_by.value, descending=descending, limit=worker_limit))
        for p in parts
    ]
    assert merge_pages(answers, page) == _json(expected)
    summary = merge_summaries([_json(p.summary()) for p in parts])
    want = _json(whole.summary())
    got_avg = summary["market_sentiment"].pop("avg_net_pressure")
    want_avg = want["market_sentiment"].pop("avg_net_pressure")
    assert got_avg == pytest.approx(want_avg)
    assert summary == want


def test_merged_counters_add_and_no_workers_is_an_empty_market() -> None:
    one, two = MarketMetricsBook(), MarketMetricsBook()
    one.on_depth(flat("BTCUSDT", 2_000, 8.0, 2.0))
    one.on_depth(flat("BTCUSDT", 1_000, 8.0, 2.0))  # stale
    two.on_depth(flat("ETHUSDT", 3_000, 2.0, 8.0))
    merged = merge_summaries([MarketMetricsQuery(b).summary() for b in (one, two)])
    assert (merged["stale_events"], merged["evicted_symbols"]) == (1, 0)
    assert merged["most_bullish"]["symbol"] == "BTCUSDT"
    assert merged["most_bearish"]["symbol"] == "ETHUSDT"
    assert merged["latest_event_time_ms"] == 3_000
    assert merge_summaries([]) == MarketMetricsQuery(MarketMetricsBook()).summary()
    page = PageQuery.of("symbol", False, 0, 100)
    assert merge_pages([], page) == MarketMetricsQuery(MarketMetricsBook()).all()


@pytest.mark.parametrize(
    ("sort_by", "offset", "limit", "field"),
    [
        ("price", 0, 1, "sort_by"),
        ("symbol", -1, 1, "offset"),
        ("symbol", 0, MAX_LIMIT + 1, "limit"),
    ],
)
def test_page_query_rejects_what_all_rejects(
    query: MarketMetricsQuery, sort_by: str, offset: int, limit: int, field: str
) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        PageQuery.of(sort_by, False, offset, limit)
    assert caught.value.field == field
    with pytest.raises(InvalidQueryError) as again:
        query.all(sort_by=sort_by, offset=offset, limit=limit)
    assert str(again.value) == str(caught.value)


def test_each_worker_is_asked_for_the_page_s_end_in_pages_of_at_most_max_limit() -> None:
    assert PageQuery.of("symbol", False, 5, 7).worker_pages == ((0, 12),)
    assert PageQuery.of("symbol", False, MAX_LIMIT, MAX_LIMIT).worker_pages == (
        (0, MAX_LIMIT),
        (MAX_LIMIT, MAX_LIMIT),
    )
    assert PageQuery.of("symbol", False, 1_990, 20).worker_pages == (
        (0, 1_000),
        (1_000, 1_000),
        (2_000, 10),
    )


def test_sort_fields_are_read_where_depth_metrics_put_them(query: MarketMetricsQuery) -> None:
    for item in query.all()["items"]:
        metrics = query.book.depth(item["symbol"])
        for field in SortField:
            assert field.value_in(item) == getattr(metrics, field.value)
