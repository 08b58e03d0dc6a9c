"""Published signals and their live outcomes: ``/api/v1/signals/recent`` and
``/api/v1/strategies/{id}/performance`` (reads, open like every other read), answered from
the outcome store, so every replica answers for every replica's signals; and the what-if
preview of a config change, ``POST .../config/preview`` and ``.../config/{symbol}/preview``
(authenticated like a mutation: it writes nothing, but it is costly).

This router is included *before* the strategies router: ``POST .../config/preview`` would
otherwise be taken for a write of the symbol ``PREVIEW``.
Use cases come from the container by name (``outcome_query``, ``config_preview``).
"""

# No ``from __future__ import annotations`` in router modules (see strategies.py).

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Query
from fastapi.types import DecoratedCallable

from adapters.http.envelope import ApiError, success
from adapters.http.routers import AwaitedProvide
from adapters.http.routers.strategies import (
    _AUTH_ERRORS,
    _ERRORS,
    Admin,
    StrategyId,
    StrategyQuery,
    Symbol,
)
from adapters.http.routers.strategies import (
    AuditSymbol as SymbolQuery,
)
from adapters.http.schemas import ConfigUpdateRequest, Envelope, ErrorEnvelope
from adapters.wire.outcomes import outcome_document, signal_fields
from application.outcomes import OutcomeQuery
from application.preview import ConfigPreview, PreviewBusyError, PreviewTimeoutError
from domain.live_outcomes import HORIZONS, OutcomeRecord

router = APIRouter(prefix="/api/v1", tags=["signals"])

Outcomes = Annotated[OutcomeQuery, Depends(AwaitedProvide["outcome_query"])]
_HORIZONS_DOC = ", ".join(label for label, _ in HORIZONS)


def _symbol(symbol: str | None) -> str | None:
    return None if symbol is None else symbol.strip().upper()


def recent_out(record: OutcomeRecord) -> dict[str, Any]:
    """A published signal with its outcome so far, as the API (and the MCP tool) shows it."""
    return {
        **signal_fields(record),
        "payload": dict(record.payload),
        "outcome": outcome_document(record),
    }


@router.get(
    "/signals/recent",
    summary="Recent published signals with their outcome",
    description="The last ``limit`` signals this deployment published (newest first, by "
    "event time), each with its full trade-engine payload, ``signal_id``, config version and "
    f"outcome so far: price, gross and net bps at {_HORIZONS_DOC}, and the simulated trade "
    "once closed (backtest trade model, ADR 11).",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
)
@inject
async def recent_signals(
    outcomes: Outcomes,
    strategy_id: StrategyQuery = None,
    symbol: SymbolQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most signals returned.")] = 50,
) -> dict[str, Any]:
    wanted = _symbol(symbol)
    data = [recent_out(r) for r in await outcomes.recent(strategy_id, wanted, limit)]
    return success(
        data, {"strategy_id": strategy_id, "symbol": wanted, "limit": limit, "count": len(data)}
    )


@router.get(
    "/strategies/{strategy_id}/performance",
    summary="Live performance of a strategy",
    description="Published signals of the strategy and how they did: count, hit rate (moved "
    f"the signal's way), mean and total net bps at {_HORIZONS_DOC}, closed-trade P&L after "
    "costs, and the same per config version (``by_config_version``) so a change can be read "
    "before/after. ``since``: only signals at or after this time (event time, ISO-8601).",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
)
@inject
async def performance(
    outcomes: Outcomes,
    strategy_id: StrategyId,
    symbol: SymbolQuery = None,
    since: Annotated[
        datetime | None, Query(description="ISO-8601 time (with offset or Z).")
    ] = None,
    config_version: Annotated[
        int | None, Query(ge=0, description="Only signals of this config version.")
    ] = None,
) -> dict[str, Any]:
    wanted = _symbol(symbol)
    since_ms = None if since is None else epoch_ms(since)
    body = await outcomes.performance(strategy_id, wanted, since_ms, config_version)
    return success(
        body,
        {
            "strategy_id": strategy_id,
            "symbol": wanted,
            "since": None if since is None else since.isoformat(),
            "config_version": config_version,
        },
    )


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an API time (naive: UTC)."""
    if moment.tzinfo is None:  # naive: taken as UTC, like every time in this API
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- what-if preview of a config change ---------------------------------------------------------

Preview = Annotated[ConfigPreview, Depends(AwaitedProvide["config_preview"])]
_PREVIEW_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    **{k: v for k, v in _AUTH_ERRORS.items() if k in (401, 403, 413)},
    429: {"model": ErrorEnvelope, "description": "Another preview is running; retry."},
    503: {"model": ErrorEnvelope, "description": "Store unavailable, or the replay timed out."},
}
_PREVIEW_DOC = (
    "Same body as the config POST, validated exactly like a real change (422 on bad values). "
    "Replays the last ``PREVIEW_WINDOW_SECONDS`` of market data kept in memory through the "
    "current and the candidate configuration and returns both side by side: signals, counts "
    "by action, evaluations suppressed by reason, trade P&L after costs. Nothing is stored, "
    "audited, broadcast or published; ``validate_only`` is ignored (a preview never writes). "
    "Authenticated like a mutation (it is costly); one preview at a time per replica (429)."
)


async def _run_preview(
    preview: ConfigPreview, strategy_id: str, symbol: str | None, body: ConfigUpdateRequest
) -> dict[str, Any]:
    try:
        data = await preview.preview(
            strategy_id, symbol, body.parameters, body.changed_by, body.reason
        )
    except PreviewBusyError as error:
        raise ApiError(429, "preview_busy", str(error), headers={"Retry-After": "1"}) from None
    except PreviewTimeoutError as error:
        raise ApiError(503, "preview_timeout", str(error)) from None
    return success(data, {"stored": False, "published": False})


def _preview_route(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The route of a preview endpoint (the global layer's or a symbol's)."""
    return router.post(
        path,
        summary=summary,
        description=_PREVIEW_DOC,
        response_model=Envelope[dict[str, Any]],
        responses=_PREVIEW_ERRORS,
        dependencies=[Admin],
    )


@_preview_route("/strategies/{strategy_id}/config/preview", "Preview a global config change")
@inject
async def preview_global_config(
    preview: Preview, strategy_id: StrategyId, body: ConfigUpdateRequest
) -> dict[str, Any]:
    return await _run_preview(preview, strategy_id, None, body)


@_preview_route(
    "/strategies/{strategy_id}/config/{symbol}/preview", "Preview a symbol config change"
)
@inject
async def preview_symbol_config(
    preview: Preview, strategy_id: StrategyId, symbol: Symbol, body: ConfigUpdateRequest
) -> dict[str, Any]:
    return await _run_preview(preview, strategy_id, _symbol(symbol), body)
