"""MCP tools over the service's use cases (the official ``mcp`` SDK's ``MCPServer``).

:func:`build_mcp_server` registers one tool per admin operation. The tools call the very use
cases the REST API calls (the container's ``config_admin``, ``metrics_query``, ...), and
answer with the same JSON shapes as the API's ``data`` (the REST serialisers are reused), so
validation, versioning and audit are the API's: there is no second implementation.

* **Typed inputs.** ``set_config`` and ``preview_config`` take ``parameters`` typed from the
  strategies' parameter schemas: one object schema per strategy with every parameter's
  type, bounds, default and description (``null`` removes a parameter from the layer). The
  values are checked by the use case exactly as a REST write is (the schema documents; the
  domain validates), so an agent gets the same field-level errors.
* **Authorization.** Mutating tools need the admin token, sent as ``Authorization: Bearer``
  on the MCP HTTP request and checked by the API's own :class:`ApiSecurity` (with no token
  configured, the loopback rule applies as for REST).
* **Identity.** ``changed_by`` is ``mcp:<client name>`` from the MCP client's
  ``clientInfo`` (``mcp:unnamed-agent`` when the client sends none).
* **Errors** are tool errors (``is_error``) whose text is a JSON object ``{code, message,
  details}`` with the API's codes (``validation_error`` with per-field details, ...).
"""

# No ``from __future__ import annotations``: the SDK reads the tools' parameter types from
# their annotations, some of which are built per registry inside build_mcp_server.

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from adapters.http.envelope import ApiError, field_errors
from adapters.http.routers.outcomes import epoch_ms, recent_out
from adapters.http.routers.signals import pause_out, switch_out
from adapters.http.routers.strategies import audit_out, config_out, write_out
from adapters.http.security import ApiSecurity
from application.config_admin import ConfigAdmin
from application.errors import ConfigNotFoundError, PauseNotFoundError, UnknownStrategyError
from application.metrics_query import InvalidQueryError, MarketMetricsQuery, UnknownSymbolError
from application.outcomes import OutcomeQuery
from application.ports import StoreUnavailableError, VersionConflictError
from application.preview import ConfigPreview, PreviewBusyError, PreviewTimeoutError
from application.signal_pauses import SignalPauseAdmin
from domain.params import CommonParams, ParamSpec, ParamValidationError
from domain.symbol import INPUT_PATTERN

T = TypeVar("T")

INSTRUCTIONS = """\
Admin tools of realtime-strategies: crypto trading-signal strategies whose parameters can be
changed at run time. Read a strategy's schema (get_schema) and current configuration
(get_config) before changing it; set_config merges the given parameters into the global
layer or a symbol's override, validates, versions and audits the change; rollback restores
an earlier version; get_audit shows who changed what. pause and resume stop and restart
the publishing of signals (all, one strategy's, one symbol's); list_pauses shows the pauses
in force. Before changing a strategy, preview_config replays the recent market data
through the current and the candidate configuration and compares them (nothing is stored);
after a change, get_performance compares how each config version's published signals did
(per horizon and as trades after costs) and recent_signals lists them with their outcomes.
market_depth and market_summary read the live order-book metrics. Changes and previews need
the admin token on the connection.
"""

Symbol = Annotated[
    str | None,
    Field(
        description="Symbol override layer (e.g. BTCUSDT); omit for the global layer.",
        pattern=INPUT_PATTERN,
    ),
]
Reason = Annotated[str, Field(max_length=500, description="Why (kept in the audit).")]
Limit = Annotated[int, Field(ge=1, le=1000)]

_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean"}


def _parameter_schema(spec: ParamSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": [_JSON_TYPES[spec.type], "null"],
        "description": f"{spec.description} (default {spec.default!r}; null removes it "
        "from the layer)",
        "default": spec.default,
    }
    if spec.min is not None:
        schema["minimum"] = int(spec.min) if spec.type == "int" else spec.min
    if spec.max is not None:
        schema["maximum"] = int(spec.max) if spec.type == "int" else spec.max
    return schema


