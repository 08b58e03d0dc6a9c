"""The response envelope and the mapping of errors to HTTP statuses.

Every JSON response of the configuration API is an envelope::

    {"success": true|false, "data": ..., "error": null | {"code", "message", "details"},
     "metadata": {...} | null}

Errors are mapped here, in one place, so routers only raise:

======================================================  ======  =======================
exception                                               status  ``error.code``
======================================================  ======  =======================
:class:`UnknownStrategyError`                           404     ``unknown_strategy``
:class:`ConfigNotFoundError`                            404     ``config_not_found``
:class:`PauseNotFoundError` (nothing to resume)         404     ``pause_not_found``
:class:`UnknownSymbolError`                             404     ``unknown_symbol``
:class:`ParamValidationError` (domain)                  422     ``validation_error``
FastAPI ``RequestValidationError`` (body/query/path)    422     ``invalid_request``
malformed or too deeply nested JSON                     422     ``invalid_json``
:class:`InvalidTimeframeError` / :class:`InvalidQueryError` 422 ``invalid_query``
:class:`VersionConflictError` (concurrent write lost)   409     ``conflict``
:class:`StoreUnavailableError`                          503     ``store_unavailable``
:class:`WritesOverloadedError` (write queue full)       429     ``too_many_writes``
:class:`ApiError` (auth: 401/403, body too large: 413)  its own its own
``HTTPException`` (404 route, 405 method, ...)          its own ``http_<status>``
anything else                                           500     ``internal_error``
======================================================  ======  =======================

A 500 never carries the exception text (it may hold hosts or credentials); it is logged with
the request id, which the client gets in ``metadata.request_id`` and ``X-Request-ID``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from application.errors import (
    ConfigNotFoundError,
    PauseNotFoundError,
    UnknownStrategyError,
    WritesOverloadedError,
)
from application.metrics_query import InvalidQueryError, UnknownSymbolError
from application.ports import StoreUnavailableError, VersionConflictError
from domain.params import ParamValidationError

log = structlog.get_logger("adapters.http")

REQUEST_ID_STATE = "request_id"
"""Key under ``request.state`` (and ``scope["state"]``) holding the request id."""


class ApiError(Exception):
    """An error with its HTTP status, envelope code, message and optional details."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class BodyTooLargeError(StarletteHTTPException):
    """Raised while the body is read once it exceeds the limit (413).

    It is an ``HTTPException`` so FastAPI's body parsing re-raises it unchanged instead of
    turning it into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")
        self.limit = limit


def success(data: object, metadata: Mapping[str, object] | None = None) -> dict[str, Any]:
    """A success envelope."""
    return {
        "success": True,
        "data": data,
        "error": None,
        "metadata": dict(metadata) if metadata is not None else None,
    }


def failure(
    code: str,
    message: str,
    details: object = None,
    metadata: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """An error envelope."""
    return {
        "success": False,
        "data": None,
        "error": {"code": code, "message": message, "details": details},
        "metadata": dict(metadata) if metadata is not None else None,
    }


def request_id_of(request: Request) -> str | None:
    value = getattr(request.state, REQUEST_ID_STATE, None)
    return value if isinstance(value, str) else None


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """The error envelope of ``error``, with the request id in its metadata."""
    request_id = request_id_of(request)
    metadata = {"request_id": request_id} if request_id else None
    return JSONResponse(
        failure(error.code, error.message, error.details, metadata),
        status_code=error.status_code,
        headers=error.headers or None,
    )


def field_errors(error: ParamValidationError) -> list[dict[str, str]]:
    """``[{field, code, message}]`` of a domain validation error."""
    return [{"field": e.field, "code": e.code, "message": e.message} for e in error.errors]


def request_validation_details(errors: Sequence[Any]) -> list[dict[str, object]]:
    """Field-level details of a pydantic/FastAPI validation error, without echoing input.

    ``field`` is the location without its first element (``body``/``query``/``path``),
    dotted (``parameters.top_levels``), or ``__root__`` for the body as a whole; ``location``
    keeps the full ``loc``.
    """
    details: list[dict[str, object]] = []
    for item in errors:
        if not isinstance(item, Mapping):
            continue
        loc = [str(part) for part in item.get("loc", ())]
        field = ".".join(loc[1:]) if len(loc) > 1 else "__root__"
        details.append(
            {
                "field": field,
                "code": str(item.get("type", "invalid")),
                "message": str(item.get("msg", "invalid value")),
                "location": loc,
            }
        )
    return details


def _is_json_error(details: list[dict[str, object]]) -> bool:
    return any(d["code"] == "json_invalid" for d in details)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc)


class _Answer(NamedTuple):
    """How a use case's error is answered: status, ``error.code``, message (None: the
    error's text), details and headers (both of the error)."""

    status_code: int
    code: str
    message: str | None = None
    details: Callable[[Any], object] = lambda _: None
    headers: Callable[[Any], Mapping[str, str] | None] = lambda _: None


