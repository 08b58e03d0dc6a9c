"""The console's pages, sign-in and cookie-authenticated writes, without a browser.

The browser tests (tests/integration/test_console_browser.py) drive the same pages through
Chromium; these check the server's side of them in one process.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from adapters.http.security import CONSOLE_SESSION_COOKIE, ApiSecurity
from domain.symbol import INPUT_TEXT, MAX_SYMBOL_LENGTH
from tests.unit.api.conftest import TOKEN, FakeHealth, make_client

pytestmark = pytest.mark.unit

PAGES = [
    "/console/signals",
    "/console/signals?strategy_id=orderbook_skew&symbol=btcusdt&action=buy",
    "/console/strategies",
    "/console/strategies/orderbook_skew",
    "/console/strategies/orderbook_skew?symbol=BTCUSDT",
    "/console/audit",
    "/console/audit?strategy_id=orderbook_skew&limit=5",
    "/console/market",
    "/console/market/BTCUSDT?timeframe=1m",
    "/console/health",
    "/console/login",
    "/console/pause",
    "/console/performance",
    "/console/performance?strategy_id=trade_momentum&symbol=btcusdt",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>" in response.text
    assert "http://" not in response.text.replace("http://api.test", "")  # nothing remote


async def test_assets_are_served_by_the_service(client: httpx.AsyncClient) -> None:
    script = await client.get("/console/static/console.js")
    style = await client.get("/console/static/console.css")
    assert script.status_code == style.status_code == 200
    page = (await client.get("/console/signals")).text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets
    assert all(asset.startswith("/console/static/") for asset in assets)


async def test_the_console_is_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/console")]


async def test_unknown_strategy_and_symbol_pages_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/console/strategies/nope")).status_code == 404
    assert (await client.get("/console/market/NOPEUSDT")).status_code == 404


async def test_the_market_page_draws_the_charts(client: httpx.AsyncClient) -> None:
    page = (await client.get("/console/market/BTCUSDT")).text
    assert page.count("<polyline") == 3
    assert page.count('class="bid"') == 2
    assert page.count('class="ask"') == 2


async def test_the_health_page_masks_credentials(
    client: httpx.AsyncClient, health: FakeHealth
) -> None:
    health.components["config_store"] = {
        "ready": False,
        "degraded": True,
        "detail": "mongodb://admin:hunter2@db:27017 unreachable",
    }
    page = (await client.get("/console/health")).text
    assert "hunter2" not in page
    assert "unreachable" in page


async def sign_in(client: httpx.AsyncClient, token: str, name: str = "ops") -> httpx.Response:
    return await client.post(
        "/console/login", data={"name": name, "token": token, "next": "/console/strategies"}
    )


async def test_sign_in_with_the_token_sets_a_strict_http_only_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_in(client, TOKEN)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/strategies"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CONSOLE_SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    page = (await client.get("/console/strategies")).text
    assert 'id="operator">ops<' in page


async def test_sign_in_with_a_wrong_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await sign_in(client, "wrong")
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert "invalid bearer token" in response.text
    assert "wrong" not in response.text.replace("wrong token", "")


async def test_sign_in_never_redirects_off_the_console(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/console/login", data={"name": "ops", "token": TOKEN, "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/console"


BODY = {"parameters": {"buy_threshold": 1.4}, "changed_by": "ops", "reason": "console"}
CONSOLE = {"X-Requested-By": "console"}


async def test_a_session_cookie_authorizes_writes_sent_by_the_console(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, TOKEN)
    written = await client.post(
        "/api/v1/strategies/orderbook_skew/config", json=BODY, headers=CONSOLE
    )
    assert written.status_code == 200, written.text
    assert written.json()["data"]["parameters"] == {"buy_threshold": 1.4}


async def test_a_session_cookie_without_the_console_header_is_not_enough(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, TOKEN)
    refused = await client.post("/api/v1/strategies/orderbook_skew/config", json=BODY)
    assert refused.status_code == 401


async def test_a_forged_or_foreign_session_cookie_is_refused(app: FastAPI) -> None:
    foreign = ApiSecurity("another-deployments-token", bound_to_loopback=False).issue_session("x")
    for cookie in (foreign, "b3Bz.9999999999.00", "garbage"):
        async with make_client(app) as http:
            http.cookies.set(CONSOLE_SESSION_COOKIE, cookie)
            refused = await http.post(
                "/api/v1/strategies/orderbook_skew/config", json=BODY, headers=CONSOLE
            )
            assert refused.status_code == 401, cookie


async def test_sign_out_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await sign_in(client, TOKEN)
    response = await client.post("/console/logout")
    assert response.status_code == 303
    assert f'{CONSOLE_SESSION_COOKIE}=""' in response.headers["set-cookie"]


async def test_the_pause_page_lists_every_strategy_and_the_navigation_offers_it(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/console/pause")).text
    assert 'id="pause-form"' in page
    assert 'value="orderbook_skew"' in page
    assert 'href="/console/pause"' in (await client.get("/console/signals")).text


@pytest.mark.parametrize(
    "path",
    ["/console/pause", "/console/strategies/orderbook_skew", "/console/performance"],
)
async def test_symbol_inputs_check_the_one_symbol_rule(
    client: httpx.AsyncClient, path: str
) -> None:
    page = (await client.get(path)).text
    assert f'maxlength="{MAX_SYMBOL_LENGTH}" pattern="{INPUT_TEXT}"' in page


async def test_the_performance_page_offers_the_strategies_only(client: httpx.AsyncClient) -> None:
    page = (await client.get("/console/performance?strategy_id=governance")).text
    assert 'data-strategy="orderbook_skew"' in page  # not a strategy: the first one instead
    assert 'value="governance"' not in page
    assert 'href="/console/performance"' in page
