"""``/api/v1/signals/pause``: the pause switch (pause, resume, list the active pauses).

The use case comes from the dependency-injector container by name (``pause_admin``); this
module is wired by the composition root. Pausing and resuming are mutations: they need the
admin token (or the console's session), like configuration writes.
"""

# No ``from __future__ import annotations`` in router modules: dependency-injector finds the
# ``Provide`` markers in ``Annotated`` parameters only when annotations are real objects.

from typing import Annotated, Any

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends

from adapters.http.envelope import success
from adapters.http.routers import AwaitedProvide
from adapters.http.routers.strategies import _AUTH_ERRORS, _ERRORS, Admin
from adapters.http.schemas import Envelope, PauseOut, PauseRequest
from application.signal_pauses import PauseWriteResult, SignalPauseAdmin
from domain.governance import PauseRecord

router = APIRouter(prefix="/api/v1/signals", tags=["strategies"])

Pauses = Annotated[SignalPauseAdmin, Depends(AwaitedProvide["pause_admin"])]

_PAUSE_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: _ERRORS[status] for status in (422, 503)},
    **_AUTH_ERRORS,
}


def pause_out(record: PauseRecord) -> dict[str, Any]:
    return {
        "strategy_id": record.pause.strategy_id,
        "symbol": record.pause.symbol,
        "active": record.active,
        "version": record.version,
        "updated_at": record.updated_at,
        "updated_by": record.updated_by,
        "reason": record.reason,
    }


def switch_out(result: PauseWriteResult) -> dict[str, Any]:
    verb = "paused" if result.record.active else "resumed"
    return success(
        pause_out(result.record),
        {
            "action": verb if result.applied else "unchanged",
            "changes_applied": result.applied,
            "audit_id": f"{result.record.sequence_key}:{result.record.version}",
        },
    )


@router.get(
    "/pause",
    summary="Active signal pauses",
    description="Every pause in force: strategy (``null``: all), symbol (``null``: all), "
    "since when, by whom and why.",
    response_model=Envelope[list[PauseOut]],
    responses={503: _ERRORS[503]},
)
@inject
async def list_pauses(pauses: Pauses) -> dict[str, Any]:
    data = [pause_out(record) for record in await pauses.list_pauses()]
    return success(data, {"count": len(data)})


@router.post(
    "/pause",
    summary="Pause signal publishing",
    description="Stop publishing the signals of ``strategy_id`` on ``symbol`` (either or "
    "both omitted: every strategy / every symbol). The strategies keep evaluating; each held "
    "signal is counted as ``paused``. Stored, audited (action PAUSE) and broadcast to every "
    "replica; survives a restart. Pausing what is already paused changes nothing.",
    response_model=Envelope[PauseOut],
    responses=_PAUSE_ERRORS,
    dependencies=[Admin],
)
@inject
async def pause(pauses: Pauses, body: PauseRequest) -> dict[str, Any]:
    result = await pauses.pause(body.strategy_id, body.symbol, body.changed_by, body.reason)
    return switch_out(result)


@router.post(
    "/resume",
    summary="Resume signal publishing",
    description="Lift the pause of exactly this target (``{}``: the global pause only; "
    "narrower pauses stay). 404 when no such pause is active. Audited (action RESUME).",
    response_model=Envelope[PauseOut],
    responses={**_PAUSE_ERRORS, 404: {**_ERRORS[404], "description": "No such active pause."}},
    dependencies=[Admin],
)
@inject
async def resume(pauses: Pauses, body: PauseRequest) -> dict[str, Any]:
    result = await pauses.resume(body.strategy_id, body.symbol, body.changed_by, body.reason)
    return switch_out(result)