def parameters_models(registry: Mapping[str, type[CommonParams]]) -> list[type[BaseModel]]:
    """One model per strategy: its parameters, all optional, typed and bounded in the schema.

    The models describe ``parameters`` to the agent (their JSON schemas); the values are
    passed on unchanged and validated by the use case exactly as a REST write is.
    """
    models: list[type[BaseModel]] = []
    for strategy_id, params_type in registry.items():
        fields: dict[str, Any] = {
            spec.name: (Annotated[Any, WithJsonSchema(_parameter_schema(spec))], None)
            for spec in params_type.schema()
        }
        name = "".join(part.title() for part in strategy_id.split("_")) + "Parameters"
        models.append(
            create_model(
                name,
                __config__=ConfigDict(extra="forbid", title=f"{strategy_id} parameters"),
                **fields,
            )
        )
    return models


def agent_identity(ctx: Context) -> str:
    """``mcp:<clientInfo.name>`` of the calling MCP client."""
    params = ctx.session.client_params
    info = getattr(params, "client_info", None) if params is not None else None
    name = (getattr(info, "name", "") or "").strip()
    printable = "".join(ch for ch in name if ch.isprintable())[:80]
    return f"mcp:{printable or 'unnamed-agent'}"


def _tool_error(code: str, message: str, details: object = None) -> ToolError:
    return ToolError(json.dumps({"code": code, "message": message, "details": details}))


def as_tool_error(error: Exception) -> ToolError | None:
    """The tool error of a use case's error, with the API's code; None if not one of them."""
    if isinstance(error, ParamValidationError):
        return _tool_error("validation_error", "parameters are invalid", field_errors(error))
    codes: tuple[tuple[type[Exception], str], ...] = (
        (UnknownStrategyError, "unknown_strategy"),
        (ConfigNotFoundError, "config_not_found"),
        (PauseNotFoundError, "pause_not_found"),
        (PreviewBusyError, "preview_busy"),
        (PreviewTimeoutError, "preview_timeout"),
        (UnknownSymbolError, "unknown_symbol"),
        (InvalidQueryError, "invalid_query"),
    )
    for kind, code in codes:
        if isinstance(error, kind):
            return _tool_error(code, str(error))
    if isinstance(error, VersionConflictError):
        return _tool_error("conflict", "concurrent write; read again and retry")
    if isinstance(error, StoreUnavailableError):
        return _tool_error("store_unavailable", "configuration store unavailable")
    if isinstance(error, ApiError):
        return _tool_error(error.code, error.message)
    return None


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Use case errors raised inside become tool errors with the API's codes."""
    try:
        yield
    except Exception as error:
        mapped = as_tool_error(error)
        if mapped is None:
            raise
        raise mapped from error


async def answer(call: Awaitable[T]) -> T:
    """Await a use case; its errors become tool errors with the API's codes."""
    with _tool_errors():
        return await call


def answer_now(call: Callable[[], T]) -> T:
    """:func:`answer` for a synchronous use case."""
    with _tool_errors():
        return call()


