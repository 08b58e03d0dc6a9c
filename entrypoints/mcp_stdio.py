"""`realtime-strategies mcp`: a running service's MCP tools over stdio (see
:mod:`adapters.mcp.stdio_proxy`). Logs go to stderr: stdout carries the protocol."""

from __future__ import annotations

import os

import anyio

from adapters.mcp.stdio_proxy import StdioProxy
from entrypoints.service import configure_logging


def serve_stdio(url: str) -> int:
    """Serve until the MCP client closes stdin; the admin token comes from ADMIN_API_TOKEN."""
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    token = os.environ.get("ADMIN_API_TOKEN") or None
    anyio.run(StdioProxy(url, token).serve)
    return 0
