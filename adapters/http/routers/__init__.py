"""FastAPI routers. Their use cases come from the dependency-injector container by name.

The composition root must provide ``config_admin``, ``config_cache``, ``pause_admin``,
``outcome_query``, ``config_preview``, ``metrics_query``,
``health``, ``api_security``, ``prometheus`` and ``signal_broadcast`` and wire
:data:`WIRED_MODULES`::

    container.wire(modules=WIRED_MODULES)
"""

from __future__ import annotations

from typing import Any

from dependency_injector.wiring import Provide


class _AwaitedProvide(Provide):  # type: ignore[misc,valid-type]
    """dependency-injector's ``Provide`` marker with an ``async`` ``__call__``.

    ``Depends(Provide["x"])`` makes FastAPI call the marker, which only returns itself for
    ``@inject`` to replace with the provided object; the marker's ``__call__`` being
    synchronous, FastAPI ran it in its thread pool — a hand-off to a worker thread and back
    for every injected dependency of every request (a fifth of the event loop's time at
    500 requests/s). Awaited, it runs inline on the event loop; wiring treats it as the
    same marker.
    """

    async def __call__(self) -> Any:
        return self


AwaitedProvide: Any = _AwaitedProvide
"""Use as ``Depends(AwaitedProvide["provider_name"])`` in the routers."""

WIRED_MODULES: tuple[str, ...] = (
    "adapters.http.routers.strategies",
    "adapters.http.routers.signals",
    "adapters.http.routers.metrics",
    "adapters.http.routers.health",
    "adapters.http.console.router",
    "adapters.http.routers.outcomes",
)
"""Modules whose ``Provide[...]`` markers the container must wire."""
