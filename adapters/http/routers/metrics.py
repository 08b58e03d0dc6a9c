"""``/api/v1/metrics``: order-book depth analytics and market pressure.

Responses keep the reference API's top-level shape (``curl .../depth/BTCUSDT | jq
'.pressure'`` works as the reference documents) and add the envelope's ``success``, ``error``
and ``metadata`` keys; errors use the standard error envelope (404 unknown symbol, 422 bad
timeframe or query).

The handlers are ``async`` on purpose: the metrics book is updated by the processing loop on
the same event loop, so queries must run there too (never in a worker thread).
"""

# No ``from __future__ import annotations`` in router modules: dependency-injector finds the
# ``Provide`` markers in ``Annotated`` parameters only when annotations are real objects.

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from adapters.http.routers import AwaitedProvide
from adapters.http.routers.strategies import Symbol
from adapters.http.schemas import (
    AllMetricsResponse,
    DepthResponse,
    ErrorEnvelope,
    PressureResponse,
    SummaryResponse,
)
from application.metrics_query import MAX_LIMIT, MAX_POINTS_LIMIT, MarketMetricsQuery
from domain.metrics import DEFAULT_MAX_POINTS, Interpretation, SortField

router = APIRouter(prefix="/api/v1/metrics", tags=["market metrics"])

MetricsQueryDep = Annotated[MarketMetricsQuery, Depends(AwaitedProvide["metrics_query"])]

_404 = {"model": ErrorEnvelope, "description": "No depth data seen for this symbol."}
_422 = {"model": ErrorEnvelope, "description": "Invalid symbol, timeframe or query parameter."}


def metrics_response(
    payload: Mapping[str, Any], metadata: Mapping[str, object] | None = None
) -> JSONResponse:
    """The payload's keys at top level plus ``success``, ``error`` and ``metadata``."""
    body: dict[str, Any] = {"success": True, "error": None, "metadata": dict(metadata or {})}
    body.update(payload)
    return JSONResponse(body)


@router.get(
    "/depth/{symbol}",
    summary="Current depth metrics",
    description="Imbalance, buy/sell/net pressure and interpretation, liquidity (top 5/10, "
    "VWAP per side), spread (absolute and bps of mid), strongest support/resistance — from "
    "the symbol's latest depth snapshot.",
    response_model=None,
    responses={200: {"model": DepthResponse}, 404: _404, 422: _422},
)
@inject
async def depth(
    query: MetricsQueryDep,
    symbol: Symbol,
) -> JSONResponse:
    return metrics_response(query.depth(symbol.upper()))


@router.get(
    "/pressure/{symbol}",
    summary="Pressure history",
    description="Pressure points over the timeframe back from the symbol's latest event time, "
    "with a summary (average/min/max net pressure, trend, trend_strength).",
    response_model=None,
    responses={200: {"model": PressureResponse}, 404: _404, 422: _422},
)
@inject
async def pressure(
    query: MetricsQueryDep,
    symbol: Symbol,
    timeframe: Annotated[
        str, Query(max_length=8, description="One of 1m, 5m, 15m, 1h.", examples=["5m"])
    ] = "5m",
    max_points: Annotated[
        int,
        Query(ge=1, le=MAX_POINTS_LIMIT, description="Most points returned (downsampled)."),
    ] = DEFAULT_MAX_POINTS,
) -> JSONResponse:
    return metrics_response(query.pressure(symbol.upper(), timeframe, max_points))


@router.get(
    "/summary",
    summary="Market-wide sentiment",
    description="Bullish/bearish/neutral symbol counts, average net pressure, the most "
    "bullish and most bearish symbols.",
    response_model=None,
    responses={200: {"model": SummaryResponse}},
)
@inject
async def summary(
    query: MetricsQueryDep,
) -> JSONResponse:
    return metrics_response(query.summary())


@router.get(
    "/all",
    summary="All symbols' depth metrics",
    description="Every tracked symbol's depth metrics, filtered, sorted and paginated.",
    response_model=None,
    responses={200: {"model": AllMetricsResponse}, 422: _422},
)
@inject
async def all_metrics(
    query: MetricsQueryDep,
    interpretation: Annotated[
        Interpretation | None,
        Query(description="Keep only symbols with this interpretation."),
    ] = None,
    min_liquidity: Annotated[
        float | None,
        Query(ge=0, description="Minimum total liquidity in quote units (e.g. USDT)."),
    ] = None,
    sort_by: Annotated[SortField, Query(description="Sort field.")] = SortField.SYMBOL,
    order: Annotated[Literal["asc", "desc"], Query(description="Sort order.")] = "asc",
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
) -> JSONResponse:
    page = query.all(
        interpretation=None if interpretation is None else interpretation.value,
        min_liquidity=min_liquidity,
        sort_by=sort_by.value,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )
    return metrics_response(page, {"order": order})
