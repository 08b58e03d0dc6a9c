"""Liveness and readiness: what `/healthz` and `/ready` report.

Ready means: NATS connected (market data flows, signals leave) and at least one
configuration store reachable. A degraded component (e.g. MongoDB down while MySQL serves)
keeps the service ready but is reported, so operators see it in `/ready` and in metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from application.ports import Clock


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    ready: bool
    degraded: bool = False
    detail: str = ""
    info: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "degraded": self.degraded,
            "detail": self.detail,
            **self.info,
        }


HealthCheck = Callable[[], Awaitable[ComponentStatus]]
"""An async probe of one component; must not raise (a raise counts as not ready)."""


class HealthService:
    """Aggregates component probes, each bounded in time."""

    def __init__(
        self, checks: Sequence[HealthCheck], clock: Clock, probe_timeout_seconds: float = 2.0
    ) -> None:
        self._checks = tuple(checks)
        self._clock = clock
        self._started = clock.now()
        self._timeout = probe_timeout_seconds
        self.last_ready: bool | None = None

    def liveness(self) -> dict[str, object]:
        uptime = (self._clock.now() - self._started).total_seconds()
        return {"status": "alive", "uptime_seconds": round(uptime, 3)}

    async def _run(self, check: HealthCheck) -> ComponentStatus:
        name = getattr(check, "__name__", "component")
        try:
            return await asyncio.wait_for(check(), timeout=self._timeout)
        except TimeoutError:
            return ComponentStatus(
                name, ready=False, detail=f"probe timed out after {self._timeout}s"
            )
        except Exception as error:  # a failing probe means "not ready", never a 500
            return ComponentStatus(name, ready=False, detail=f"probe failed: {error!r}")

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        statuses = await asyncio.gather(*(self._run(check) for check in self._checks))
        ready = all(s.ready for s in statuses)
        self.last_ready = ready
        body: dict[str, object] = {
            "status": "ready" if ready else "not_ready",
            "components": {s.name: s.as_dict() for s in statuses},
        }
        reasons = [f"{s.name}: {s.detail}" for s in statuses if not s.ready]
        if reasons:
            body["reasons"] = reasons
        return ready, body
