"""The metrics query use case (application/metrics_query.py): validation, lookup, shape."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from application.metrics_query import (
    MAX_LIMIT,
    InvalidQueryError,
    InvalidTimeframeError,
    MarketMetricsQuery,
    UnknownSymbolError,
)
from domain.market import DepthSnapshot
from domain.metrics import MarketMetricsBook

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
