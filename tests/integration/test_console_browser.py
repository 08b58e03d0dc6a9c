"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright.

One ``run-local`` service (replaying the bundled capture fast, with an admin token) serves
every test of this module. The tests load every page, sign in, change a parameter through
the form and find the change in the audit timeline and in ``GET .../config``, see a 422
shown inline, and watch a live signal arrive over server-sent events. Screenshots go to
``out/console/`` (the README shows two of them, copied to ``docs/console/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.local_service import LocalService, local_service
from tests.integration.service_harness import REPO_ROOT

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO_ROOT / "out" / "console"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_service(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def submit_login(page: Page, url: str, name: str, token: str) -> None:
    """Open the login page at ``url`` and sign in as ``name`` with ``token``."""
    page.goto(url)
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", token)
    page.click("#login-form button[type=submit]")


def sign_in(page: Page, service: LocalService, name: str = "ops-alice") -> None:
    submit_login(page, f"{service.url}/console/login?next=/console/strategies", name, service.token)
    expect(page.locator("#operator")).to_have_text(name)


def apply_form(page: Page, url: str, fields: dict[str, str]) -> None:
    """Open the strategy page at ``url``, fill ``fields`` (selector → value), press Apply."""
    page.goto(url)
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click("#apply")


def api_data(service: LocalService, path: str) -> Any:
    """The ``data`` of the API's answer to ``GET path``."""
    return httpx.get(f"{service.url}{path}").json()["data"]


def test_every_page_loads(page: Page, service: LocalService) -> None:
    paths = {
        "signals": ("/console/signals", "Live signals"),
        "strategies": ("/console/strategies", "Strategies"),
        "strategy": ("/console/strategies/trade_momentum", "Trade Momentum"),
        "audit": ("/console/audit", "Audit timeline"),
        "market": ("/console/market", "Market"),
        "health": ("/console/health", "Health"),
        "login": ("/console/login", "Sign in"),
    }
    for name, (path, heading) in paths.items():
        response = page.goto(service.url + path)
        assert response is not None
        assert response.status == 200, path
        expect(page.locator("h1")).to_contain_text(heading)
        shot(page, name)
    page.goto(f"{service.url}/console/market")
    page.locator("#symbols tbody a").first.click()
    expect(page.locator("#pressure-chart polyline.net")).to_have_count(1)
    expect(page.locator("#depth-chart rect.bid")).to_have_count(2)
    shot(page, "symbol")


def test_a_wrong_token_is_refused_at_sign_in(page: Page, service: LocalService) -> None:
    submit_login(page, f"{service.url}/console/login", "mallory", "not-the-token")
    expect(page.locator("#login-error")).to_contain_text("invalid bearer token")
    expect(page.locator("#sign-in")).to_be_visible()


def test_a_change_through_the_form_reaches_the_audit_and_the_api(
    page: Page, service: LocalService
) -> None:
    sign_in(page, service)
    apply_form(
        page,
        f"{service.url}/console/strategies/orderbook_skew",
        {"#p-buy_threshold": "1.35", "#reason": "thin book in the browser test"},
    )
    expect(page.locator("#result")).to_contain_text("Applied")
    page.wait_for_load_state("load")
    expect(page.locator("#history tbody tr").first).to_contain_text("ops-alice")
    shot(page, "strategy-after-change")

    config = api_data(service, "/api/v1/strategies/orderbook_skew/config")
    assert config["parameters"]["buy_threshold"] == 1.35
    assert config["updated_by"] == "ops-alice"

    page.goto(f"{service.url}/console/audit?strategy_id=orderbook_skew")
    entry = page.locator("#timeline li.entry").first
    expect(entry).to_contain_text("ops-alice")
    expect(entry).to_contain_text("thin book in the browser test")
    expect(entry.locator("table.diff tr.added")).to_contain_text("buy_threshold")
    expect(entry.locator("table.diff tr.added td.new")).to_have_text("1.35")
    shot(page, "audit")


def test_an_invalid_value_is_shown_inline_and_nothing_changes(
    page: Page, service: LocalService
) -> None:
    sign_in(page, service, "ops-bob")
    before = api_data(service, "/api/v1/strategies/trade_momentum/config")
    apply_form(
        page, f"{service.url}/console/strategies/trade_momentum", {"#p-momentum_window": "0"}
    )
    error = page.locator('[data-error-for="momentum_window"]')
    expect(error).not_to_be_empty()
    expect(page.locator("#p-momentum_window")).to_have_attribute("aria-invalid", "true")
    shot(page, "strategy-422")
    after = api_data(service, "/api/v1/strategies/trade_momentum/config")
    assert after == before


def test_a_change_without_a_session_is_refused_inline(page: Page, service: LocalService) -> None:
    apply_form(
        page,
        f"{service.url}/console/strategies/ticker_velocity",
        {"#changed-by": "anonymous", "#p-time_window": "90"},
    )
    expect(page.locator("#form-error")).to_contain_text("sign in")
    config = api_data(service, "/api/v1/strategies/ticker_velocity/config")
    assert config["exists"] is False


def test_a_rollback_from_the_history_restores_the_earlier_version(
    page: Page, service: LocalService
) -> None:
    sign_in(page, service, "ops-carol")
    url = f"{service.url}/console/strategies/orderbook_skew?symbol=ETHUSDT"
    for value in ("1.4", "1.6"):
        apply_form(page, url, {"#p-buy_threshold": value})
        expect(page.locator("#result")).to_contain_text("Applied")
        page.wait_for_load_state("load")
    page.goto(url)
    first = page.locator("#history tbody tr").last
    first.locator("button.rollback").click()
    expect(page.locator("#result")).to_contain_text("Rolled back")
    config = httpx.get(f"{service.url}/api/v1/strategies/orderbook_skew/config/ETHUSDT")
    assert config.json()["data"]["parameters"]["buy_threshold"] == 1.4


def test_a_live_signal_appears(page: Page, service: LocalService) -> None:
    page.goto(f"{service.url}/console/signals")
    expect(page.locator("#stream-state")).to_have_text("live")
    row = page.locator("#signals tbody tr").first
    expect(row).to_be_visible(timeout=WAIT_MS)
    signal_id = row.get_attribute("data-signal-id")
    assert signal_id
    expect(row.locator("td").nth(1)).to_have_text(
        re.compile("orderbook_skew|trade_momentum|ticker_velocity")
    )
    shot(page, "signals")


def test_signal_filters_narrow_the_stream(page: Page, service: LocalService) -> None:
    page.goto(f"{service.url}/console/signals?strategy_id=trade_momentum")
    expect(page.locator("#signals tbody tr").first).to_be_visible(timeout=WAIT_MS)
    strategies = page.locator("#signals tbody tr td:nth-child(2)").all_inner_texts()
    assert strategies
    assert set(strategies) == {"trade_momentum"}


def test_screenshots_for_the_readme_are_saved(page: Page, service: LocalService) -> None:
    """The README shows docs/console/{signals,symbol}.png, copies of these screenshots."""
    for name in ("signals", "symbol"):
        made = SHOTS / f"{name}.png"
        assert made.is_file(), f"{made} was not written"
        assert made.stat().st_size > 10_000
        assert (REPO_ROOT / "docs" / "console" / f"{name}.png").is_file()


def test_pause_and_resume_through_the_console(page: Page, service: LocalService) -> None:
    sign_in(page, service, "ops-carol")
    page.goto(f"{service.url}/console/pause")
    expect(page.locator("h1")).to_contain_text("Pause switch")
    expect(page.locator("#pauses tbody")).to_contain_text("No active pause")
    page.select_option("#pause-strategy", "orderbook_skew")
    page.fill("#pause-symbol", "btcusdt")
    page.fill("#reason", "browser test: thin book")
    page.click("#pause")
    expect(page.locator("#result")).to_contain_text("paused")
    row = page.locator("#pauses tbody tr.pause")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("BTCUSDT")
    expect(row).to_contain_text("ops-carol")
    shot(page, "pause")
    listed = api_data(service, "/api/v1/signals/pause")
    assert [(p["strategy_id"], p["symbol"]) for p in listed] == [("orderbook_skew", "BTCUSDT")]

    row.locator("button").click()
    expect(page.locator("#result")).to_contain_text("resumed")
    expect(page.locator("#pauses tbody")).to_contain_text("No active pause")
    assert api_data(service, "/api/v1/signals/pause") == []
    audit = api_data(service, "/api/v1/audit?limit=5")
    assert {r["action"] for r in audit} >= {"PAUSE", "RESUME"}


def test_a_pause_without_a_session_is_refused_inline(page: Page, service: LocalService) -> None:
    page.goto(f"{service.url}/console/pause")
    page.fill("#reason", "not signed in")
    page.fill("#changed-by", "mallory")
    page.click("#pause")
    expect(page.locator("#form-error")).to_contain_text("sign in")
    assert api_data(service, "/api/v1/signals/pause") == []


def test_the_performance_page_shows_live_outcomes(page: Page, service: LocalService) -> None:
    page.goto(f"{service.url}/console/performance?strategy_id=orderbook_skew")
    expect(page.locator("h1")).to_contain_text("Live performance")
    expect(page.locator("#performance-state")).to_contain_text("scored")
    expect(page.locator("#horizons tbody tr")).to_have_count(4)  # 1m, 5m, 15m, 1h
    expect(page.locator("#trades tbody tr").first).to_contain_text("closed trades")
    shot(page, "performance")


def test_a_preview_from_the_form_shows_both_sides(page: Page, service: LocalService) -> None:
    sign_in(page, service, "ops-dave")
    page.goto(f"{service.url}/console/strategies/orderbook_skew")
    page.fill("#p-buy_threshold", "2.5")
    page.click("#preview")
    expect(page.locator("#preview-result")).to_contain_text("candidate")
    shot(page, "preview")
    config = api_data(service, "/api/v1/strategies/orderbook_skew/config")
    assert config["effective"]["buy_threshold"] != 2.5  # a preview never writes