def _layer(exc: ConfigNotFoundError | PauseNotFoundError) -> dict[str, object]:
    return {"strategy_id": exc.strategy_id, "symbol": exc.symbol}


def _retry_after(exc: WritesOverloadedError) -> int:
    return max(1, round(exc.retry_after_s))


_ANSWERS: dict[type[Exception], _Answer] = {
    UnknownStrategyError: _Answer(
        404, "unknown_strategy", details=lambda exc: {"strategy_id": exc.strategy_id}
    ),
    ConfigNotFoundError: _Answer(404, "config_not_found", details=_layer),
    PauseNotFoundError: _Answer(404, "pause_not_found", details=_layer),
    UnknownSymbolError: _Answer(404, "unknown_symbol", details=lambda exc: {"symbol": exc.symbol}),
    ParamValidationError: _Answer(422, "validation_error", "parameters are invalid", field_errors),
    InvalidQueryError: _Answer(
        422,
        "invalid_query",
        details=lambda exc: [{"field": exc.field, "code": "invalid", "message": exc.message}],
    ),
    WritesOverloadedError: _Answer(
        429,
        "too_many_writes",
        "too many configuration writes at once; retry later",
        details=lambda exc: {"retry_after_seconds": _retry_after(exc)},
        headers=lambda exc: {"Retry-After": str(_retry_after(exc))},
    ),
}
"""The use-case errors answered from their own fields alone (the module doc's table)."""


def _answering(answer: _Answer) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        message = str(exc) if answer.message is None else answer.message
        return error_response(
            request,
            ApiError(
                answer.status_code, answer.code, message, answer.details(exc), answer.headers(exc)
            ),
        )

    return handler


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = request_validation_details(exc.errors())
    if _is_json_error(details):
        return error_response(
            request, ApiError(422, "invalid_json", "request body is not valid JSON")
        )
    return error_response(request, ApiError(422, "invalid_request", "request is invalid", details))


async def _version_conflict(request: Request, exc: Exception) -> JSONResponse:
    log.warning("config_version_conflict", request_id=request_id_of(request), error=str(exc))
    return error_response(
        request,
        ApiError(
            409, "conflict", "the configuration changed concurrently; read it again and retry"
        ),
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may name hosts or URIs: logged, not returned.
    log.warning(
        "config_store_unavailable",
        request_id=request_id_of(request),
        error_type=type(exc).__name__,
    )
    return error_response(
        request,
        ApiError(
            503,
            "store_unavailable",
            "the configuration store is unavailable; retry later",
            headers={"Retry-After": "5"},
        ),
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, BodyTooLargeError):
        return error_response(
            request,
            ApiError(
                413,
                "payload_too_large",
                f"request body exceeds {exc.limit} bytes",
                {"max_bytes": exc.limit},
            ),
        )
    if status == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to JSON that json.loads cannot build (e.g. nested too deeply).
        return error_response(
            request, ApiError(422, "invalid_json", "request body is not valid JSON")
        )
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(request, ApiError(status, f"http_{status}", message, headers=headers))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """500 without internals; the traceback goes to the log with the request id."""
    log.error(
        "unhandled_error",
        request_id=request_id_of(request),
        method=request.method,
        path=request.url.path,
        error_type=type(exc).__name__,
        exc_info=exc,
    )
    return error_response(request, ApiError(500, "internal_error", "internal server error"))


def install_exception_handlers(app: FastAPI) -> None:
    """Register every mapping of the table in the module docstring."""
    app.add_exception_handler(ApiError, _api_error)
    for kind, answer in _ANSWERS.items():
        app.add_exception_handler(kind, _answering(answer))
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(VersionConflictError, _version_conflict)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, unexpected_error)
