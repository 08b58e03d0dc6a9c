"""``/api/v1/strategies``: discovery, configuration (global and per symbol), audit, rollback.

Use cases come from the dependency-injector container by name (``config_admin``,
``config_cache``, ``api_security``); this module is wired by the composition root. Mutating
endpoints require the admin bearer token (see :mod:`adapters.http.security`).
"""

# No ``from __future__ import annotations`` in router modules: dependency-injector finds the
# ``Provide`` markers in ``Annotated`` parameters only when annotations are real objects.

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Path, Query, Request

from adapters.http.envelope import success
from adapters.http.routers import AwaitedProvide
from adapters.http.schemas import (
    AuditOut,
    ConfigOut,
    ConfigUpdateRequest,
    ConfigWriteEnvelope,
    Envelope,
    ErrorEnvelope,
    ParamSpecOut,
    RefreshOut,
    RollbackRequest,
    StrategyOut,
)
from adapters.http.security import CONSOLE_REQUEST_HEADER, CONSOLE_SESSION_COOKIE, ApiSecurity
from application.config_admin import ConfigAdmin, ConfigView, ConfigWriteResult
from application.config_cache import EffectiveConfigCache
from domain.config import AuditAction, AuditRecord
from domain.params import ParamValue
from domain.symbol import INPUT_PATTERN, MAX_SYMBOL_LENGTH

router = APIRouter(prefix="/api/v1/strategies", tags=["strategies"])
audit_router = APIRouter(prefix="/api/v1/audit", tags=["strategies"])

STRATEGY_ID_PATTERN = r"^[a-z0-9_]{1,64}$"
SYMBOL_PATTERN = INPUT_PATTERN

StrategyId = Annotated[
    str,
    Path(
        description="Strategy id, e.g. ``orderbook_skew`` (see ``GET /api/v1/strategies``).",
        pattern=STRATEGY_ID_PATTERN,
        examples=["orderbook_skew"],
    ),
]
Symbol = Annotated[
    str,
    Path(
        description=f"Trading symbol, ASCII letters and digits, up to {MAX_SYMBOL_LENGTH} "
        "characters; case-insensitive.",
        pattern=SYMBOL_PATTERN,
        max_length=MAX_SYMBOL_LENGTH,
        examples=["BTCUSDT"],
    ),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "Unknown strategy, or no such configuration."},
    422: {"model": ErrorEnvelope, "description": "Invalid request or parameters (per field)."},
    503: {"model": ErrorEnvelope, "description": "Configuration store unavailable."},
}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "Missing or malformed bearer token."},
    403: {"model": ErrorEnvelope, "description": "Wrong token, or mutations locked."},
    409: {"model": ErrorEnvelope, "description": "Concurrent write; read again and retry."},
    413: {"model": ErrorEnvelope, "description": "Request body too large."},
    429: {
        "model": ErrorEnvelope,
        "description": "Too many configuration writes at once; retry after ``Retry-After``.",
    },
}


@inject
async def require_admin(
    request: Request,
    security: Annotated[ApiSecurity, Depends(AwaitedProvide["api_security"])],
) -> None:
    """Dependency of every mutating endpoint: 401/403 unless the caller may mutate."""
    client = request.client
    from_console = request.headers.get(CONSOLE_REQUEST_HEADER) == "console"
    security.authorize(
        request.headers.get("authorization"),
        client.host if client is not None else None,
        request.headers.get("host"),
        session=request.cookies.get(CONSOLE_SESSION_COOKIE) if from_console else None,
    )


Admin = Depends(require_admin)
_CONFIG_WRITE: dict[str, Any] = {
    "response_model": ConfigWriteEnvelope,
    "responses": {**_ERRORS, **_AUTH_ERRORS},
    "dependencies": [Admin],
}
"""The route options of every configuration write: its envelope, errors and the admin check."""

ChangedBy = Annotated[
    str, Query(min_length=1, max_length=100, description="Who deletes it (required).")
]
Reason = Annotated[str, Query(max_length=500)]
StrategyQuery = Annotated[
    str | None, Query(pattern=STRATEGY_ID_PATTERN, description="Only this strategy.")
]
AuditSymbol = Annotated[
    str | None,
    Query(pattern=SYMBOL_PATTERN, max_length=MAX_SYMBOL_LENGTH, description="Only this symbol."),
]
Since = Annotated[
    datetime | None,
    Query(description="Only changes at or after this time (ISO 8601; UTC if no zone)."),
]
Until = Annotated[
    datetime | None,
    Query(description="Only changes before this time (ISO 8601; UTC if no zone)."),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        description="``metadata.next_cursor`` of the previous page: continue after it.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Most records returned.")]
Service = Annotated[ConfigAdmin, Depends(AwaitedProvide["config_admin"])]
Cache = Annotated[EffectiveConfigCache, Depends(AwaitedProvide["config_cache"])]


