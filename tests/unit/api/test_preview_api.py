"""What-if preview: ``POST /api/v1/strategies/{id}/config[/{symbol}]/preview`` replays the
market window through the current and the candidate config and changes nothing."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.wire.binance import decode
from domain.config import AuditQuery
from domain.governance import Suppression
from domain.market import MarketEvent
from domain.market_window import MarketWindow
from tests.data import CAPTURE
from tests.unit.api.conftest import AUTH, ApiTestContainer

pytestmark = pytest.mark.unit

URL = "/api/v1/strategies/orderbook_skew/config"
BODY = {"parameters": {"buy_threshold": 2.0}, "changed_by": "agent", "reason": "what if"}
# On the capture the book is so bid-heavy that buys at the defaults fire at every cooldown
# expiry whatever the threshold: without a cooldown and the rest of governance, the threshold
# decides.
UNGOVERNED = {
    "cooldown_seconds": 0,
    "reversal_cooldown_seconds": 0,
    "min_confidence": 0.0,
    "hysteresis": False,
}
CURRENT = {
    "parameters": {"buy_threshold": 3.0, **UNGOVERNED},
    "changed_by": "ops",
    "reason": "strict",
}
NO_RATE_CAPS = {
    "parameters": {"max_signals_per_symbol_per_hour": 0, "max_signals_per_minute": 0},
    "changed_by": "ops",
    "reason": "no caps",
}


def capture_events(limit: int = 6_000) -> list[MarketEvent]:
    events: list[MarketEvent] = []
    with gzip.open(CAPTURE, "rb") as handle:
        for line in handle:
            decoded = decode(line)
            if not hasattr(decoded, "reason"):
                events.append(decoded)
            if len(events) == limit:
                break
    return events


@pytest.fixture(autouse=True)
async def stop_the_worker(container: ApiTestContainer) -> AsyncIterator[None]:
    yield
    await container.config_preview().close()


@pytest.fixture
def window(container: ApiTestContainer) -> MarketWindow:
    window: MarketWindow = container.market_window()
    for event in capture_events():
        window.on_event(event)
    return window


async def test_a_lower_buy_threshold_previews_more_signals_and_changes_nothing(
    client: httpx.AsyncClient,
    window: MarketWindow,
    repository: InMemoryConfigRepository,
    audit_log: InMemoryAuditLog,
) -> None:
    # The rate caps in force (runtime config) apply to both sides.
    caps = await client.post(
        "/api/v1/strategies/governance/config", json=NO_RATE_CAPS, headers=AUTH
    )
    assert caps.status_code == 200, caps.text
    changed = await client.post(f"{URL}/BTCUSDT", json=CURRENT, headers=AUTH)
    assert changed.status_code == 200
    stored, trail = await repository.list(), await audit_log.list(AuditQuery("orderbook_skew"))
    response = await client.post(f"{URL}/BTCUSDT/preview", json=BODY, headers=AUTH)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["stored"] is False
    assert data["published"] is False
    assert data["window"]["events"] == len(window) > 0
    current, candidate = data["current"], data["candidate"]
    assert candidate["counts"]["buy"] > current["counts"]["buy"]
    assert candidate["signal_count"] > len(candidate["signals"]) == 1000
    assert candidate["signals_truncated"] is True
    assert set(current["suppressed"]) == set(Suppression.ALL)
    assert sum(candidate["suppressed"].values()) == 0  # nothing left to suppress
    assert "net_pnl_bps" in candidate["pnl"]
    assert {s["config_version"] for s in current["signals"]} == {1}
    assert {s["config_version"] for s in candidate["signals"]} == {2}
    assert data["candidate_parameters"]["buy_threshold"] == 2.0
    assert await repository.list() == stored
    assert await audit_log.list(AuditQuery("orderbook_skew")) == trail
    config = await client.get(f"{URL}/BTCUSDT")
    assert config.json()["data"]["parameters"] == CURRENT["parameters"]


async def test_each_side_reports_what_governance_suppressed_by_reason(
    client: httpx.AsyncClient, window: MarketWindow
) -> None:
    """With the service's default governance (rate caps of 2 per symbol and hour, cooldowns,
    hysteresis) both sides publish few signals; the rest is counted per reason, as the
    backtest counts it."""
    response = await client.post(f"{URL}/BTCUSDT/preview", json=BODY, headers=AUTH)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    for side in (data["current"], data["candidate"]):
        assert set(side["suppressed"]) == set(Suppression.ALL)
        assert side["signal_count"] <= 2  # max_signals_per_symbol_per_hour
        assert side["suppressed"]["stale"] == side["suppressed"]["paused"] == 0
        for reason, count in side["suppressed"].items():
            assert side["evaluations"].get(reason, 0) == count
    assert sum(data["candidate"]["suppressed"].values()) > 0


async def test_a_symbol_is_previewed_by_the_one_symbol_rule(
    client: httpx.AsyncClient, window: MarketWindow
) -> None:
    """A lower-case symbol in the path previews the same symbol as its canonical spelling
    (the write's own rule normalises it)."""
    canonical = await client.post(f"{URL}/BTCUSDT/preview", json=BODY, headers=AUTH)
    lower = await client.post(f"{URL}/btcusdt/preview", json=BODY, headers=AUTH)
    assert canonical.status_code == lower.status_code == 200, lower.text
    assert lower.json()["data"] == canonical.json()["data"]
    assert lower.json()["data"]["window"]["symbols"] == ["BTCUSDT"]
    assert lower.json()["data"]["window"]["events"] > 0


async def test_the_governance_config_is_not_previewed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/strategies/governance/config/preview", json=NO_RATE_CAPS, headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["success"] is False


async def test_a_global_preview_replays_every_kept_symbol(
    client: httpx.AsyncClient, window: MarketWindow
) -> None:
    response = await client.post(f"{URL}/preview", json=BODY, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["window"]["symbols"] == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"parameters": {"buy_threshold": 99.0}, "changed_by": "a"}, 422),
        ({"parameters": {"no_such": 1}, "changed_by": "a"}, 422),
        ({"parameters": {}, "changed_by": "a"}, 422),
        ({"parameters": {"buy_threshold": 1.1}}, 422),
    ],
)
async def test_a_candidate_is_validated_like_a_real_change(
    client: httpx.AsyncClient, body: dict[str, object], status: int
) -> None:
    response = await client.post(f"{URL}/preview", json=body, headers=AUTH)
    assert response.status_code == status
    assert response.json()["success"] is False


async def test_previews_are_authenticated_and_unknown_strategies_404(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post(f"{URL}/preview", json=BODY)).status_code == 401
    unknown = await client.post("/api/v1/strategies/nope/config/preview", json=BODY, headers=AUTH)
    assert unknown.status_code == 404


async def test_an_empty_window_previews_nothing_on_both_sides(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{URL}/BTCUSDT/preview", json=BODY, headers=AUTH)
    data = response.json()["data"]
    assert data["window"]["events"] == 0
    assert data["current"]["signal_count"] == data["candidate"]["signal_count"] == 0
