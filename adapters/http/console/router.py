"""``/console``: the operator console's pages, its login and its live signal stream.

Pages are rendered on the server (Jinja2) from the same use cases as the API, taken from the
container by name (``config_admin``, ``metrics_query``, ``health``, ``api_security``,
``signal_broadcast``). Mutations are not handled here: the page's script sends them to the
REST API itself (``/api/v1/...``), which validates, audits and authorizes them as for any
client — authenticated by the console's session cookie (see :mod:`adapters.http.security`).
These routes are not part of the OpenAPI schema.
"""

# No ``from __future__ import annotations`` in router modules: dependency-injector finds the
# ``Provide`` markers in ``Annotated`` parameters only when annotations are real objects.

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from adapters.http.console.views import (
    depth_bars,
    form_fields,
    pressure_chart,
    timeline,
)
from adapters.http.envelope import ApiError
from adapters.http.routers import AwaitedProvide
from adapters.http.routers.health import HealthReporter
from adapters.http.security import CONSOLE_SESSION_COOKIE, ApiSecurity
from adapters.redaction import redact_value
from adapters.wire.signals import signal_to_wire
from application.config_admin import ConfigAdmin
from application.errors import UnknownStrategyError
from application.live_signals import SignalBroadcast
from application.metrics_query import InvalidQueryError, MarketMetricsQuery, UnknownSymbolError
from domain.signal import Signal
from domain.strategies.registry import STRATEGIES
from domain.symbol import INPUT_TEXT, MAX_SYMBOL_LENGTH, normalise

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["symbol_max_length"] = MAX_SYMBOL_LENGTH
# HTML pattern: the whole value must match, and an empty optional field is not checked.
templates.env.globals["symbol_pattern"] = INPUT_TEXT

router = APIRouter(prefix="/console", include_in_schema=False)

SYMBOL_PATTERN = f"^(?:{INPUT_TEXT})?$"
STRATEGY_PATTERN = r"^[a-z0-9_]{0,64}$"
KEEPALIVE_SECONDS = 15.0
AUDIT_PER_STRATEGY = 200

Service = Annotated[ConfigAdmin, Depends(AwaitedProvide["config_admin"])]
Metrics = Annotated[MarketMetricsQuery, Depends(AwaitedProvide["metrics_query"])]
Security = Annotated[ApiSecurity, Depends(AwaitedProvide["api_security"])]
Broadcast = Annotated[SignalBroadcast, Depends(AwaitedProvide["signal_broadcast"])]
Health = Annotated[HealthReporter, Depends(AwaitedProvide["health"])]

OptionalSymbol = Annotated[str, Query(pattern=SYMBOL_PATTERN, max_length=MAX_SYMBOL_LENGTH)]
OptionalStrategy = Annotated[str, Query(pattern=STRATEGY_PATTERN, max_length=64)]

PAGES = (
    ("signals", "Live signals"),
    ("strategies", "Strategies"),
    ("performance", "Performance"),
    ("pause", "Pause"),
    ("audit", "Audit"),
    ("market", "Market"),
    ("health", "Health"),
)
PAUSE_API = "/api/v1/signals/pause"
PERFORMANCE_API = "/api/v1/strategies/{strategy_id}/performance"
PAGE_NEEDS = {"pause": PAUSE_API, "performance": PERFORMANCE_API}
"""Pages that show an API of their own: listed only when the app serves it."""


def _api_paths(request: Request) -> set[str]:
    """The paths of the app's API (its OpenAPI schema): pages offer what the API has."""
    return set(request.app.openapi().get("paths", {}))


