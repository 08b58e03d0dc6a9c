"""The FastAPI application factory of the admin API.

:func:`create_app` registers the routers, the error envelope handlers and one pure-ASGI
middleware that, per request:

* assigns a request id (the caller's ``X-Request-ID`` if it is sane, else a new one), returned
  in ``X-Request-ID`` and in error envelopes;
* limits the request body (``Content-Length`` above the limit → 413 before reading; a body that
  grows past it while being read → 413);
* turns any unhandled exception into a 500 envelope without internals (logged with the id);
* writes one structlog access-log line (method, path, route, status, duration, client, id —
  never headers, bodies or query strings, which may carry secrets);
* opens an OpenTelemetry server span continuing the caller's ``traceparent`` (a no-op unless
  the entrypoint configured a tracer provider).

Routers get their use cases from the dependency-injector container; the composition root
wires :data:`adapters.http.routers.WIRED_MODULES` before serving.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from opentelemetry import propagate, trace
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http import console
from adapters.http.envelope import (
    REQUEST_ID_STATE,
    BodyTooLargeError,
    failure,
    install_exception_handlers,
)
from adapters.http.routers import health, metrics, outcomes, signals, strategies
from adapters.http.strict_query import reject_unknown_query_parameters

log = structlog.get_logger("adapters.http")
_tracer = trace.get_tracer("adapters.http")

DEFAULT_MAX_BODY_BYTES = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_QUIET_PATHS = frozenset({"/healthz", "/ready", "/metrics"})

OPENAPI_TAGS: list[dict[str, Any]] = [
    {
        "name": "strategies",
        "description": "Strategy discovery and run-time configuration: global and per-symbol "
        "layers, validated on the merged result, versioned, audited and applied on every "
        "replica within a second. Writes need `Authorization: Bearer $ADMIN_API_TOKEN`.",
    },
    {
        "name": "market metrics",
        "description": "Order-book depth analytics per symbol: pressure, liquidity, spread, "
        "support/resistance, pressure history by event time, market-wide sentiment.",
    },
    {
        "name": "signals",
        "description": "Published signals with their live outcome (returns at 1m/5m/15m/1h "
        "and the simulated trade after costs) and each strategy's performance per config "
        "version; what-if previews of a config change on the last minutes of market data.",
    },
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]

DESCRIPTION = """\
Admin API of **realtime-strategies**: live crypto market data (Binance trades, tickers and
depth on NATS) turned into trading signals by six strategies.

* Configuration responses use the envelope
  `{"success", "data", "error": {"code", "message", "details"}, "metadata"}`.
* Errors: 401/403 auth, 404 unknown strategy/configuration/symbol, 409 concurrent write,
  413 body too large, 422 invalid (field-level `details`; unknown query parameters too),
  503 configuration store down.
* Mutating endpoints require `Authorization: Bearer <ADMIN_API_TOKEN>`; with no token set they
  are allowed only when the API listens on loopback and the caller is local.
"""


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class RequestContextMiddleware:
    """Request id, body limit, 500 envelope, access log and trace span (see module doc)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get("x-request-id", "")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})[REQUEST_ID_STATE] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False
        limit = self.max_body_bytes
        received = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                raw = list(message.get("headers", []))
                raw.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": raw}
            await send(message)

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        context = propagate.extract(headers)
        method = scope.get("method", "")
        path = scope.get("path", "")
        with _tracer.start_as_current_span(
            f"{method} {path}", context=context, kind=trace.SpanKind.SERVER
        ) as span:
            try:
                declared = _content_length(headers)
                if declared is not None and declared > limit:
                    await self._reject_too_large(send_wrapper, request_id, limit)
                else:
                    await self.app(scope, receive_wrapper, send_wrapper)
            except Exception as error:
                log.error(
                    "unhandled_error",
                    request_id=request_id,
                    method=method,
                    path=path,
                    error_type=type(error).__name__,
                    exc_info=error,
                )
                if not response_started:
                    await self._send_json(
                        send_wrapper,
                        500,
                        failure(
                            "internal_error",
                            "internal server error",
                            metadata={"request_id": request_id},
                        ),
                    )
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or path
                if span.is_recording():
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", template)
                    span.set_attribute("http.response.status_code", status)
                self._access_log(scope, method, path, template, status, started, request_id)

    @staticmethod
    def _access_log(
        scope: Scope,
        method: str,
        path: str,
        template: str,
        status: int,
        started: float,
        request_id: str,
    ) -> None:
        client = scope.get("client")
        fields = {
            "method": method,
            "path": path,
            "route": template,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
            "client": client[0] if client else None,
            "request_id": request_id,
        }
        if path in _QUIET_PATHS and status < 400:
            log.debug("http_request", **fields)
        elif status >= 500:
            log.warning("http_request", **fields)
        else:
            log.info("http_request", **fields)

    async def _reject_too_large(self, send: Send, request_id: str, limit: int) -> None:
        await self._send_json(
            send,
            413,
            failure(
                "payload_too_large",
                f"request body exceeds {limit} bytes",
                {"max_bytes": limit},
                {"request_id": request_id},
            ),
        )

    @staticmethod
    async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
        payload = _json_bytes(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def create_app(
    *,
    title: str = "realtime-strategies",
    version: str = "0.1.0",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The admin API app: routers, error envelope, request middleware; docs at ``/docs``.

    The caller wires the routers to a container providing ``config_admin``, ``config_cache``,
    ``metrics_query``, ``health``, ``api_security`` and ``prometheus``.
    """
    if max_body_bytes < 0:
        raise ValueError(f"max_body_bytes must be >= 0, got {max_body_bytes}")
    app = FastAPI(
        dependencies=[Depends(reject_unknown_query_parameters)],
        title=title,
        version=version,
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.include_router(outcomes.router)  # first: .../config/preview is not a symbol
    app.include_router(strategies.router)
    app.include_router(strategies.audit_router)
    app.include_router(signals.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(console.router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC_DIR), name="console-static")
    install_exception_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes)
    app.state.max_body_bytes = max_body_bytes
    return app