def authorize(security: ApiSecurity, ctx: Context) -> None:
    """Raise a tool error unless the MCP request may mutate (see the module doc)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    client = getattr(request, "client", None)
    try:
        security.authorize(
            headers.get("authorization") if headers is not None else None,
            getattr(client, "host", None),
            headers.get("host") if headers is not None else None,
        )
    except ApiError as error:
        raise _tool_error(error.code, error.message) from error


def _symbol(symbol: str | None) -> str | None:
    return None if symbol is None or not symbol.strip() else symbol.strip().upper()


def build_mcp_server(
    config_service: ConfigAdmin,
    metrics_query: MarketMetricsQuery,
    security: ApiSecurity,
    registry: Mapping[str, type[CommonParams]],
    extra_tools: Callable[[MCPServer], None] | None = None,
    pauses: SignalPauseAdmin | None = None,
    outcomes: OutcomeQuery | None = None,
    preview: ConfigPreview | None = None,
) -> MCPServer:
    """The MCP server of the admin tools (see the module doc)."""
    server: MCPServer = MCPServer(
        name="realtime-strategies",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        warn_on_duplicate_tools=False,
    )
    strategy_ids = tuple(registry)
    StrategyId = Literal[strategy_ids]  # type: ignore[valid-type]  # noqa: N806
    models = parameters_models(registry)
    Parameters = Annotated[  # noqa: N806
        dict[str, Any],
        WithJsonSchema(
            {
                "anyOf": [m.model_json_schema() for m in models],
                "description": "Parameters to change, typed by the strategy's schema "
                "(get_schema); only the given ones change, null removes one.",
            }
        ),
    ]
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    async def as_agent(ctx: Context, call: Callable[[str], Awaitable[T]]) -> T:
        """Authorize the request, then run ``call(changed_by)`` as the calling agent."""
        authorize(security, ctx)
        return await answer(call(agent_identity(ctx)))

    mutating = ToolAnnotations(destructive_hint=False, idempotent_hint=False)

    @server.tool(annotations=read_only)
    async def list_strategies() -> dict[str, Any]:
        """Every strategy: id, name, description, enabled, config version, overrides."""
        summaries = await answer(config_service.list_strategies())
        return {
            "strategies": [
                {
                    "strategy_id": s.strategy_id,
                    "name": s.name,
                    "description": s.description,
                    "enabled": s.enabled,
                    "version": s.version,
                    "has_global_config": s.has_global_config,
                    "symbol_overrides": list(s.symbol_overrides),
                    "parameter_count": s.parameter_count,
                }
                for s in summaries
            ]
        }

    @server.tool(annotations=read_only)
    async def get_schema(strategy_id: StrategyId) -> dict[str, Any]:
        """Name, type, default, min, max and description of every parameter of a strategy."""
        specs = await answer(config_service.schema(strategy_id))
        return {"strategy_id": strategy_id, "parameters": [spec.as_dict() for spec in specs]}

    @server.tool(annotations=read_only)
    async def get_config(strategy_id: StrategyId, symbol: Symbol = None) -> dict[str, Any]:
        """The stored layer (global, or a symbol's override) and the effective parameters."""
        return config_out(await answer(config_service.get_config(strategy_id, _symbol(symbol))))

    @server.tool(annotations=mutating)
    async def set_config(
        strategy_id: StrategyId,
        parameters: Parameters,
        ctx: Context,
        symbol: Symbol = None,
        reason: Reason = "",
    ) -> dict[str, Any]:
        """Change parameters of the global layer or a symbol's override: merged, validated
        on the result, versioned, audited (changed_by = this agent) and applied live."""
        result = await as_agent(
            ctx,
            lambda agent: config_service.set_config(
                strategy_id, _symbol(symbol), parameters, agent, reason
            ),
        )
        return write_out(result)

    @server.tool(annotations=mutating)
    async def delete_config(
        strategy_id: StrategyId, ctx: Context, symbol: Symbol = None, reason: Reason = ""
    ) -> dict[str, Any]:
        """Remove a layer: the strategy (or symbol) falls back to the layers below it."""
        result = await as_agent(
            ctx,
            lambda agent: config_service.delete_config(strategy_id, _symbol(symbol), agent, reason),
        )
        return write_out(result)

    @server.tool(annotations=mutating)
    async def rollback(
        strategy_id: StrategyId,
        ctx: Context,
        symbol: Symbol = None,
        to_version: Annotated[
            int | None,
            Field(
                ge=1,
                description="Restore the layer as right after this version's change; "
                "omit to undo the latest change.",
            ),
        ] = None,
        reason: Reason = "",
    ) -> dict[str, Any]:
        """Restore a layer as it was at an earlier version (audited as ROLLBACK)."""
        result = await as_agent(
            ctx,
            lambda agent: config_service.rollback(
                strategy_id, _symbol(symbol), to_version, agent, reason
            ),
        )
        return write_out(result)

    @server.tool(annotations=read_only)
    async def get_audit(
        strategy_id: StrategyId,
        symbol: Symbol = None,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        """Configuration changes of a strategy, newest first: who, when, why, before/after."""
        records = await answer(config_service.audit(strategy_id, _symbol(symbol), limit))
        return {"strategy_id": strategy_id, "records": [audit_out(r) for r in records]}

    @server.tool(annotations=read_only)
    async def market_depth(
        symbol: Annotated[str, Field(pattern=INPUT_PATTERN, description="e.g. BTCUSDT")],
    ) -> dict[str, Any]:
        """Order-book metrics of a symbol now: pressure, imbalance, liquidity, spread, levels."""
        return answer_now(lambda: metrics_query.depth(symbol.upper()))

    @server.tool(annotations=read_only)
    async def market_summary() -> dict[str, Any]:
        """Market sentiment over every tracked symbol: counts, average net pressure, extremes."""
        return answer_now(metrics_query.summary)

    if pauses is not None:
        PausedId = Literal[tuple(pauses.strategy_ids)]  # type: ignore[valid-type]  # noqa: N806
        PauseStrategy = Annotated[  # noqa: N806
            PausedId | None,  # type: ignore[valid-type]
            Field(description="Only this strategy's signals; omit for every strategy."),
        ]
        PauseSymbol = Annotated[  # noqa: N806
            str | None,
            Field(
                description="Only this symbol's signals (e.g. BTCUSDT); omit for every symbol.",
                max_length=32,
            ),
        ]

        @server.tool(annotations=mutating)
        async def pause(
            ctx: Context,
            strategy_id: PauseStrategy = None,
            symbol: PauseSymbol = None,
            reason: Reason = "",
        ) -> dict[str, Any]:
            """Stop publishing signals (all, one strategy's, one symbol's or both): the
            strategies keep evaluating, held signals are counted as paused. Audited and
            applied on every replica until resumed."""
            result = await as_agent(
                ctx, lambda agent: pauses.pause(strategy_id, symbol, agent, reason)
            )
            return switch_out(result)

        @server.tool(annotations=mutating)
        async def resume(
            ctx: Context,
            strategy_id: PauseStrategy = None,
            symbol: PauseSymbol = None,
            reason: Reason = "",
        ) -> dict[str, Any]:
            """Lift the pause of exactly this target (omit both for the global pause)."""
            result = await as_agent(
                ctx, lambda agent: pauses.resume(strategy_id, symbol, agent, reason)
            )
            return switch_out(result)

        @server.tool(annotations=read_only)
        async def list_pauses() -> dict[str, Any]:
            """The signal pauses in force: target, since when, by whom, why."""
            records = await answer(pauses.list_pauses())
            return {"pauses": [pause_out(record) for record in records]}

    if outcomes is not None:

        @server.tool(annotations=read_only)
        async def recent_signals(
            strategy_id: StrategyId | None = None,
            symbol: Symbol = None,
            limit: Limit = 50,
        ) -> dict[str, Any]:
            """The last published signals, newest first, each with its full payload, config
            version and outcome so far (net bps at 1m/5m/15m/1h, the simulated trade)."""
            records = await answer(outcomes.recent(strategy_id, _symbol(symbol), limit))
            return {"signals": [recent_out(record) for record in records]}

        @server.tool(annotations=read_only)
        async def get_performance(
            strategy_id: StrategyId,
            symbol: Symbol = None,
            since: Annotated[
                datetime | None,
                Field(description="Only signals at or after this ISO-8601 time (event time)."),
            ] = None,
            config_version: Annotated[int | None, Field(ge=0)] = None,
        ) -> dict[str, Any]:
            """How a strategy's published signals did: count, hit rate, mean and total net
            bps per horizon, closed-trade P&L after costs, and the same per config version —
            compare versions to judge a change."""
            since_ms = None if since is None else epoch_ms(since)
            return await answer(
                outcomes.performance(strategy_id, _symbol(symbol), since_ms, config_version)
            )

    if preview is not None:

        @server.tool(annotations=read_only)
        async def preview_config(
            strategy_id: StrategyId,
            parameters: Parameters,
            ctx: Context,
            symbol: Symbol = None,
            reason: Reason = "",
        ) -> dict[str, Any]:
            """What-if: replay the recent market window through the current and the candidate
            configuration (validated like a real change) and compare their signals,
            suppressions and P&L. Nothing is stored, audited or published. Needs the admin
            token (it is costly); one preview at a time."""
            return await as_agent(
                ctx,
                lambda agent: preview.preview(
                    strategy_id, _symbol(symbol), parameters, agent, reason
                ),
            )

    if extra_tools is not None:
        extra_tools(server)
    return server
