"""MCP (Model Context Protocol) adapter: the admin tools for LLM agents.

:mod:`adapters.mcp.tools` builds the tool server over the use cases;
:mod:`adapters.mcp.http` serves it at ``/mcp`` on the API port (streamable HTTP);
:mod:`adapters.mcp.stdio_proxy` is ``realtime-strategies mcp``: the same tools over stdio,
forwarded to a running service's ``/mcp``.
"""
