"""Readiness probes of the running service's components (NATS, config stores, feed), and
the active signal pauses (always ready: a pause is a state the operator chose, shown in
``/ready``'s details)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from application.config_cache import EffectiveConfigCache
from application.health import ComponentStatus, HealthCheck
from application.ports import ConfigRepository, StoreUnavailableError


def nats_check(connection: Any, name: str = "nats") -> HealthCheck:
    async def nats() -> ComponentStatus:
        connected = bool(connection.is_connected)
        return ComponentStatus(
            name,
            ready=connected,
            detail="connected" if connected else f"not connected ({connection.state})",
            info={"url": connection.connected_url},
        )

    return nats


def config_store_check(repository: ConfigRepository) -> HealthCheck:
    """Ready while at least one store answers; degraded when one of the failover's stores is
    down or the stores have writes still to reconcile (``FailoverConfigRepository``)."""
    check_health: Callable[[], Awaitable[dict[str, Any]]] | None = getattr(
        repository, "check_health", None
    )

    async def config_store() -> ComponentStatus:
        if check_health is not None:
            report = await check_health()
            stores = [report.get(role) for role in ("primary", "fallback")]
            states = [s for s in stores if isinstance(s, dict)]
            up = [str(s.get("name")) for s in states if s.get("state") == "up"]
            down = [str(s.get("name")) for s in states if s.get("state") != "up"]
            pending = {k: v for k, v in dict(report.get("pending") or {}).items() if v}
            detail = (f"serving from {report.get('serving')}" if up else "all stores down") + (
                f"; down: {', '.join(down)}" if down else ""
            )
            if pending:
                detail += "; to reconcile: " + ", ".join(f"{k} {v}" for k, v in pending.items())
            return ComponentStatus(
                "config_store",
                ready=bool(up),
                degraded=bool(up) and report.get("status") != "ok",
                detail=detail,
                info=report,
            )
        try:
            await repository.ping()
        except StoreUnavailableError as error:
            return ComponentStatus("config_store", ready=False, detail=str(error))
        return ComponentStatus("config_store", ready=True, detail=f"{repository.name} reachable")

    return config_store


def feed_check(feed: Any, mode: str) -> HealthCheck:
    async def feed_status() -> ComponentStatus:
        if mode == "local":
            return ComponentStatus("feed", ready=True, detail="replaying a capture file")
        subscribed = bool(feed.is_subscribed)
        return ComponentStatus(
            "feed",
            ready=subscribed,
            detail="subscribed" if subscribed else "not subscribed",
            info={"subjects": list(feed.subjects), "queue_depth": feed.queue_depth},
        )

    feed_status.__name__ = "feed"
    return feed_status


def signal_pauses_check(cache: EffectiveConfigCache) -> HealthCheck:
    async def signal_pauses() -> ComponentStatus:
        pauses = cache.pauses
        return ComponentStatus(
            "signal_pauses",
            ready=True,
            detail=(
                "paused: " + ", ".join(record.key for record in pauses)
                if pauses
                else "publishing (no pause)"
            ),
            info={
                "active": [
                    {
                        "strategy_id": record.pause.strategy_id,
                        "symbol": record.pause.symbol,
                        "since": record.updated_at.isoformat(),
                        "by": record.updated_by,
                        "reason": record.reason,
                        "version": record.version,
                    }
                    for record in pauses
                ]
            },
        )

    return signal_pauses


def build_health_checks(
    mode: str,
    connection: Any,
    repository: ConfigRepository,
    feed: Any,
    feed_connection: Any = None,
    cache: EffectiveConfigCache | None = None,
) -> list[HealthCheck]:
    """NATS (when the process uses it; a worker's feed connection as ``nats_feed``), the
    config stores, the market feed and the signal pauses."""
    checks = [config_store_check(repository), feed_check(feed, mode)]
    if feed_connection is not None and feed_connection is not connection:
        checks.insert(0, nats_check(feed_connection, "nats_feed"))
    if cache is not None:
        checks.append(signal_pauses_check(cache))
    if connection is not None:
        checks.insert(0, nats_check(connection))
    return checks