def _render(
    request: Request,
    security: ApiSecurity,
    page: str,
    status_code: int = 200,
    template: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page with the navigation, the operator's session state and ``context``; its
    template is ``<page>.html`` unless ``template`` names another."""
    operator = security.session_name(request.cookies.get(CONSOLE_SESSION_COOKIE))
    routes = _api_paths(request)
    pages = [(key, label) for key, label in PAGES if PAGE_NEEDS.get(key, "") in routes | {""}]
    return templates.TemplateResponse(
        request,
        template or f"{page}.html",
        {
            "pages": pages,
            "page": page,
            "operator": operator,
            "token_required": security.token_configured,
            **context,
        },
        status_code=status_code,
    )


def _missing(request: Request, security: ApiSecurity, page: str, what: str) -> HTMLResponse:
    """The 404 page of ``page``: ``what`` is not there."""
    return _render(request, security, page, status_code=404, template="missing.html", what=what)


@router.get("", response_class=RedirectResponse)
async def console_home() -> RedirectResponse:
    return RedirectResponse("/console/signals", status_code=303)


# --- login ------------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    return target if target.startswith("/console") and "//" not in target else "/console"


@router.get("/login", response_class=HTMLResponse)
@inject
async def login_page(
    request: Request,
    security: Security,
    next_page: Annotated[str, Query(alias="next", max_length=200)] = "/console",
) -> HTMLResponse:
    return _render(request, security, "login", next_page=_safe_next(next_page))


@router.post("/login", response_class=HTMLResponse)
@inject
async def login(
    request: Request,
    security: Security,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    token: Annotated[str, Form(max_length=4096)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=200)] = "/console",
) -> Response:
    """Check the admin token once and open a session (an HttpOnly SameSite=Strict cookie)."""
    client = request.client
    try:
        security.authorize(
            f"Bearer {token}" if token else None,
            client.host if client is not None else None,
            request.headers.get("host"),
        )
    except ApiError as error:
        return _render(
            request,
            security,
            "login",
            status_code=error.status_code,
            next_page=_safe_next(next_page),
            error=error.message,
            name=name,
        )
    response = RedirectResponse(_safe_next(next_page), status_code=303)
    response.set_cookie(
        CONSOLE_SESSION_COOKIE,
        security.issue_session(name.strip()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(CONSOLE_SESSION_COOKIE, path="/")
    return response


# --- live signals -----------------------------------------------------------------------------


def _matches(signal: Signal, strategy_id: str, symbol: str, action: str) -> bool:
    return (
        (not strategy_id or signal.strategy_id == strategy_id)
        and (not symbol or signal.symbol == normalise(symbol))
        and (not action or signal.action.value == action)
    )


@router.get("/signals", response_class=HTMLResponse)
@inject
async def signals_page(
    request: Request,
    security: Security,
    service: Service,
    strategy_id: OptionalStrategy = "",
    symbol: OptionalSymbol = "",
    action: Literal["", "buy", "sell"] = "",
) -> HTMLResponse:
    strategies = [s.strategy_id for s in await service.list_strategies()]
    return _render(
        request,
        security,
        "signals",
        strategies=strategies,
        filters={"strategy_id": strategy_id, "symbol": symbol.upper(), "action": action},
    )


@router.get("/signals/stream")
@inject
async def signal_stream(
    request: Request,
    broadcast: Broadcast,
    strategy_id: OptionalStrategy = "",
    symbol: OptionalSymbol = "",
    action: Literal["", "buy", "sell"] = "",
) -> StreamingResponse:
    """Server-sent events: one ``signal`` event per published signal matching the filters."""
    subscription = broadcast.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                signal = await subscription.next(timeout=KEEPALIVE_SECONDS)
                if signal is None:
                    yield ": keep-alive\n\n"
                elif _matches(signal, strategy_id, symbol, action):
                    payload = json.dumps(signal_to_wire(signal), separators=(",", ":"))
                    yield f"event: signal\nid: {signal.signal_id}\ndata: {payload}\n\n"
        except asyncio.CancelledError:
            raise
        finally:
            subscription.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- strategies -------------------------------------------------------------------------------


@router.get("/strategies", response_class=HTMLResponse)
@inject
async def strategies_page(request: Request, security: Security, service: Service) -> HTMLResponse:
    return _render(request, security, "strategies", strategies=await service.list_strategies())


@router.get("/strategies/{strategy_id}", response_class=HTMLResponse)
@inject
async def strategy_page(
    request: Request,
    security: Security,
    service: Service,
    strategy_id: str,
    symbol: OptionalSymbol = "",
) -> HTMLResponse:
    try:
        specs = await service.schema(strategy_id)
    except UnknownStrategyError:
        return _missing(request, security, "strategies", f"strategy {strategy_id!r}")
    layer_symbol = symbol.upper() or None
    view = await service.get_config(strategy_id, layer_symbol)
    summary = next(s for s in await service.list_strategies() if s.strategy_id == strategy_id)
    records = await service.audit(strategy_id, layer_symbol, 50)
    routes = _api_paths(request)
    return _render(
        request,
        security,
        "strategies",
        template="strategy.html",
        strategy=summary,
        view=view,
        symbol=layer_symbol or "",
        fields=form_fields(specs, view.effective, view.parameters),
        history=[r for r in records if r.symbol == layer_symbol],
        has_preview="/api/v1/strategies/{strategy_id}/config/preview" in routes,
    )


# --- pause switch and live performance (pages over their REST endpoints) ------------------------


def _missing_api(request: Request, security: ApiSecurity, page: str, api: str) -> HTMLResponse:
    return _missing(request, security, page, f"the API {api}")


@router.get("/pause", response_class=HTMLResponse)
@inject
async def pause_page(request: Request, security: Security, service: Service) -> HTMLResponse:
    """Active pauses, and the pause/resume form (sent to ``/api/v1/signals/...``)."""
    if PAUSE_API not in _api_paths(request):
        return _missing_api(request, security, "pause", PAUSE_API)
    return _render(request, security, "pause", strategies=await service.list_strategies())


@router.get("/performance", response_class=HTMLResponse)
@inject
async def performance_page(
    request: Request,
    security: Security,
    service: Service,
    strategy_id: OptionalStrategy = "",
    symbol: OptionalSymbol = "",
) -> HTMLResponse:
    """Live outcomes of a strategy per horizon and per config version, and its recent
    signals with their outcome (read from ``/api/v1/strategies/{id}/performance`` and
    ``/api/v1/signals/recent`` by the page's script)."""
    if PERFORMANCE_API not in _api_paths(request):
        return _missing_api(request, security, "performance", PERFORMANCE_API)
    strategies = [s for s in await service.list_strategies() if s.strategy_id in STRATEGIES]
    chosen = strategy_id if strategy_id in STRATEGIES else strategies[0].strategy_id
    return _render(
        request,
        security,
        "performance",
        strategies=strategies,
        strategy_id=chosen,
        symbol=symbol.upper(),
    )


# --- audit ------------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
@inject
async def audit_page(
    request: Request,
    security: Security,
    service: Service,
    strategy_id: OptionalStrategy = "",
    symbol: OptionalSymbol = "",
    limit: Annotated[int, Query(ge=1, le=AUDIT_PER_STRATEGY)] = 100,
) -> HTMLResponse:
    strategies = [s.strategy_id for s in await service.list_strategies()]
    wanted = [strategy_id] if strategy_id else strategies
    records = []
    for sid in wanted:
        if sid in strategies:
            records.extend(await service.audit(sid, symbol.upper() or None, limit))
    return _render(
        request,
        security,
        "audit",
        strategies=strategies,
        filters={"strategy_id": strategy_id, "symbol": symbol.upper(), "limit": limit},
        entries=timeline(records, limit),
    )


# --- market -----------------------------------------------------------------------------------


@router.get("/market", response_class=HTMLResponse)
@inject
async def market_page(request: Request, security: Security, metrics: Metrics) -> HTMLResponse:
    return _render(
        request,
        security,
        "market",
        summary=metrics.summary(),
        symbols=metrics.all(
            interpretation=None,
            min_liquidity=None,
            sort_by="symbol",
            descending=False,
            offset=0,
            limit=500,
        ),
    )


@router.get("/market/{symbol}", response_class=HTMLResponse)
@inject
async def symbol_page(
    request: Request,
    security: Security,
    metrics: Metrics,
    symbol: str,
    timeframe: Literal["1m", "5m", "15m", "1h"] = "5m",
) -> HTMLResponse:
    try:
        depth = metrics.depth(symbol.upper())
        pressure = metrics.pressure(symbol.upper(), timeframe, 200)
    except (UnknownSymbolError, InvalidQueryError):
        return _missing(request, security, "market", f"depth data for {symbol.upper()!r}")
    return _render(
        request,
        security,
        "market",
        template="symbol.html",
        symbol=symbol.upper(),
        timeframe=timeframe,
        depth=depth,
        pressure=pressure,
        chart=pressure_chart(pressure.get("points", [])),
        bars=depth_bars(depth.get("liquidity") or {}),
    )


# --- health -----------------------------------------------------------------------------------


@router.get("/health", response_class=HTMLResponse)
@inject
async def health_page(request: Request, security: Security, health: Health) -> HTMLResponse:
    ready, body = await health.readiness()
    return _render(
        request,
        security,
        "health",
        ready=ready,
        readiness=redact_value(jsonable_encoder(body)),
        liveness=health.liveness(),
    )
