"""``realtime-strategies mcp``: the service's MCP tools over stdio, for desktop agents.

An MCP client (Claude Desktop, an IDE, the SDK's own client) starts this command and speaks
MCP on its stdin/stdout. Every ``tools/list`` and ``tools/call`` is forwarded to a running
service's ``/mcp`` (``--url``), with ``Authorization: Bearer $ADMIN_API_TOKEN`` when the
token is set and with the calling client's name as the forwarded ``clientInfo``, so the
audit records the agent (``changed_by = mcp:<client name>``). The tools, their validation
and their audit exist once, in the service: this process holds no state and no
configuration of its own.
"""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    Implementation,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)

DEFAULT_URL = "http://127.0.0.1:8080/mcp"
UPSTREAM_TIMEOUT_SECONDS = 30.0


class StdioProxy:
    """Forwards the tool requests of one stdio client to the service (see the module doc)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __repr__(self) -> str:
        return f"StdioProxy(url={self.url!r}, token={'set' if self._headers else 'unset'})"

    def _client(self, ctx: Any) -> Client:
        params = ctx.session.client_params
        info = getattr(params, "client_info", None) if params is not None else None
        name = getattr(info, "name", None) or "unnamed-agent"
        version = getattr(info, "version", None) or "0"
        http = httpx2.AsyncClient(headers=self._headers, timeout=UPSTREAM_TIMEOUT_SECONDS)
        return Client(
            streamable_http_client(self.url, http_client=http),
            client_info=Implementation(name=name, version=version),
            cache=None,
        )

    async def list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        async with self._client(ctx) as upstream:
            return await upstream.list_tools()

    async def call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        try:
            async with self._client(ctx) as upstream:
                result = await upstream.call_tool(params.name, dict(params.arguments or {}))
        except Exception as error:  # the service is down or refused the connection
            return CallToolResult(
                content=[
                    TextContent(
                        type="text",
                        text=f"realtime-strategies service at {self.url} did not answer: "
                        f"{type(error).__name__}",
                    )
                ],
                is_error=True,
            )
        if isinstance(result, CallToolResult):
            return result
        return CallToolResult(
            content=[TextContent(type="text", text="unexpected answer from the service")],
            is_error=True,
        )

    def server(self) -> Server[Any]:
        return Server(
            name="realtime-strategies",
            version="0.1.0",
            instructions="Admin tools of a running realtime-strategies service (forwarded).",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )

    async def serve(self) -> None:
        """Serve MCP on this process's stdin/stdout until the client closes them."""
        server = self.server()
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