# --- serialisation ----------------------------------------------------------------------------


def config_out(view: ConfigView) -> dict[str, Any]:
    return {
        "strategy_id": view.strategy_id,
        "symbol": view.symbol,
        "parameters": dict(view.parameters),
        "effective": dict(view.effective),
        "version": view.version,
        "source": view.source,
        "is_override": view.is_override,
        "exists": view.exists,
        "layer_version": view.layer_version,
        "updated_at": view.updated_at,
        "updated_by": view.updated_by,
    }


_ACTION_NAMES = {
    AuditAction.CREATE: "created",
    AuditAction.UPDATE: "updated",
    AuditAction.DELETE: "deleted",
    AuditAction.ROLLBACK: "rolled_back",
}


def write_out(result: ConfigWriteResult) -> dict[str, Any]:
    previous: Mapping[str, ParamValue] | None = result.previous
    return success(
        config_out(result.config),
        {
            "action": _ACTION_NAMES[result.action] if result.applied else "validated",
            "changes_applied": result.applied,
            "previous_parameters": None if previous is None else dict(previous),
        },
    )


def audit_out(record: AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "action": record.action.value,
        "version": record.version,
        "old_parameters": None if record.old_parameters is None else dict(record.old_parameters),
        "new_parameters": None if record.new_parameters is None else dict(record.new_parameters),
        "changed_by": record.changed_by,
        "changed_at": record.changed_at,
        "reason": record.reason,
    }


def _symbol(symbol: str) -> str:
    return symbol.strip().upper()


# --- discovery --------------------------------------------------------------------------------


@router.get(
    "",
    summary="List strategies",
    description="Every strategy with its configuration status (global config, overrides).",
    response_model=Envelope[list[StrategyOut]],
    responses={503: _ERRORS[503]},
)
@inject
async def list_strategies(
    service: Service,
) -> dict[str, Any]:
    summaries = await service.list_strategies()
    data = [
        {
            "strategy_id": s.strategy_id,
            "name": s.name,
            "description": s.description,
            "has_global_config": s.has_global_config,
            "symbol_overrides": list(s.symbol_overrides),
            "parameter_count": s.parameter_count,
            "enabled": s.enabled,
            "version": s.version,
        }
        for s in summaries
    ]
    return success(data, {"count": len(data)})


@router.get(
    "/{strategy_id}/schema",
    summary="Parameter schema",
    description="Name, type, bounds, default and description of every parameter.",
    response_model=Envelope[list[ParamSpecOut]],
    responses={404: _ERRORS[404]},
)
@inject
async def get_schema(
    service: Service,
    strategy_id: StrategyId,
) -> dict[str, Any]:
    specs = await service.schema(strategy_id)
    data = [{**spec.as_dict(), "example": spec.default} for spec in specs]
    return success(data, {"strategy_id": strategy_id, "count": len(data)})


@router.get(
    "/{strategy_id}/defaults",
    summary="Default parameters",
    description="The code defaults (environment overrides are not included).",
    response_model=Envelope[dict[str, bool | int | float]],
    responses={404: _ERRORS[404]},
)
@inject
async def get_defaults(
    service: Service,
    strategy_id: StrategyId,
) -> dict[str, Any]:
    return success(await service.defaults(strategy_id), {"strategy_id": strategy_id})


# --- global config ----------------------------------------------------------------------------


@router.get(
    "/{strategy_id}/config",
    summary="Get global config",
    description="The stored global layer (``exists`` false when none) and the effective "
    "configuration every symbol without an override runs with.",
    response_model=Envelope[ConfigOut],
    responses={404: _ERRORS[404], 503: _ERRORS[503]},
)
@inject
async def get_global_config(
    service: Service,
    strategy_id: StrategyId,
) -> dict[str, Any]:
    return success(config_out(await service.get_config(strategy_id, None)))


@router.post(
    "/{strategy_id}/config",
    summary="Update global config",
    description="Merge ``parameters`` into the global layer (``null`` removes one). "
    "Validated on the merged result, saved with a new version, audited and broadcast to "
    "every replica. ``validate_only`` is a dry run.",
    **_CONFIG_WRITE,
)
@inject
async def set_global_config(
    service: Service,
    strategy_id: StrategyId,
    body: ConfigUpdateRequest,
) -> dict[str, Any]:
    return await _set_config(service, strategy_id, None, body)


@router.delete(
    "/{strategy_id}/config",
    summary="Delete global config",
    description="Remove the global layer: the strategy falls back to environment and defaults.",
    **_CONFIG_WRITE,
)
@inject
async def delete_global_config(
    service: Service,
    strategy_id: StrategyId,
    changed_by: ChangedBy,
    reason: Reason = "",
) -> dict[str, Any]:
    return write_out(await service.delete_config(strategy_id, None, changed_by, reason))


