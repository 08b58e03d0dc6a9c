"""Unknown query parameters are an error (422), on every endpoint.

A misspelt or misplaced parameter must not be silently ignored: ``?validate_only=true`` on a
POST whose dry-run switch lives in the body would otherwise apply the write for real, and
``?limt=5`` would quietly return the default page. :func:`reject_unknown_query_parameters`
is an application-wide dependency: it compares the request's query keys with the query
parameters the matched route (and its dependencies) declare.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_DECLARED: dict[int, frozenset[str]] = {}


def declared_query_parameters(dependant: Dependant) -> frozenset[str]:
    """The query parameter names (aliases) of an endpoint and of all its dependencies."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


async def reject_unknown_query_parameters(request: Request) -> None:
    """422 ``invalid_request`` naming every query parameter the endpoint does not declare."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _DECLARED.get(id(route))
    if declared is None:
        declared = _DECLARED[id(route)] = declared_query_parameters(route.dependant)
    unknown = sorted(set(request.query_params.keys()) - declared)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "unknown_query_parameter",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter {name!r}"
                    + (f"; this endpoint takes {', '.join(sorted(declared))}" if declared else ""),
                    "input": None,
                }
                for name in unknown
            ]
        )
