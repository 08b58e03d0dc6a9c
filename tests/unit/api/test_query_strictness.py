"""Unknown query parameters are a 422 on every endpoint the app has, found from its routes
(so an endpoint added later is covered without editing a list)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.unit.api.conftest import AUTH

pytestmark = pytest.mark.unit

SAMPLES = {"strategy_id": "orderbook_skew", "symbol": "BTCUSDT"}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint of ``app``, those of included routers too."""
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            pending.extend(router.routes)
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLES.get(m.group(1), "x1"), path)


async def test_every_route_refuses_an_unknown_query_parameter(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    checked = []
    for route in api_routes(app):
        for method in sorted(route.methods or ()):
            url = f"{concrete(route.path)}?zz_unknown=1"
            response = await client.request(method, url, headers=AUTH, json={})
            details = response.json()["error"]["details"]
            assert response.status_code == 422, (method, url, response.text)
            assert {"field": "zz_unknown", "code": "unknown_query_parameter"}.items() <= next(
                d for d in details if d["field"] == "zz_unknown"
            ).items(), (method, url)
            checked.append((method, route.path))
    paths = {path for _, path in checked}
    assert "/api/v1/metrics/pressure/{symbol}" in paths
    assert "/console/strategies/{strategy_id}" in paths
    assert len(checked) >= 25