# --- symbol overrides -------------------------------------------------------------------------


@router.get(
    "/{strategy_id}/config/{symbol}",
    summary="Get symbol config",
    description="The stored override of the symbol (``exists`` false when none) and the "
    "effective configuration the strategy runs with on that symbol.",
    response_model=Envelope[ConfigOut],
    responses=_ERRORS,
)
@inject
async def get_symbol_config(
    service: Service,
    strategy_id: StrategyId,
    symbol: Symbol,
) -> dict[str, Any]:
    return success(config_out(await service.get_config(strategy_id, _symbol(symbol))))


@router.post(
    "/{strategy_id}/config/{symbol}",
    summary="Update symbol config",
    description="Merge ``parameters`` into the symbol's override; parameters it does not set "
    "are inherited from the global config. Validated on the merged result.",
    **_CONFIG_WRITE,
)
@inject
async def set_symbol_config(
    service: Service,
    strategy_id: StrategyId,
    symbol: Symbol,
    body: ConfigUpdateRequest,
) -> dict[str, Any]:
    return await _set_config(service, strategy_id, _symbol(symbol), body)


async def _set_config(
    service: ConfigAdmin, strategy_id: str, symbol: str | None, body: ConfigUpdateRequest
) -> dict[str, Any]:
    result = await service.set_config(
        strategy_id, symbol, body.parameters, body.changed_by, body.reason, body.validate_only
    )
    return write_out(result)


@router.delete(
    "/{strategy_id}/config/{symbol}",
    summary="Delete symbol config",
    description="Remove the symbol's override: the symbol inherits the global config again.",
    **_CONFIG_WRITE,
)
@inject
async def delete_symbol_config(
    service: Service,
    strategy_id: StrategyId,
    symbol: Symbol,
    changed_by: ChangedBy,
    reason: Reason = "",
) -> dict[str, Any]:
    result = await service.delete_config(strategy_id, _symbol(symbol), changed_by, reason)
    return write_out(result)


# --- audit, rollback, cache -------------------------------------------------------------------


@router.get(
    "/{strategy_id}/audit",
    summary="Audit trail",
    description="Configuration changes of the strategy, newest first (``symbol``: one layer's; "
    "without it, every layer's).",
    response_model=Envelope[list[AuditOut]],
    responses=_ERRORS,
)
@inject
async def get_audit(
    service: Service,
    strategy_id: StrategyId,
    symbol: AuditSymbol = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    return await _audit_page(service, strategy_id, symbol, since, until, cursor, limit)


async def _audit_page(
    service: ConfigAdmin,
    strategy_id: str | None,
    symbol: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    wanted = None if symbol is None else _symbol(symbol)
    page = await service.audit_page(
        strategy_id, wanted, since=since, until=until, cursor=cursor, limit=limit
    )
    data = [audit_out(record) for record in page.records]
    return success(
        data,
        {
            "strategy_id": strategy_id,
            "symbol": wanted,
            "count": len(data),
            "next_cursor": page.next_cursor,
        },
    )


@audit_router.get(
    "",
    summary="Audit trail of every strategy",
    description="Configuration changes of every strategy (or ``strategy_id``'s), newest "
    "first, with the same filters and cursor paging as the per-strategy trail.",
    response_model=Envelope[list[AuditOut]],
    responses=_ERRORS,
)
@inject
async def get_audit_of_every_strategy(
    service: Service,
    strategy_id: StrategyQuery = None,
    symbol: AuditSymbol = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    return await _audit_page(service, strategy_id, symbol, since, until, cursor, limit)


@router.post(
    "/{strategy_id}/rollback",
    summary="Roll back a configuration layer",
    description="Restore the global layer (or ``symbol``'s override) as it was right after "
    "``to_version``'s change; ``to_version`` null undoes the latest change. Validated and "
    "audited as ROLLBACK with a new version.",
    **_CONFIG_WRITE,
)
@inject
async def rollback(
    service: Service,
    strategy_id: StrategyId,
    body: RollbackRequest,
) -> dict[str, Any]:
    symbol = None if body.symbol is None else _symbol(body.symbol)
    result = await service.rollback(
        strategy_id, symbol, body.to_version, body.changed_by, body.reason
    )
    return write_out(result)


@router.post(
    "/cache/refresh",
    summary="Refresh the configuration cache",
    description="Reload every configuration layer from the store now (changes made through "
    "this API already apply at once on every replica; this is for direct store edits).",
    response_model=Envelope[RefreshOut],
    responses={**{k: v for k, v in _AUTH_ERRORS.items() if k in (401, 403)}, 503: _ERRORS[503]},
    dependencies=[Admin],
)
@inject
async def refresh_cache(
    cache: Cache,
) -> dict[str, Any]:
    await cache.refresh()
    return success({"refreshed": True, "refreshed_at": cache.last_refresh_at})
