"""Operations endpoints: ``/healthz`` (liveness), ``/ready`` (readiness), ``/metrics``.

These answer outside the envelope, as probes and Prometheus expect: ``/healthz`` is 200 while
the process serves; ``/ready`` is 200 or 503 with every component (NATS, configuration
store(s), feed) and why it is not ready; ``/metrics`` is the Prometheus text exposition (or
OpenMetrics when the scraper asks for it).
"""

# No ``from __future__ import annotations`` in router modules: dependency-injector finds the
# ``Provide`` markers in ``Annotated`` parameters only when annotations are real objects.

from typing import Annotated, Any, Protocol

import structlog
from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from adapters.http.routers import AwaitedProvide
from adapters.http.schemas import LivenessOut, ReadinessOut
from adapters.observability.prometheus import PrometheusMetrics
from adapters.redaction import redact_value

log = structlog.get_logger("adapters.http")

router = APIRouter(tags=["operations"])


class HealthReporter(Protocol):
    """What the health endpoints need (implemented by ``application.health.HealthService``)."""

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """``(ready, body)``; the body lists every component and why it is not ready."""
        ...

    def liveness(self) -> dict[str, object]: ...


Health = Annotated[HealthReporter, Depends(AwaitedProvide["health"])]
Prometheus = Annotated[PrometheusMetrics, Depends(AwaitedProvide["prometheus"])]


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process serves requests. Does not check dependencies.",
    response_model=LivenessOut,
)
@inject
async def healthz(health: Health) -> dict[str, Any]:
    try:
        return dict(health.liveness())
    except Exception as error:  # liveness must not fail because a reporter did
        log.warning("liveness_reporter_failed", error_type=type(error).__name__)
        return {"status": "alive"}


@router.get(
    "/ready",
    summary="Readiness",
    description="200 when NATS is connected and a configuration store is reachable, else 503; "
    "the body lists every component and the reasons it is not ready.",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "Not ready (see ``reasons``)."}},
)
@inject
async def ready(
    health: Health,
    metrics: Prometheus,
) -> JSONResponse:
    try:
        is_ready, body = await health.readiness()
    except Exception as error:  # a broken probe means "not ready", never a 500
        log.warning("readiness_check_failed", error_type=type(error).__name__)
        is_ready = False
        body = {
            "status": "not_ready",
            "components": {},
            "reasons": [f"readiness check failed: {type(error).__name__}"],
        }
    metrics.set_ready(is_ready)
    # Components report store errors and server URLs: never with their credentials.
    return JSONResponse(redact_value(jsonable_encoder(body)), status_code=200 if is_ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition (OpenMetrics if requested by ``Accept``).",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
@inject
async def metrics(
    request: Request,
    prometheus: Prometheus,
) -> Response:
    content, content_type = prometheus.render(request.headers.get("accept"))
    return Response(content=content, media_type=content_type)
