"""The market metrics API over a book fed with a few depth snapshots."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.api.conftest import error_of

pytestmark = pytest.mark.unit

METRICS = "/api/v1/metrics"


async def test_depth_keeps_reference_shape(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/depth/BTCUSDT")
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["error"] is None
    assert payload["symbol"] == "BTCUSDT"
    # ``jq '.pressure'`` as in the reference README
    assert payload["pressure"] == {
        "buy_pressure": 80.0,
        "sell_pressure": 20.0,
        "net_pressure": pytest.approx(60.0),
        "interpretation": "bullish",
    }
    assert payload["liquidity"]["depth_top5"] == {"bid": 40.0, "ask": 10.0, "total": 50.0}
    assert payload["spread"]["best_bid"] == 60_000.0
    assert payload["spread"]["best_ask"] == 60_000.5
    assert payload["levels"]["strongest_support"]["price"] == 60_000.0


async def test_depth_symbol_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/depth/ethusdt")
    assert response.status_code == 200
    assert response.json()["symbol"] == "ETHUSDT"
    assert response.json()["pressure"]["interpretation"] == "bearish"


@pytest.mark.parametrize("path", ["depth/DOGEUSDT", "pressure/DOGEUSDT"])
async def test_unknown_symbol_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"{METRICS}/{path}")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "unknown_symbol"
    assert error["details"] == {"symbol": "DOGEUSDT"}


@pytest.mark.parametrize("path", ["depth", "pressure"])
async def test_symbols_up_to_32_characters_are_symbols(
    client: httpx.AsyncClient, path: str
) -> None:
    """The one symbol rule (1..32): 21..32 characters were 422 by a pattern of its own."""
    response = await client.get(f"{METRICS}/{path}/{'x' * 32}")
    assert response.status_code == 404, response.text
    assert error_of(response)["details"] == {"symbol": "X" * 32}


@pytest.mark.parametrize("symbol", ["BTC-USDT", "X" * 33, "BTC%24", "%20", "%C3%9F"])
async def test_invalid_symbol_is_422(client: httpx.AsyncClient, symbol: str) -> None:
    for path in ("depth", "pressure"):
        response = await client.get(f"{METRICS}/{path}/{symbol}")
        assert response.status_code == 422, response.text
        assert error_of(response)["code"] == "invalid_request"


async def test_pressure_default_timeframe_is_5m(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/pressure/BTCUSDT")
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["timeframe"] == "5m"
    summary = payload["summary"]
    assert summary["trend"] == "bullish"
    assert summary["avg_pressure"] == pytest.approx(60.0)
    assert 0.0 <= summary["trend_strength"] <= 1.0
    assert summary["count"] == 121


@pytest.mark.parametrize(("timeframe", "count"), [("1m", 61), ("15m", 121), ("1h", 121)])
async def test_pressure_timeframes(client: httpx.AsyncClient, timeframe: str, count: int) -> None:
    response = await client.get(f"{METRICS}/pressure/btcusdt", params={"timeframe": timeframe})
    assert response.status_code == 200
    assert response.json()["timeframe"] == timeframe
    assert response.json()["summary"]["count"] == count


async def test_pressure_points_are_downsampled(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/pressure/BTCUSDT", params={"max_points": 10})
    assert response.status_code == 200
    assert len(response.json()["points"]) == 10


@pytest.mark.parametrize("timeframe", ["2m", "", "1d", "5M0", "x" * 50])
async def test_bad_timeframe_is_422(client: httpx.AsyncClient, timeframe: str) -> None:
    response = await client.get(f"{METRICS}/pressure/BTCUSDT", params={"timeframe": timeframe})
    assert response.status_code == 422
    assert error_of(response)["code"] in {"invalid_query", "invalid_request"}


async def test_bad_timeframe_is_422_even_for_unknown_symbol(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/pressure/DOGEUSDT", params={"timeframe": "7m"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_query"
    assert error["details"][0]["field"] == "timeframe"


@pytest.mark.parametrize("max_points", ["0", "5001", "abc"])
async def test_bad_max_points_is_422(client: httpx.AsyncClient, max_points: str) -> None:
    response = await client.get(f"{METRICS}/pressure/BTCUSDT", params={"max_points": max_points})
    assert response.status_code == 422


async def test_summary(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/summary")
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["market_sentiment"] == {
        "bullish_symbols": 1,
        "bearish_symbols": 1,
        "neutral_symbols": 1,
        "avg_net_pressure": pytest.approx(0.0, abs=1e-9),
        "sentiment": "neutral",
    }
    assert payload["symbols"] == 3
    assert payload["most_bullish"]["symbol"] == "BTCUSDT"
    assert payload["most_bearish"]["symbol"] == "ETHUSDT"


async def test_all_default_sorted_by_symbol(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{METRICS}/all")
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["total"] == 3
    assert [item["symbol"] for item in payload["items"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def test_all_filters_sort_and_paginate(client: httpx.AsyncClient) -> None:
    bullish = (await client.get(f"{METRICS}/all", params={"interpretation": "bullish"})).json()
    assert [i["symbol"] for i in bullish["items"]] == ["BTCUSDT"]

    liquid = (await client.get(f"{METRICS}/all", params={"min_liquidity": 100_000})).json()
    assert [i["symbol"] for i in liquid["items"]] == ["BTCUSDT", "ETHUSDT"]

    ranked = (
        await client.get(f"{METRICS}/all", params={"sort_by": "net_pressure", "order": "desc"})
    ).json()
    assert [i["symbol"] for i in ranked["items"]] == ["BTCUSDT", "SOLUSDT", "ETHUSDT"]
    assert ranked["metadata"] == {"order": "desc"}
    assert ranked["descending"] is True

    page = (
        await client.get(
            f"{METRICS}/all",
            params={"sort_by": "net_pressure", "order": "asc", "offset": 1, "limit": 1},
        )
    ).json()
    assert page["total"] == 3
    assert page["count"] == 1
    assert [i["symbol"] for i in page["items"]] == ["SOLUSDT"]


@pytest.mark.parametrize(
    "params",
    [
        {"interpretation": "sideways"},
        {"sort_by": "price"},
        {"order": "up"},
        {"offset": "-1"},
        {"limit": "0"},
        {"limit": "1001"},
        {"min_liquidity": "-5"},
        {"min_liquidity": "inf"},
        {"min_liquidity": "nan"},
        {"limit": "ten"},
    ],
)
async def test_all_bad_query_is_422(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get(f"{METRICS}/all", params=params)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] in {"invalid_request", "invalid_query"}


async def test_openapi_documents_metrics_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    depth = spec["paths"]["/api/v1/metrics/depth/{symbol}"]["get"]
    assert "market metrics" in depth["tags"]
    assert set(depth["responses"]) >= {"200", "404", "422"}
    pressure = spec["paths"]["/api/v1/metrics/pressure/{symbol}"]["get"]
    timeframe = next(p for p in pressure["parameters"] if p["name"] == "timeframe")
    assert timeframe["schema"]["default"] == "5m"
