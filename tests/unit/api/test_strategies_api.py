"""The configuration API end to end: real config use cases on in-memory stores, through HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.http.app import create_app
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from domain.config import AuditQuery
from domain.strategies.registry import CONFIG_PARAMS, STRATEGIES, STRATEGY_PARAMS
from domain.symbol import MAX_SYMBOL_LENGTH
from tests.unit.api.conftest import AUTH, ApiTestContainer, error_of, make_client, wired

pytestmark = pytest.mark.unit

BASE = "/api/v1/strategies"
SKEW = f"{BASE}/orderbook_skew"


def body(parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"parameters": parameters, "changed_by": "llm_agent_v1", "reason": "test", **extra}


def detail_codes(response: httpx.Response) -> dict[str, str]:
    return {d["field"]: d["code"] for d in error_of(response)["details"]}


# --- discovery --------------------------------------------------------------------------------


async def test_list_strategies(client: httpx.AsyncClient) -> None:
    response = await client.get(BASE)
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["error"] is None
    ids = [s["strategy_id"] for s in payload["data"]]
    assert ids == list(CONFIG_PARAMS) == [*STRATEGY_PARAMS, "governance"]
    skew = payload["data"][0]
    assert skew["has_global_config"] is False
    assert skew["symbol_overrides"] == []
    assert skew["parameter_count"] == len(STRATEGY_PARAMS["orderbook_skew"].schema())


# --- the governance limits: runtime configuration like a strategy's parameters -----------------


async def test_governance_limits_are_configured_validated_and_audited_like_parameters(
    client: httpx.AsyncClient, container: ApiTestContainer
) -> None:
    governance = f"{BASE}/governance"
    listed = {s["strategy_id"]: s for s in (await client.get(BASE)).json()["data"]}
    assert listed["governance"]["name"] == "Signal Governance"
    assert listed["governance"]["enabled"] is True
    specs = {s["name"]: s for s in (await client.get(f"{governance}/schema")).json()["data"]}
    assert set(specs) == {"max_signals_per_symbol_per_hour", "max_signals_per_minute"}
    assert specs["max_signals_per_minute"]["default"] == 10

    bad = await client.post(
        f"{governance}/config", json=body({"max_signals_per_minute": -1}), headers=AUTH
    )
    assert bad.status_code == 422
    assert detail_codes(bad) == {"max_signals_per_minute": "out_of_range"}
    unauthenticated = await client.post(
        f"{governance}/config", json=body({"max_signals_per_minute": 3})
    )
    assert unauthenticated.status_code == 401

    ok = await client.post(
        f"{governance}/config", json=body({"max_signals_per_minute": 3}), headers=AUTH
    )
    assert ok.status_code == 200
    per_symbol = await client.post(
        f"{governance}/config/ethusdt",
        json=body({"max_signals_per_symbol_per_hour": 5}),
        headers=AUTH,
    )
    assert per_symbol.status_code == 200
    cache = container.config_cache()
    assert cache.governance_limits("BTCUSDT").max_signals_per_minute == 3
    assert cache.governance_limits("BTCUSDT").max_signals_per_symbol_per_hour == 2
    assert cache.governance_limits("ETHUSDT").max_signals_per_symbol_per_hour == 5
    assert cache.governance_limits("ETHUSDT").max_signals_per_minute == 3  # merged by field
    audit = (await client.get(f"{governance}/audit")).json()["data"]
    assert len(audit) == 2


async def test_list_shows_global_config_and_overrides(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"buy_threshold": 1.3}), headers=AUTH)
    await client.post(f"{SKEW}/config/ethusdt", json=body({"top_levels": 10}), headers=AUTH)
    skew = (await client.get(BASE)).json()["data"][0]
    assert skew["has_global_config"] is True
    assert skew["symbol_overrides"] == ["ETHUSDT"]
    assert skew["version"] == 1


async def test_schema_lists_every_parameter_with_bounds(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{SKEW}/schema")
    assert response.status_code == 200
    specs = {s["name"]: s for s in response.json()["data"]}
    assert specs["buy_threshold"] == {
        "name": "buy_threshold",
        "type": "float",
        "description": specs["buy_threshold"]["description"],
        "default": 1.2,
        "min": 1.0,
        "max": 3.0,
        "example": 1.2,
    }
    assert specs["top_levels"]["type"] == "int"
    assert specs["enabled"]["type"] == "bool"


async def test_governance_parameters_are_in_the_schema_and_validated(
    client: httpx.AsyncClient,
) -> None:
    for strategy_id in ("orderbook_skew", "trade_momentum", "ticker_velocity"):
        specs = {
            s["name"]: s for s in (await client.get(f"{BASE}/{strategy_id}/schema")).json()["data"]
        }
        for name in (
            "cooldown_seconds",
            "reversal_cooldown_seconds",
            "min_confidence",
            "hysteresis",
            "confirm_seconds",
            "rearm_margin",
        ):
            assert specs[name]["description"], (strategy_id, name)
        assert specs["min_confidence"]["default"] == 0.6
    bad = {"min_confidence": 2.0, "confirm_seconds": -1.0, "hysteresis": 1}
    response = await client.post(f"{SKEW}/config", json=body(bad), headers=AUTH)
    assert response.status_code == 422
    assert detail_codes(response) == {
        "min_confidence": "out_of_range",
        "confirm_seconds": "out_of_range",
        "hysteresis": "wrong_type",
    }


async def test_defaults(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/trade_momentum/defaults")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["sell_threshold"] == -0.7
    assert data["momentum_window"] == 10
    assert data["enabled"] is True


@pytest.mark.parametrize("suffix", ["/schema", "/defaults", "/config", "/config/BTCUSDT", "/audit"])
async def test_unknown_strategy_is_404(client: httpx.AsyncClient, suffix: str) -> None:
    response = await client.get(f"{BASE}/no_such_strategy{suffix}")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "unknown_strategy"
    assert error["details"] == {"strategy_id": "no_such_strategy"}


async def test_unknown_strategy_write_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{BASE}/no_such_strategy/config", json=body({"x": 1}), headers=AUTH
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_strategy"


async def test_malformed_strategy_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/Bad-Id!/config")
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"


# --- reads and writes -------------------------------------------------------------------------


async def test_get_global_config_without_stored_layer(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{SKEW}/config")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["exists"] is False
    assert data["parameters"] == {}
    assert data["source"] == "default"
    assert data["version"] == 0
    assert data["effective"]["buy_threshold"] == 1.2


async def test_create_then_update_global_config(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{SKEW}/config", json=body({"buy_threshold": 1.3}), headers=AUTH)
    assert created.status_code == 200
    payload = created.json()
    assert payload["success"] is True
    assert payload["metadata"] == {
        "action": "created",
        "changes_applied": True,
        "previous_parameters": None,
    }
    assert payload["data"]["parameters"] == {"buy_threshold": 1.3}
    assert payload["data"]["version"] == 1
    assert payload["data"]["source"] == "memory"
    assert payload["data"]["is_override"] is False

    updated = await client.post(f"{SKEW}/config", json=body({"top_levels": 10}), headers=AUTH)
    assert updated.status_code == 200
    payload = updated.json()
    assert payload["metadata"]["action"] == "updated"
    assert payload["metadata"]["previous_parameters"] == {"buy_threshold": 1.3}
    assert payload["data"]["parameters"] == {"buy_threshold": 1.3, "top_levels": 10}
    assert payload["data"]["version"] == 2

    read = (await client.get(f"{SKEW}/config")).json()["data"]
    assert read["exists"] is True
    assert read["effective"]["top_levels"] == 10
    assert read["updated_by"] == "llm_agent_v1"


async def test_integer_for_float_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SKEW}/config", json=body({"buy_threshold": 2}), headers=AUTH)
    assert response.status_code == 200
    value = response.json()["data"]["parameters"]["buy_threshold"]
    assert value == 2.0


async def test_null_removes_a_parameter_from_the_layer(client: httpx.AsyncClient) -> None:
    await client.post(
        f"{SKEW}/config", json=body({"buy_threshold": 1.3, "top_levels": 7}), headers=AUTH
    )
    response = await client.post(f"{SKEW}/config", json=body({"top_levels": None}), headers=AUTH)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["parameters"] == {"buy_threshold": 1.3}
    assert data["effective"]["top_levels"] == 5


async def test_symbol_override_inherits_global(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"top_levels": 8}), headers=AUTH)
    response = await client.post(
        f"{SKEW}/config/btcusdt", json=body({"buy_threshold": 1.5}), headers=AUTH
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["symbol"] == "BTCUSDT"
    assert data["is_override"] is True
    assert data["parameters"] == {"buy_threshold": 1.5}
    assert data["effective"]["top_levels"] == 8
    assert data["effective"]["buy_threshold"] == 1.5

    read = (await client.get(f"{SKEW}/config/BTCUSDT")).json()["data"]
    assert read["exists"] is True
    assert read["is_override"] is True
    other = (await client.get(f"{SKEW}/config/ETHUSDT")).json()["data"]
    assert other["exists"] is False
    assert other["is_override"] is False
    assert other["effective"]["buy_threshold"] == 1.2


async def test_validate_only_writes_nothing(
    client: httpx.AsyncClient, repository: InMemoryConfigRepository, audit_log: InMemoryAuditLog
) -> None:
    response = await client.post(
        f"{SKEW}/config", json=body({"buy_threshold": 1.9}, validate_only=True), headers=AUTH
    )
    assert response.status_code == 200
    payload = response.json()
    assert payload["metadata"]["action"] == "validated"
    assert payload["metadata"]["changes_applied"] is False
    assert payload["data"]["effective"]["buy_threshold"] == 1.9
    assert await repository.list() == []
    assert await audit_log.list(AuditQuery("orderbook_skew")) == []
    assert (await client.get(f"{SKEW}/config")).json()["data"]["exists"] is False


async def test_validate_only_in_the_query_is_422_and_writes_nothing(
    client: httpx.AsyncClient, repository: InMemoryConfigRepository, audit_log: InMemoryAuditLog
) -> None:
    """``validate_only`` is a body field: in the query string it was ignored and the write
    applied for real; now it is an unknown query parameter."""
    for url in (f"{SKEW}/config", f"{SKEW}/config/BTCUSDT"):
        response = await client.post(
            f"{url}?validate_only=true", json=body({"buy_threshold": 1.9}), headers=AUTH
        )
        assert response.status_code == 422
        [detail] = error_of(response)["details"]
        assert detail["field"] == "validate_only"
        assert detail["code"] == "unknown_query_parameter"
    assert await repository.list() == []
    assert await audit_log.list(AuditQuery("orderbook_skew")) == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", BASE),
        ("GET", f"{SKEW}/schema"),
        ("GET", f"{SKEW}/defaults"),
        ("GET", f"{SKEW}/config"),
        ("GET", f"{SKEW}/config/BTCUSDT"),
        ("GET", f"{SKEW}/audit?limit=5"),
        ("DELETE", f"{SKEW}/config?changed_by=ops"),
        ("POST", f"{BASE}/cache/refresh"),
        ("GET", "/api/v1/metrics/summary"),
        ("GET", "/api/v1/metrics/all?limit=5"),
        ("GET", "/api/v1/metrics/depth/BTCUSDT"),
        ("GET", "/ready"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    ],
)
async def test_unknown_query_parameters_are_422_on_every_endpoint(
    client: httpx.AsyncClient, method: str, url: str
) -> None:
    separator = "&" if "?" in url else "?"
    response = await client.request(method, f"{url}{separator}limt=3", headers=AUTH)
    assert response.status_code == 422
    [detail] = error_of(response)["details"]
    assert detail == {
        "field": "limt",
        "code": "unknown_query_parameter",
        "message": detail["message"],
        "location": ["query", "limt"],
    }


async def test_declared_query_parameters_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{SKEW}/audit?symbol=BTCUSDT&limit=5")
    assert response.status_code == 200
    response = await client.get("/api/v1/metrics/pressure/BTCUSDT?timeframe=5m")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "text",
    ["a\x00b", "bell\x07", "new\nline", "cr\r", "tab\t", "rtl\u202eevil", "zw\u200b", "ls\u2028"],
)
async def test_control_and_bidi_characters_in_who_and_why_are_422(
    client: httpx.AsyncClient, audit_log: InMemoryAuditLog, text: str
) -> None:
    for field in ("changed_by", "reason"):
        payload = body({"top_levels": 6})
        payload[field] = f"ops {text} end"
        response = await client.post(f"{SKEW}/config", json=payload, headers=AUTH)
        assert response.status_code == 422, response.text
        assert field in detail_codes(response)
    response = await client.delete(
        f"{SKEW}/config", params={"changed_by": f"ops {text} end"}, headers=AUTH
    )
    assert response.status_code == 422
    assert await audit_log.list(AuditQuery("orderbook_skew")) == []


async def test_printable_unicode_in_who_and_why_is_kept(
    client: httpx.AsyncClient, audit_log: InMemoryAuditLog
) -> None:
    payload = body({"top_levels": 6})
    payload["changed_by"] = "agent ✓ Zoë"
    payload["reason"] = "Marché plus volatil — ajuster (מבחן)"
    assert (await client.post(f"{SKEW}/config", json=payload, headers=AUTH)).status_code == 200
    [record] = await audit_log.list(AuditQuery("orderbook_skew"))
    assert (record.changed_by, record.reason) == (payload["changed_by"], payload["reason"])


async def test_validate_only_still_rejects_invalid(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{SKEW}/config", json=body({"buy_threshold": 9.0}, validate_only=True), headers=AUTH
    )
    assert response.status_code == 422
    assert detail_codes(response) == {"buy_threshold": "out_of_range"}


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"no_such_param": 1}, {"no_such_param": "unknown_parameter"}),
        ({"top_levels": True}, {"top_levels": "wrong_type"}),
        ({"enabled": 1}, {"enabled": "wrong_type"}),
        ({"top_levels": 5.5}, {"top_levels": "wrong_type"}),
        ({"buy_threshold": 5.0}, {"buy_threshold": "out_of_range"}),
        ({"top_levels": 0}, {"top_levels": "out_of_range"}),
        ({"sell_threshold": 1.0, "buy_threshold": 1.0}, {"__root__": "cross_field"}),
        ({"imbalance_weight": 0.0, "spread_weight": 0.0}, {"__root__": "cross_field"}),
        (
            {"no_such_param": 1, "top_levels": True, "buy_threshold": 9.9},
            {
                "no_such_param": "unknown_parameter",
                "top_levels": "wrong_type",
                "buy_threshold": "out_of_range",
            },
        ),
    ],
)
async def test_invalid_parameters_are_422_with_field_details(
    client: httpx.AsyncClient, parameters: dict[str, Any], expected: dict[str, str]
) -> None:
    response = await client.post(f"{SKEW}/config", json=body(parameters), headers=AUTH)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert detail_codes(response) == expected
    assert all(d["message"] for d in error["details"])


async def test_override_cannot_break_cross_field_rule_with_global(
    client: httpx.AsyncClient,
) -> None:
    await client.post(f"{SKEW}/config", json=body({"sell_threshold": 1.0}), headers=AUTH)
    response = await client.post(
        f"{SKEW}/config/BTCUSDT", json=body({"buy_threshold": 1.0}), headers=AUTH
    )
    assert response.status_code == 422
    assert detail_codes(response) == {"__root__": "cross_field"}


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        (
            {"parameters": {"buy_threshold": "1.3"}, "changed_by": "a"},
            "parameters.buy_threshold",
            "wrong_type",
        ),
        (
            {"parameters": {"buy_threshold": [1]}, "changed_by": "a"},
            "parameters.buy_threshold",
            "wrong_type",
        ),
        (
            {"parameters": {"top_levels": {"x": 1}}, "changed_by": "a"},
            "parameters.top_levels",
            "wrong_type",
        ),
        ({"parameters": {"top_levels": 5}}, "changed_by", "missing"),
        ({"parameters": {"top_levels": 5}, "changed_by": ""}, "changed_by", "string_too_short"),
        ({"parameters": {"top_levels": 5}, "changed_by": "   "}, "changed_by", "string_too_short"),
        (
            {"parameters": {"top_levels": 5}, "changed_by": "x" * 101},
            "changed_by",
            "string_too_long",
        ),
        (
            {"parameters": {"top_levels": 5}, "changed_by": "a", "reason": "r" * 501},
            "reason",
            "string_too_long",
        ),
        (
            {"parameters": {"top_levels": 5}, "changed_by": "a", "surprise": 1},
            "surprise",
            "extra_forbidden",
        ),
        (
            {"parameters": {"top_levels": 5}, "changed_by": "a", "validate_only": "yes"},
            "validate_only",
            "bool_type",
        ),
        ({"parameters": [1, 2], "changed_by": "a"}, "parameters", "dict_type"),
        ({"changed_by": "a"}, "parameters", "missing"),
        ([1, 2, 3], "__root__", "model_attributes_type"),
    ],
)
async def test_malformed_body_is_422_in_envelope(
    client: httpx.AsyncClient, payload: Any, field: str, code: str
) -> None:
    response = await client.post(f"{SKEW}/config", json=payload, headers=AUTH)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert {d["field"]: d["code"] for d in error["details"]}.get(field) == code
    assert all("input" not in d for d in error["details"])


async def test_empty_parameters_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SKEW}/config", json=body({}), headers=AUTH)
    assert response.status_code == 422
    assert detail_codes(response) == {"parameters": "empty_patch"}


async def test_symbols_up_to_32_characters_are_symbols(client: httpx.AsyncClient) -> None:
    """The one symbol rule (1..32): 21..32 characters were 422 by a pattern of its own."""
    response = await client.get(f"{SKEW}/config/{'b' * 32}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["symbol"] == "B" * 32


@pytest.mark.parametrize("symbol", ["BTC-USDT", "B" * 33, "BTC%20USDT", "btc_usdt", "%C3%9F"])
async def test_invalid_symbol_is_422(client: httpx.AsyncClient, symbol: str) -> None:
    read = await client.get(f"{SKEW}/config/{symbol}")
    assert read.status_code == 422
    write = await client.post(f"{SKEW}/config/{symbol}", json=body({"top_levels": 5}), headers=AUTH)
    assert write.status_code == 422
    assert error_of(write)["code"] == "invalid_request"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"parameters": {"top_levels": 5}, "changed_by": "a"',
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
        b'{"parameters": ' * 3000 + b"1" + b"}" * 3000,
        b'{"parameters": {"top_levels": ' + b"9" * 5000 + b'}, "changed_by": "a"}',
    ],
)
async def test_unparseable_or_deeply_nested_json_is_4xx(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await client.post(
        f"{SKEW}/config",
        content=raw,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert error_of(response)["code"] in {"invalid_json", "invalid_request"}


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    parameters = {f"p{i}": 1.0 for i in range(90)}
    payload = json.dumps(body(parameters, reason="r" * 400)).encode() + b" " * 70_000
    response = await client.post(
        f"{SKEW}/config", content=payload, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"max_bytes": 65536}


async def test_oversized_streamed_body_without_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    response = await client.post(
        f"{SKEW}/config", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


# --- delete, audit, rollback ------------------------------------------------------------------


async def test_delete_missing_config_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{SKEW}/config?changed_by=ops", headers=AUTH)
    assert response.status_code == 404
    assert error_of(response)["code"] == "config_not_found"
    response = await client.delete(f"{SKEW}/config/BTCUSDT?changed_by=ops", headers=AUTH)
    assert response.status_code == 404
    assert error_of(response)["details"] == {"strategy_id": "orderbook_skew", "symbol": "BTCUSDT"}


async def test_delete_global_and_symbol_config(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"top_levels": 8}), headers=AUTH)
    await client.post(f"{SKEW}/config/BTCUSDT", json=body({"top_levels": 9}), headers=AUTH)

    response = await client.delete(
        f"{SKEW}/config/btcusdt", params={"changed_by": "ops", "reason": "done"}, headers=AUTH
    )
    assert response.status_code == 200
    payload = response.json()
    assert payload["metadata"]["action"] == "deleted"
    assert payload["metadata"]["previous_parameters"] == {"top_levels": 9}
    assert payload["data"]["exists"] is False
    assert payload["data"]["effective"]["top_levels"] == 8

    response = await client.delete(f"{SKEW}/config?changed_by=ops", headers=AUTH)
    assert response.status_code == 200
    assert (await client.get(f"{SKEW}/config")).json()["data"]["exists"] is False


async def test_audit_trail_after_set_delete_rollback(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"buy_threshold": 1.3}), headers=AUTH)
    await client.post(f"{SKEW}/config", json=body({"buy_threshold": 1.4}), headers=AUTH)
    await client.post(f"{SKEW}/config/BTCUSDT", json=body({"top_levels": 3}), headers=AUTH)
    await client.delete(
        f"{SKEW}/config/BTCUSDT", params={"changed_by": "ops", "reason": "cleanup"}, headers=AUTH
    )
    rolled = await client.post(
        f"{SKEW}/rollback",
        json={"to_version": 1, "changed_by": "ops", "reason": "1.4 too strict"},
        headers=AUTH,
    )
    assert rolled.status_code == 200
    assert rolled.json()["metadata"]["action"] == "rolled_back"
    assert rolled.json()["data"]["effective"]["buy_threshold"] == 1.3

    response = await client.get(f"{SKEW}/audit")
    assert response.status_code == 200
    records = response.json()["data"]
    assert [r["action"] for r in records] == ["ROLLBACK", "DELETE", "CREATE", "UPDATE", "CREATE"]
    assert [r["version"] for r in records] == [5, 4, 3, 2, 1]
    rollback = records[0]
    assert rollback["old_parameters"] == {"buy_threshold": 1.4}
    assert rollback["new_parameters"] == {"buy_threshold": 1.3}
    assert rollback["changed_by"] == "ops"
    assert rollback["reason"] == "1.4 too strict"
    assert rollback["changed_at"].endswith("Z") or "+00:00" in rollback["changed_at"]
    delete = records[1]
    assert delete["symbol"] == "BTCUSDT"
    assert delete["new_parameters"] is None

    only_btc = (await client.get(f"{SKEW}/audit", params={"symbol": "btcusdt"})).json()
    assert [r["action"] for r in only_btc["data"]] == ["DELETE", "CREATE"]
    limited = (await client.get(f"{SKEW}/audit", params={"limit": 2})).json()["data"]
    assert len(limited) == 2


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "symbol=BTC-USDT"])
async def test_audit_bad_query_is_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"{SKEW}/audit?{query}")
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"


async def test_rollback_latest_change_of_symbol_layer(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config/ETHUSDT", json=body({"top_levels": 3}), headers=AUTH)
    await client.post(f"{SKEW}/config/ETHUSDT", json=body({"top_levels": 4}), headers=AUTH)
    response = await client.post(
        f"{SKEW}/rollback",
        json={"to_version": None, "symbol": "ethusdt", "changed_by": "ops"},
        headers=AUTH,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["symbol"] == "ETHUSDT"
    assert data["parameters"] == {"top_levels": 3}


async def test_rollback_of_a_layer_whose_symbol_has_the_full_length(
    client: httpx.AsyncClient,
) -> None:
    """The body's symbol takes what the path took when the layer was written (1..32; it took
    only 20)."""
    longest = "E" * MAX_SYMBOL_LENGTH
    for top_levels in (3, 4):
        written = await client.post(
            f"{SKEW}/config/{longest}", json=body({"top_levels": top_levels}), headers=AUTH
        )
        assert written.status_code == 200, written.text
    response = await client.post(
        f"{SKEW}/rollback", json={"symbol": longest.lower(), "changed_by": "ops"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["parameters"] == {"top_levels": 3}
    too_long = await client.post(
        f"{SKEW}/rollback", json={"symbol": longest + "E", "changed_by": "ops"}, headers=AUTH
    )
    assert too_long.status_code == 422


async def test_rollback_to_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"top_levels": 3}), headers=AUTH)
    response = await client.post(
        f"{SKEW}/rollback", json={"to_version": 42, "changed_by": "ops"}, headers=AUTH
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "config_not_found"


async def test_rollback_without_history_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SKEW}/rollback", json={"changed_by": "ops"}, headers=AUTH)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"to_version": 0, "changed_by": "ops"},
        {"to_version": "1", "changed_by": "ops"},
        {"to_version": True, "changed_by": "ops"},
        {"to_version": 1},
        {"to_version": 1, "changed_by": "ops", "symbol": "BTC/USDT"},
        {"to_version": 1, "changed_by": "ops", "extra": 1},
    ],
)
async def test_rollback_bad_body_is_422(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post(f"{SKEW}/rollback", json=payload, headers=AUTH)
    assert response.status_code == 422


async def test_cache_refresh(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/cache/refresh", headers=AUTH)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["refreshed"] is True
    assert data["refreshed_at"] is not None


# --- store outage -----------------------------------------------------------------------------


async def test_store_down_is_503(
    client: httpx.AsyncClient, repository: InMemoryConfigRepository
) -> None:
    repository.available = False
    for response in (
        await client.get(BASE),
        await client.get(f"{SKEW}/config"),
        await client.post(f"{SKEW}/config", json=body({"top_levels": 6}), headers=AUTH),
        await client.delete(f"{SKEW}/config?changed_by=ops", headers=AUTH),
        await client.post(f"{BASE}/cache/refresh", headers=AUTH),
    ):
        assert response.status_code == 503
        error = error_of(response)
        assert error["code"] == "store_unavailable"
        assert "in-memory" not in error["message"]
        assert response.headers["retry-after"] == "5"
    repository.available = True
    assert (await client.get(BASE)).status_code == 200


async def test_audit_store_down_is_503(
    client: httpx.AsyncClient, audit_log: InMemoryAuditLog
) -> None:
    audit_log.available = False
    response = await client.get(f"{SKEW}/audit")
    assert response.status_code == 503


# --- fuzz -------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_param_names = st.sampled_from(
    ["buy_threshold", "sell_threshold", "top_levels", "enabled", "cooldown_seconds", "nope", ""]
)
_bodies = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {"parameters": st.dictionaries(_param_names, _json_values, max_size=4)},
        optional={
            "changed_by": _json_values,
            "reason": _json_values,
            "validate_only": _json_values,
            "to_version": _json_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "parameters": st.dictionaries(
                _param_names,
                st.none() | st.booleans() | st.integers(-100, 100) | st.floats(-100, 100),
                max_size=4,
            ),
            "changed_by": st.text(min_size=1, max_size=10),
        },
        optional={"validate_only": st.booleans(), "symbol": st.text(max_size=5)},
    ),
)
_paths = st.sampled_from(
    [f"{SKEW}/config", f"{SKEW}/config/BTCUSDT", f"{SKEW}/rollback", f"{BASE}/nope/config"]
)


async def _post(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    async with make_client(app) as http:
        return await http.post(path, **kwargs)


def test_fuzzed_post_bodies_never_500() -> None:
    with wired(ApiTestContainer()), asyncio.Runner() as runner:
        app = create_app()

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=_paths, payload=_bodies)
        def post(path: str, payload: Any) -> None:
            response = runner.run(_post(app, path, json=payload, headers=AUTH))
            assert response.status_code in {200, 404, 409, 422}, response.text
            envelope = response.json()
            assert set(envelope) == {"success", "data", "error", "metadata"}
            assert envelope["success"] is (response.status_code == 200)

        post()


def test_fuzzed_raw_bytes_never_500() -> None:
    with wired(ApiTestContainer()), asyncio.Runner() as runner:
        app = create_app()
        headers = {**AUTH, "content-type": "application/json"}

        @settings(max_examples=200, deadline=None)
        @given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
        def post(raw: bytes) -> None:
            response = runner.run(_post(app, f"{SKEW}/config", content=raw, headers=headers))
            assert response.status_code == 422, response.text
            assert response.json()["success"] is False

        post()


# --- API promises (issue 15 item 4) -----------------------------------------------------------


async def test_names_and_descriptions_come_from_the_strategy_registry(
    client: httpx.AsyncClient,
) -> None:
    listed = {s["strategy_id"]: s for s in (await client.get(BASE)).json()["data"]}
    for strategy_id, descriptor in STRATEGIES.items():
        assert listed[strategy_id]["name"] == descriptor.name
        assert listed[strategy_id]["description"] == descriptor.description
    assert listed["btc_dominance"]["name"] != "Btc Dominance"  # not derived from the id
    assert not any("Parameters of" in s["description"] for s in listed.values())


async def test_integer_parameters_show_integer_bounds(client: httpx.AsyncClient) -> None:
    for strategy_id in STRATEGY_PARAMS:
        specs = (await client.get(f"{BASE}/{strategy_id}/schema")).json()["data"]
        for spec in specs:
            if spec["type"] == "int":
                for bound in ("min", "max", "default"):
                    assert spec[bound] is None or type(spec[bound]) is int, (strategy_id, spec)
    raw = (await client.get(f"{SKEW}/schema")).text
    assert '"name":"top_levels","type":"int"' in raw.replace(" ", "")


async def test_an_integral_float_is_accepted_for_an_int_parameter_and_stored_as_int(
    client: httpx.AsyncClient,
) -> None:
    """Like the reference (pydantic's lax mode): 3.0 is the integer 3; 3.5 is refused."""
    response = await client.post(f"{SKEW}/config", json=body({"top_levels": 7.0}), headers=AUTH)
    assert response.status_code == 200, response.text
    stored = response.json()["data"]["parameters"]["top_levels"]
    assert stored == 7
    assert type(stored) is int
    assert '"top_levels":7,' in (await client.get(f"{SKEW}/config")).text.replace(" ", "")
    response = await client.post(f"{SKEW}/config", json=body({"top_levels": 7.5}), headers=AUTH)
    assert response.status_code == 422
    assert detail_codes(response) == {"top_levels": "wrong_type"}


@pytest.mark.parametrize("layer", ["/config", "/config/BTCUSDT"])
async def test_delete_without_changed_by_is_422(client: httpx.AsyncClient, layer: str) -> None:
    await client.post(f"{SKEW}{layer}", json=body({"top_levels": 7}), headers=AUTH)
    response = await client.delete(f"{SKEW}{layer}", headers=AUTH)
    assert response.status_code == 422
    assert (await client.get(f"{SKEW}{layer}")).json()["data"]["exists"] is True
    response = await client.delete(f"{SKEW}{layer}?changed_by=ops", headers=AUTH)
    assert response.status_code == 200
    [record, *_] = (await client.get(f"{SKEW}/audit")).json()["data"]
    assert (record["action"], record["changed_by"]) == ("DELETE", "ops")


async def test_audit_records_carry_an_id_and_page_with_a_cursor(
    client: httpx.AsyncClient,
) -> None:
    for window in range(5, 12):
        await client.post(f"{SKEW}/config", json=body({"top_levels": window}), headers=AUTH)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = f"limit=3&cursor={cursor}" if cursor else "limit=3"
        response = await client.get(f"{SKEW}/audit?{query}")
        assert response.status_code == 200, response.text
        payload = response.json()
        seen += [record["id"] for record in payload["data"]]
        pages += 1
        cursor = payload["metadata"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"orderbook_skew:{v}" for v in range(7, 0, -1)]


async def test_audit_of_every_strategy_with_a_time_range(client: httpx.AsyncClient) -> None:
    await client.post(f"{SKEW}/config", json=body({"top_levels": 6}), headers=AUTH)
    await client.post(
        f"{BASE}/trade_momentum/config", json=body({"momentum_window": 20}), headers=AUTH
    )
    await client.post(f"{SKEW}/config/BTCUSDT", json=body({"top_levels": 7}), headers=AUTH)
    everything = (await client.get("/api/v1/audit")).json()["data"]
    assert [r["id"] for r in everything] == [
        "orderbook_skew:2",
        "trade_momentum:1",
        "orderbook_skew:1",
    ]
    middle = everything[1]["changed_at"]
    newer = (await client.get("/api/v1/audit", params={"since": middle})).json()["data"]
    assert [r["id"] for r in newer] == ["orderbook_skew:2", "trade_momentum:1"]
    older = (await client.get("/api/v1/audit", params={"until": middle})).json()["data"]
    assert [r["id"] for r in older] == ["orderbook_skew:1"]
    only = await client.get("/api/v1/audit", params={"strategy_id": "trade_momentum"})
    assert [r["id"] for r in only.json()["data"]] == ["trade_momentum:1"]
    unknown = await client.get("/api/v1/audit", params={"strategy_id": "nope"})
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "cursor=not-a-cursor",
        "since=yesterday",
        "since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z",
    ],
)
async def test_audit_bad_paging_is_422(client: httpx.AsyncClient, query: str) -> None:
    for path in (f"{SKEW}/audit", "/api/v1/audit"):
        response = await client.get(f"{path}?{query}")
        assert response.status_code == 422, (path, response.text)
