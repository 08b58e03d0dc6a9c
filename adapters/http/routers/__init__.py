"""FastAPI routers. Their use cases come from the dependency-injector container by name.

The composition root must provide ``config_service``, ``metrics_query``, ``health``,
``api_security`` and ``prometheus`` and wire :data:`WIRED_MODULES`::

    container.wire(modules=WIRED_MODULES)
"""

from __future__ import annotations

WIRED_MODULES: tuple[str, ...] = (
    "adapters.http.routers.strategies",
    "adapters.http.routers.metrics",
    "adapters.http.routers.health",
)
"""Modules whose ``Provide[...]`` markers the container must wire."""

PROVIDER_NAMES: tuple[str, ...] = (
    "config_service",
    "metrics_query",
    "health",
    "api_security",
    "prometheus",
)
"""Provider names the routers ask the container for."""
