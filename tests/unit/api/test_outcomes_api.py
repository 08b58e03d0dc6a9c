"""``/api/v1/signals/recent`` and ``/api/v1/strategies/{id}/performance`` on stored outcomes."""

from __future__ import annotations

import httpx
import pytest

from adapters.memory.outcome_store import InMemoryOutcomeStore
from tests.contract.outcome_store_contract import T0, make_outcome
from tests.unit.api.conftest import ApiTestContainer

pytestmark = pytest.mark.unit

STRATEGY = "orderbook_skew"


@pytest.fixture
async def store(container: ApiTestContainer) -> InMemoryOutcomeStore:
    store: InMemoryOutcomeStore = container.outcome_store()
    await store.save(
        [
            make_outcome(n, strategy_id=STRATEGY, version=1, horizons=4, closed=True)
            for n in range(3)
        ]
        + [make_outcome(n, strategy_id=STRATEGY, version=2, horizons=1) for n in range(3, 5)]
        + [make_outcome(9, strategy_id="trade_momentum", symbol="ETHUSDT")]
    )
    return store


async def test_recent_returns_payload_id_version_and_outcome_newest_first(
    client: httpx.AsyncClient, store: InMemoryOutcomeStore
) -> None:
    response = await client.get("/api/v1/signals/recent", params={"limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["metadata"]["count"] == 3
    first = body["data"][0]
    assert first["signal_id"] == "trade_momentum-ETHUSDT-9"
    assert first["payload"]["signal_id"] == first["signal_id"]
    assert set(first["outcome"]) == {"horizons", "trade", "trade_unfilled", "complete"}
    filtered = await client.get(
        "/api/v1/signals/recent", params={"strategy_id": STRATEGY, "symbol": "btcusdt"}
    )
    rows = filtered.json()["data"]
    assert [r["signal_id"] for r in rows] == [f"{STRATEGY}-BTCUSDT-{n}" for n in (4, 3, 2, 1, 0)]
    assert rows[-1]["outcome"]["trade"]["exit_reason"] == "take_profit"
    assert rows[-1]["outcome"]["horizons"]["1h"]["net_bps"] == pytest.approx(30.0)


async def test_performance_counts_and_splits_by_config_version(
    client: httpx.AsyncClient, store: InMemoryOutcomeStore
) -> None:
    response = await client.get(f"/api/v1/strategies/{STRATEGY}/performance")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["signals"] == 5
    assert data["horizons"]["1m"]["count"] == 5
    assert data["horizons"]["1h"]["count"] == 3
    assert data["horizons"]["1m"]["total_net_bps"] == pytest.approx(5 * -7.5)
    assert data["trades"]["trades"] == 3
    assert data["trades"]["open"] == 2
    assert set(data["by_config_version"]) == {"1", "2"}
    assert data["by_config_version"]["1"]["signals"] == 3
    assert data["by_config_version"]["2"]["trades"]["trades"] == 0
    only_two = await client.get(
        f"/api/v1/strategies/{STRATEGY}/performance", params={"config_version": 2}
    )
    assert only_two.json()["data"]["signals"] == 2
    since = "2024-08-08T00:00:03Z"  # T0 + 3 s
    assert T0 == 1_723_075_200_000
    recent = await client.get(f"/api/v1/strategies/{STRATEGY}/performance", params={"since": since})
    assert recent.json()["data"]["signals"] == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/strategies/nope/performance", 404),
        ("/api/v1/signals/recent?strategy_id=nope", 404),
        ("/api/v1/signals/recent?limit=0", 422),
        ("/api/v1/signals/recent?limt=5", 422),
        ("/api/v1/signals/recent?symbol=BTC-USDT", 422),
        ("/api/v1/strategies/orderbook_skew/performance?since=yesterday", 422),
        ("/api/v1/strategies/orderbook_skew/performance?config_version=-1", 422),
        ("/api/v1/strategies/orderbook_skew/performance?token=x", 422),
    ],
)
async def test_bad_requests_are_refused_with_the_envelope(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.json()["success"] is False


async def test_a_store_down_is_a_503(
    client: httpx.AsyncClient, store: InMemoryOutcomeStore
) -> None:
    store.available = False
    response = await client.get("/api/v1/signals/recent")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
