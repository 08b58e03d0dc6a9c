"""The MCP tools at ``/mcp`` on the API's port (streamable HTTP, stateless, JSON answers).

Stateless: every request stands alone, so any replica behind a Service answers any request
(no session affinity). The SDK's session manager must run while the API serves:
:func:`mount_mcp` returns it, and the process runs ``manager.run()`` for its lifetime.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

MCP_PATH = "/mcp"


def mount_mcp(app: FastAPI, server: MCPServer, host: str) -> StreamableHTTPSessionManager:
    """Add ``/mcp`` to ``app`` (outside its OpenAPI schema); the session manager to run.

    ``host`` is the API's bind address: on loopback the SDK also refuses requests whose
    ``Host``/``Origin`` name another host (DNS rebinding).
    """
    mcp_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host
    )
    app.router.routes.extend(mcp_app.routes)
    return server.session_manager


async def run_session_manager(manager: StreamableHTTPSessionManager) -> None:
    """Run the session manager until cancelled (a background task of the process)."""
    async with manager.run():
        await asyncio.Event().wait()
