"""The MCP tools end to end: the SDK's own client against the running service.

One ``run-local`` service (with an admin token) serves the module. Over streamable HTTP at
``/mcp`` and over stdio (``realtime-strategies mcp`` forwarding to that ``/mcp``), the
tests change configuration through the tools and read the result back through the REST API
and its audit: one implementation, one audit trail.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, TextContent

from tests.integration.cli import cli_command
from tests.integration.conftest import free_port
from tests.integration.local_service import LocalService, inherited_environment, local_service

pytestmark = pytest.mark.integration

TOOLS = {
    "list_strategies",
    "get_schema",
    "get_config",
    "set_config",
    "delete_config",
    "rollback",
    "get_audit",
    "market_depth",
    "market_summary",
    "pause",
    "resume",
    "list_pauses",
    "recent_signals",
    "get_performance",
    "preview_config",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_service(tmp_path_factory.mktemp("mcp")) as running:
        yield running


@asynccontextmanager
async def http_client(
    service: LocalService, *, token: str | None, agent: str = "test-agent"
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30.0) as http,
        Client(
            streamable_http_client(f"{service.url}/mcp", http_client=http),
            client_info=Implementation(name=agent, version="1.0"),
            cache=None,
        ) as client,
    ):
        yield client


def stdio_client(url: str, *, token: str | None, agent: str) -> Client:
    argv = cli_command("mcp", "--url", url)
    env = inherited_environment()
    if token:
        env["ADMIN_API_TOKEN"] = token
    return Client(
        StdioServerParameters(command=argv[0], args=argv[1:], env=env),
        client_info=Implementation(name=agent, version="1.0"),
        cache=None,
        read_timeout_seconds=60.0,
    )


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    (content,) = result.content
    assert isinstance(content, TextContent)
    return dict(json.loads(content.text[content.text.index("{") :]))


def data_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def rest(service: LocalService, path: str) -> Any:
    response = httpx.get(f"{service.url}/api/v1{path}", timeout=10.0)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_the_tools_are_listed_with_typed_parameters(service: LocalService) -> None:
    async with http_client(service, token=None) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS
    schema = tools["set_config"].input_schema
    assert "orderbook_skew" in schema["properties"]["strategy_id"]["enum"]
    variants = {v["title"]: v for v in schema["properties"]["parameters"]["anyOf"]}
    top_levels = variants["orderbook_skew parameters"]["properties"]["top_levels"]
    assert top_levels["type"] == ["integer", "null"]
    assert (top_levels["minimum"], top_levels["maximum"]) == (1, 20)
    assert variants["trade_momentum parameters"]["properties"]["buy_threshold"]["maximum"] == 1.0
    assert tools["get_config"].annotations is not None
    assert tools["get_config"].annotations.read_only_hint is True


async def test_set_config_over_http_is_the_api_s_change_audited_as_the_agent(
    service: LocalService,
) -> None:
    async with http_client(service, token=service.token, agent="tuning-bot") as client:
        written = data_of(
            await client.call_tool(
                "set_config",
                {
                    "strategy_id": "orderbook_skew",
                    "symbol": "btcusdt",
                    "parameters": {"buy_threshold": 1.45, "top_levels": 8},
                    "reason": "deeper book",
                },
            )
        )
        config = data_of(
            await client.call_tool(
                "get_config", {"strategy_id": "orderbook_skew", "symbol": "BTCUSDT"}
            )
        )
    assert written["data"]["parameters"] == {"buy_threshold": 1.45, "top_levels": 8}
    assert config["parameters"] == {"buy_threshold": 1.45, "top_levels": 8}
    via_rest = rest(service, "/strategies/orderbook_skew/config/BTCUSDT")
    assert via_rest["parameters"] == {"buy_threshold": 1.45, "top_levels": 8}
    assert via_rest["updated_by"] == "mcp:tuning-bot"
    (latest, *_) = rest(service, "/strategies/orderbook_skew/audit?symbol=BTCUSDT")
    assert (latest["changed_by"], latest["reason"]) == ("mcp:tuning-bot", "deeper book")


async def test_invalid_parameters_get_the_api_s_field_errors_and_change_nothing(
    service: LocalService,
) -> None:
    before = rest(service, "/strategies/trade_momentum/config")
    async with http_client(service, token=service.token) as client:
        result = await client.call_tool(
            "set_config",
            {"strategy_id": "trade_momentum", "parameters": {"momentum_window": 0, "nope": 1}},
        )
    error = error_of(result)
    assert error["code"] == "validation_error"
    fields = {d["field"]: d["code"] for d in error["details"]}
    assert fields == {"momentum_window": "out_of_range", "nope": "unknown_parameter"}
    assert rest(service, "/strategies/trade_momentum/config") == before


async def test_mutating_tools_need_the_token_and_reads_do_not(service: LocalService) -> None:
    async with http_client(service, token="wrong-token") as client:
        wrong = await client.call_tool(
            "set_config", {"strategy_id": "ticker_velocity", "parameters": {"time_window": 90}}
        )
    async with http_client(service, token=None) as client:
        missing = await client.call_tool(
            "rollback", {"strategy_id": "ticker_velocity", "reason": "no token"}
        )
        read = await client.call_tool("get_schema", {"strategy_id": "ticker_velocity"})
    assert error_of(wrong)["code"] == "forbidden"
    assert error_of(missing)["code"] == "unauthorized"
    assert data_of(read)["parameters"][0]["name"] == "enabled"
    assert rest(service, "/strategies/ticker_velocity/config")["exists"] is False


async def test_pause_and_resume_are_the_api_s_switch_audited_as_the_agent(
    service: LocalService,
) -> None:
    target = {"strategy_id": "btc_dominance", "symbol": "solusdt"}
    async with http_client(service, token=service.token, agent="risk-bot") as client:
        paused = data_of(await client.call_tool("pause", {**target, "reason": "risk off"}))
        listed = data_of(await client.call_tool("list_pauses", {}))
        resumed = data_of(await client.call_tool("resume", {**target, "reason": "risk on"}))
        again = error_of(await client.call_tool("resume", target))
    assert paused["metadata"]["action"] == "paused"
    assert [(p["strategy_id"], p["symbol"]) for p in listed["pauses"]] == [
        ("btc_dominance", "SOLUSDT")
    ]
    assert resumed["data"]["active"] is False
    assert again["code"] == "pause_not_found"
    assert rest(service, "/signals/pause") == []
    trail = [
        (r["action"], r["changed_by"], r["reason"])
        for r in rest(service, "/audit?strategy_id=btc_dominance")
    ]
    assert trail[:2] == [
        ("RESUME", "mcp:risk-bot", "risk on"),
        ("PAUSE", "mcp:risk-bot", "risk off"),
    ]


async def test_an_agent_previews_a_change_then_reads_live_performance(
    service: LocalService,
) -> None:
    before = rest(service, "/strategies/orderbook_skew/config")
    async with http_client(service, token=service.token, agent="tuner") as client:
        preview = data_of(
            await client.call_tool(
                "preview_config",
                {"strategy_id": "orderbook_skew", "parameters": {"buy_threshold": 1.5}},
            )
        )
        assert {"current", "candidate"} <= set(preview)
        performance = data_of(
            await client.call_tool("get_performance", {"strategy_id": "orderbook_skew"})
        )
        assert set(performance["horizons"]) == {"1m", "5m", "15m", "1h"}
        assert "by_config_version" in performance
        recent = data_of(await client.call_tool("recent_signals", {"limit": 5}))
        assert len(recent["signals"]) <= 5
        via_rest = rest(service, "/signals/recent?limit=5")
        assert [s["signal_id"] for s in recent["signals"]] == [s["signal_id"] for s in via_rest]
    assert rest(service, "/strategies/orderbook_skew/config") == before  # a preview never writes
    async with http_client(service, token=None) as client:
        refused = await client.call_tool(
            "preview_config", {"strategy_id": "orderbook_skew", "parameters": {"top_levels": 3}}
        )
        assert error_of(refused)["code"] in ("unauthorized", "forbidden")


async def test_rollback_and_delete_are_audited(service: LocalService) -> None:
    async with http_client(service, token=service.token, agent="ops-bot") as client:
        for value in (1.5, 1.7):
            data_of(
                await client.call_tool(
                    "set_config",
                    {"strategy_id": "orderbook_skew", "parameters": {"buy_threshold": value}},
                )
            )
        audit = data_of(await client.call_tool("get_audit", {"strategy_id": "orderbook_skew"}))
        first = min(r["version"] for r in audit["records"] if r["symbol"] is None)
        rolled = data_of(
            await client.call_tool(
                "rollback", {"strategy_id": "orderbook_skew", "to_version": first}
            )
        )
        assert rolled["data"]["parameters"] == {"buy_threshold": 1.5}
        deleted = data_of(
            await client.call_tool("delete_config", {"strategy_id": "orderbook_skew"})
        )
        assert deleted["metadata"]["action"] == "deleted"
    actions = [
        (r["action"], r["changed_by"])
        for r in rest(service, "/strategies/orderbook_skew/audit")
        if r["symbol"] is None
    ]
    assert actions[:2] == [("DELETE", "mcp:ops-bot"), ("ROLLBACK", "mcp:ops-bot")]


async def test_market_tools_read_the_live_metrics(service: LocalService) -> None:
    async with http_client(service, token=None) as client:
        depth = data_of(await client.call_tool("market_depth", {"symbol": "btcusdt"}))
        summary = data_of(await client.call_tool("market_summary", {}))
        unknown = await client.call_tool("market_depth", {"symbol": "NOPEUSDT"})
    assert depth["symbol"] == "BTCUSDT"
    assert -100.0 <= depth["pressure"]["net_pressure"] <= 100.0
    assert summary["symbols"] >= 1
    assert error_of(unknown)["code"] == "unknown_symbol"


async def test_stdio_forwards_to_the_service_with_the_agent_s_identity(
    service: LocalService,
) -> None:
    client = stdio_client(f"{service.url}/mcp", token=service.token, agent="desktop-agent")
    async with client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        written = await client.call_tool(
            "set_config",
            {
                "strategy_id": "trade_momentum",
                "symbol": "ETHUSDT",
                "parameters": {"momentum_window": 20},
                "reason": "over stdio",
            },
        )
        invalid = await client.call_tool(
            "set_config",
            {"strategy_id": "trade_momentum", "parameters": {"momentum_window": 500}},
        )
    assert names >= TOOLS
    assert data_of(written)["data"]["parameters"] == {"momentum_window": 20}
    assert error_of(invalid)["code"] == "validation_error"
    config = rest(service, "/strategies/trade_momentum/config/ETHUSDT")
    assert config["updated_by"] == "mcp:desktop-agent"


async def test_stdio_without_a_token_is_refused_by_the_service(service: LocalService) -> None:
    async with stdio_client(f"{service.url}/mcp", token=None, agent="anon") as client:
        refused = await client.call_tool(
            "delete_config", {"strategy_id": "trade_momentum", "symbol": "ETHUSDT"}
        )
    assert error_of(refused)["code"] == "unauthorized"
    assert rest(service, "/strategies/trade_momentum/config/ETHUSDT")["exists"] is True


async def test_stdio_reports_a_service_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    async with stdio_client(url, token=None, agent="lonely") as client:
        result = await client.call_tool("get_schema", {"strategy_id": "orderbook_skew"})
    assert result.is_error
    (content,) = result.content
    assert isinstance(content, TextContent)
    assert "did not answer" in content.text
