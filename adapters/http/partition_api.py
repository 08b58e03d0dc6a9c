"""HTTP pieces of the partitioned deployment.

- :func:`partition_status_router`: ``GET /api/v1/partitions`` — this worker's identity, owned
  partitions, replay progress and whether it has processed everything the stream holds for
  them (``caught_up``).
- :class:`OwnerProxyMiddleware`: any worker answers the market-metrics API for any symbol.
  Strategy configuration is in the shared store already; market metrics live in the memory of
  the symbol's owner, so a per-symbol read (``/api/v1/metrics/depth|pressure/{symbol}``) for a
  symbol another worker owns is forwarded to it (``WORKER_URL_TEMPLATE`` with ``{index}``, e.g.
  ``http://realtime-strategies-{index}.realtime-strategies-headless:8080``) and its answer
  relayed as is. Market-wide reads (``/summary``, ``/all``) are gathered from every worker and
  merged by the metrics query's rules (:func:`application.metrics_query.merge_pages`,
  :func:`~application.metrics_query.merge_summaries`); this module only does HTTP. A
  forwarded request carries ``X-Rs-Proxied`` and is always answered locally (no loops). An
  owner that does not answer gives 503 with the error envelope. Why a proxy and not a shared
  view: docs/adr/0010-symbol-partitioning.md.
- :func:`create_router_app`: the router process's ``/healthz``, ``/ready`` and ``/metrics``.

The HTTP client is the standard library's (``urllib`` in a thread): these are low-rate admin
reads, not worth a dependency.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http.routers.metrics import metrics_response
from adapters.http.strict_query import reject_unknown_query_parameters
from adapters.redaction import redact_value
from application.metrics_query import PageQuery, merge_pages, merge_summaries
from application.partitioning import owner_of
from domain.symbol import INPUT_TEXT

PROXIED_HEADER = "x-rs-proxied"
_SYMBOL_PATH = re.compile(f"^/api/v1/metrics/(depth|pressure)/({INPUT_TEXT})$")
_SUMMARY_PATH = "/api/v1/metrics/summary"
_ALL_PATH = "/api/v1/metrics/all"

Fetch = Callable[[str, Mapping[str, str], float], Awaitable[tuple[int, bytes, str]]]


def partition_status_router(status: Callable[[], Awaitable[dict[str, Any]]]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/api/v1/partitions",
        summary="Partition ownership and replay progress of this worker",
        description="Owned partitions, the takeover replay's boundary and progress, counters, "
        "and `caught_up`: every message the stream holds for them has been processed.",
    )
    async def partitions() -> JSONResponse:
        return JSONResponse(await status())

    return router


async def urllib_fetch(
    url: str,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - a socket timeout for the thread, not an asyncio deadline
) -> tuple[int, bytes, str]:
    """GET ``url`` → (status, body, content type); HTTP errors are answers, not exceptions."""

    def get() -> tuple[int, bytes, str]:
        request = urllib.request.Request(url, headers=dict(headers), method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return (
                    response.status,
                    response.read(),
                    response.headers.get("content-type", "application/json"),
                )
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("content-type", "application/json")

    return await asyncio.to_thread(get)


def _unavailable(message: str, request_id: str | None = None) -> JSONResponse:
    return JSONResponse(
        {
            "success": False,
            "data": None,
            "error": {"code": "OWNER_UNAVAILABLE", "message": message, "details": None},
            "metadata": {"request_id": request_id} if request_id else {},
        },
        status_code=503,
    )


class OwnerProxyMiddleware:
    """Serves market-metrics reads from the owner of the symbol (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        worker_index: int,
        worker_count: int,
        partitions: int,
        url_template: str,
        timeout: float = 2.0,
        fetch: Fetch = urllib_fetch,
    ) -> None:
        if "{index}" not in url_template:
            raise ValueError(f"WORKER_URL_TEMPLATE must contain {{index}}: {url_template!r}")
        self.app = app
        self.index = worker_index
        self.count = worker_count
        self.partitions = partitions
        self.template = url_template.rstrip("/")
        self.timeout = timeout
        self._fetch = fetch
        self.proxied = 0
        self.proxy_errors = 0

    def owner_url(self, index: int) -> str:
        return self.template.format(index=index)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.count <= 1:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get(PROXIED_HEADER):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        match = _SYMBOL_PATH.fullmatch(path)
        response: Response | None = None
        if match:
            owner = owner_of(match.group(2).upper(), self.partitions, self.count)
            if owner != self.index:
                response = await self._forward(owner, path, query, headers)
        elif path == _SUMMARY_PATH:
            response = await self._gather_summary(headers)
        elif path == _ALL_PATH:
            response = await self._gather_all(query, headers)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _outgoing_headers(self, headers: Headers) -> dict[str, str]:
        out = {PROXIED_HEADER: "1", "accept": "application/json"}
        request_id = headers.get("x-request-id")
        if request_id:
            out["x-request-id"] = request_id
        return out

    async def _get(
        self, index: int, path: str, query: str, headers: Headers
    ) -> tuple[int, bytes, str]:
        url = self.owner_url(index) + path + (f"?{query}" if query else "")
        self.proxied += 1
        return await self._fetch(url, self._outgoing_headers(headers), self.timeout)

    async def _forward(self, owner: int, path: str, query: str, headers: Headers) -> Response:
        try:
            status, body, content_type = await self._get(owner, path, query, headers)
        except Exception as exc:
            self.proxy_errors += 1
            return _unavailable(f"worker {owner} (owner of the symbol) did not answer: {exc}")
        return Response(
            body,
            status_code=status,
            media_type=None,
            headers={"content-type": content_type, "x-rs-owner": str(owner)},
        )

    async def _gather(
        self, path: str, query: str, headers: Headers, workers: Sequence[int] | None = None
    ) -> list[dict[str, Any]] | Response:
        """Every worker's (or those of ``workers``) JSON answer, in order, or the first
        failure as the response."""
        asked = range(self.count) if workers is None else workers
        try:
            answers = await asyncio.gather(*(self._get(i, path, query, headers) for i in asked))
        except Exception as exc:
            self.proxy_errors += 1
            return _unavailable(f"a worker did not answer: {exc}")
        bodies: list[dict[str, Any]] = []
        for index, (status, body, content_type) in zip(asked, answers, strict=True):
            if status != 200:
                return Response(
                    body,
                    status_code=status,
                    headers={"content-type": content_type, "x-rs-owner": str(index)},
                )
            bodies.append(json.loads(body))
        return bodies

    async def _gather_summary(self, headers: Headers) -> Response:
        bodies = await self._gather(_SUMMARY_PATH, "", headers)
        if isinstance(bodies, Response):
            return bodies
        return metrics_response(merge_summaries(bodies), {"workers": self.count})

    async def _gather_all(self, query: str, headers: Headers) -> Response | None:
        """None: the query is invalid, let the local handler answer its 422."""
        params = dict(urllib.parse.parse_qsl(query))
        order = params.get("order", "asc")
        try:  # InvalidQueryError is a ValueError
            page = PageQuery.of(
                params.get("sort_by", "symbol"),
                order == "desc",
                int(params.get("offset", "0")),
                int(params.get("limit", "100")),
            )
        except ValueError:
            return None
        gathered: list[dict[str, Any]] = [{"total": 0, "items": []} for _ in range(self.count)]
        seen: list[set[str]] = [set() for _ in range(self.count)]
        for offset, limit in page.worker_pages:
            workers = [i for i in range(self.count) if offset == 0 or gathered[i]["total"] > offset]
            if not workers:
                break
            inner = {**params, "offset": str(offset), "limit": str(limit)}
            bodies = await self._gather(_ALL_PATH, urllib.parse.urlencode(inner), headers, workers)
            if isinstance(bodies, Response):
                return bodies
            for index, body in zip(workers, bodies, strict=True):
                gathered[index]["total"] = int(body.get("total", 0))
                for item in body.get("items", []):
                    # A live book can reorder between two pages: keep a symbol's first item.
                    if (symbol := str(item.get("symbol"))) not in seen[index]:
                        seen[index].add(symbol)
                        gathered[index]["items"].append(item)
        merged = merge_pages(gathered, page)
        return metrics_response(merged, {"order": order, "workers": self.count})


def create_router_app(
    *,
    ready: Callable[[], tuple[bool, dict[str, Any]]],
    render_metrics: Callable[[str | None], tuple[bytes, str]],
    status: Callable[[], dict[str, Any]],
) -> FastAPI:
    """The router's operations endpoints (no admin API: routers hold no state)."""
    app = FastAPI(
        title="realtime-strategies router",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query_parameters)],
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready")
    async def ready_endpoint() -> JSONResponse:
        ok, body = ready()
        return JSONResponse(redact_value(body), status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        body, content_type = render_metrics(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @app.get("/api/v1/router")
    async def router_status() -> dict[str, Any]:
        return status()

    return app
