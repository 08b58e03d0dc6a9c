"""``/api/v1/signals/pause`` and ``/resume`` through HTTP: envelope, validation (422), 404 on
nothing to resume, the audit trail (``GET /api/v1/audit``), the OpenAPI schema. Auth is in
test_security (the pause endpoints are among its MUTATIONS)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from domain.symbol import MAX_SYMBOL_LENGTH
from tests.unit.api.conftest import AUTH, ApiTestContainer

pytestmark = pytest.mark.unit

PAUSE = "/api/v1/signals/pause"
RESUME = "/api/v1/signals/resume"


def body(**fields: Any) -> dict[str, Any]:
    return {"changed_by": "ops@desk", "reason": "exchange incident", **fields}


async def test_pause_list_resume_and_audit(
    client: httpx.AsyncClient, container: ApiTestContainer
) -> None:
    assert (await client.get(PAUSE)).json()["data"] == []
    response = await client.post(PAUSE, json=body(), headers=AUTH)
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["success"] is True
    assert envelope["data"]["strategy_id"] is None
    assert envelope["data"]["symbol"] is None
    assert envelope["data"]["active"] is True
    assert envelope["metadata"] == {
        "action": "paused",
        "changes_applied": True,
        "audit_id": "*:1",
    }
    narrow = await client.post(
        PAUSE, json=body(strategy_id="trade_momentum", symbol="ethusdt"), headers=AUTH
    )
    assert narrow.json()["data"]["symbol"] == "ETHUSDT"
    assert narrow.json()["metadata"]["audit_id"] == "trade_momentum:1"
    listed = (await client.get(PAUSE)).json()
    assert listed["metadata"]["count"] == 2
    assert [(p["strategy_id"], p["symbol"]) for p in listed["data"]] == [
        (None, None),
        ("trade_momentum", "ETHUSDT"),
    ]
    again = await client.post(PAUSE, json=body(), headers=AUTH)
    assert again.json()["metadata"]["action"] == "unchanged"

    resumed = await client.post(RESUME, json=body(reason="over"), headers=AUTH)
    assert resumed.status_code == 200
    assert resumed.json()["data"]["active"] is False
    assert resumed.json()["metadata"]["action"] == "resumed"
    assert [p["symbol"] for p in (await client.get(PAUSE)).json()["data"]] == ["ETHUSDT"]

    audit = (await client.get("/api/v1/audit")).json()["data"]
    assert [(a["id"], a["action"]) for a in audit] == [
        ("*:2", "RESUME"),
        ("trade_momentum:1", "PAUSE"),
        ("*:1", "PAUSE"),
    ]
    assert audit[0]["changed_by"] == "ops@desk"
    assert audit[0]["reason"] == "over"
    strategy_audit = (await client.get("/api/v1/strategies/trade_momentum/audit")).json()
    assert [a["action"] for a in strategy_audit["data"]] == ["PAUSE"]
    cache = container.config_cache()
    assert [record.key for record in cache.pauses] == ["trade_momentum/ETHUSDT"]


async def test_a_symbol_of_the_one_rules_full_length_can_be_paused_and_resumed(
    client: httpx.AsyncClient,
) -> None:
    """The body takes the symbols every other input takes: 1..32 characters (it took 20)."""
    longest = "a" * MAX_SYMBOL_LENGTH
    paused = await client.post(PAUSE, json=body(symbol=longest), headers=AUTH)
    assert paused.status_code == 200, paused.text
    assert paused.json()["data"]["symbol"] == longest.upper()
    resumed = await client.post(RESUME, json=body(symbol=longest), headers=AUTH)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["metadata"]["action"] == "resumed"
    too_long = await client.post(PAUSE, json=body(symbol=longest + "A"), headers=AUTH)
    assert too_long.status_code == 422


async def test_nothing_to_resume_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(RESUME, json=body(strategy_id="orderbook_skew"), headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "pause_not_found"


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"strategy_id": "no_such_strategy"}, "strategy_id"),
        ({"strategy_id": "governance"}, "strategy_id"),  # configuration, not a strategy
        ({"symbol": "BTC/USDT"}, "symbol"),
        ({"symbol": "BTCUSDTÉ"}, "symbol"),
        ({"changed_by": "ops\u0007"}, "changed_by"),
        ({"reason": "why\u202e"}, "reason"),
    ],
)
async def test_invalid_bodies_are_422_with_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], bad: str
) -> None:
    for url in (PAUSE, RESUME):
        response = await client.post(url, json=body(**fields), headers=AUTH)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert bad in {detail["field"] for detail in error["details"]}
    assert (await client.get(PAUSE)).json()["data"] == []


@pytest.mark.parametrize(
    "payload",
    [
        {"reason": "no author"},
        {"changed_by": "ops"},  # reason is required
        {"changed_by": "ops", "reason": "", "unknown": 1},
        {"changed_by": "   ", "reason": ""},
    ],
)
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post(PAUSE, json=payload, headers=AUTH)
    assert response.status_code == 422


async def test_the_endpoints_are_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths[PAUSE]) == {"get", "post"}
    assert set(paths[RESUME]) == {"post"}
