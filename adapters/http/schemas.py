"""Pydantic request and response models of the REST API (what OpenAPI at ``/docs`` shows).

Request bodies forbid unknown fields. Parameter values keep their JSON types: ``true`` stays a
bool and ``1`` an int (strict unions, no coercion), so the domain validation can reject a bool
given for an int parameter, or ``1.0`` for an int parameter, as ``wrong_type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from domain.symbol import INPUT_PATTERN, MAX_SYMBOL_LENGTH

T = TypeVar("T")

MAX_PARAMETERS = 100
"""Most parameters one POST may change (a strategy has at most a few dozen)."""


def _json_scalar(value: object) -> object:
    """One error per bad value (``wrong_type``), instead of one per member of the union."""
    if value is None or isinstance(value, bool | int | float):
        return value
    raise PydanticCustomError(
        "wrong_type",
        "parameter values must be a JSON boolean, integer, number or null, got {kind}",
        {"kind": type(value).__name__},
    )


ParamValueIn = Annotated[StrictBool | StrictInt | StrictFloat | None, BeforeValidator(_json_scalar)]
"""A parameter value in a request: JSON bool, integer or number; ``null`` removes it."""
ParamValueOut = StrictBool | StrictInt | StrictFloat
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Author = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Reason = Annotated[str, StringConstraints(max_length=500)]
SymbolIn = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_SYMBOL_LENGTH, pattern=INPUT_PATTERN
    ),
]
"""A symbol in a request body: the one symbol rule (:mod:`domain.symbol`) before upper-casing."""


# --- envelope ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One field-level problem."""

    field: str = Field(description="Parameter or request field (``__root__``: cross-field).")
    code: str = Field(
        description="unknown_parameter | wrong_type | out_of_range | cross_field | "
        "not_a_value | missing | ... (pydantic types for malformed requests)"
    )
    message: str
    location: list[str] | None = Field(
        None, description="Full location of a request validation error (body/query/path...)."
    )


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable error code.", examples=["validation_error"])
    message: str
    details: Any = Field(None, description="Field-level details (list) or context (object).")


class Envelope(BaseModel, Generic[T]):
    """Every configuration-API response: ``success``, ``data``, ``error``, ``metadata``."""

    success: bool
    data: T | None = None
    error: ErrorInfo | None = None
    metadata: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """An error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "success": False,
                "data": None,
                "error": {
                    "code": "validation_error",
                    "message": "parameters are invalid",
                    "details": [
                        {
                            "field": "buy_threshold",
                            "code": "out_of_range",
                            "message": "buy_threshold=5.0 is outside [1.0, 3.0]",
                        }
                    ],
                },
                "metadata": {"request_id": "0f9c2a4e5b6d4c1e9a7b3c2d1e0f9a8b"},
            }
        }
    )

    success: Literal[False] = False
    data: None = None
    error: ErrorInfo
    metadata: dict[str, Any] | None = None


# --- requests ---------------------------------------------------------------------------------


class ConfigUpdateRequest(BaseModel):
    """Body of ``POST .../config`` and ``POST .../config/{symbol}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "parameters": {"buy_threshold": 1.3, "top_levels": 10},
                "changed_by": "llm_agent_v1",
                "reason": "Thin books this week: require a stronger skew",
                "validate_only": False,
            }
        },
    )

    parameters: dict[ParamName, ParamValueIn] = Field(
        max_length=MAX_PARAMETERS,
        description="Parameters to merge into the layer; ``null`` removes one from the layer "
        "(it then inherits from the layers below).",
    )
    changed_by: Author = Field(description="Who makes the change (person or agent id).")
    reason: Reason = Field("", description="Why; kept in the audit trail.")
    validate_only: StrictBool = Field(
        False, description="Dry run: validate and return the would-be config, write nothing."
    )


class RollbackRequest(BaseModel):
    """Body of ``POST /strategies/{id}/rollback``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "to_version": 3,
                "symbol": None,
                "changed_by": "operator@desk",
                "reason": "Version 4 flooded the trade engine",
            }
        },
    )

    to_version: StrictInt | None = Field(
        None,
        ge=1,
        description="Restore the layer as it was right after this version's change; ``null`` "
        "undoes the latest change of the layer.",
    )
    symbol: SymbolIn | None = Field(
        None, description="Symbol override to roll back; omit for the global config."
    )
    changed_by: Author
    reason: Reason = ""


class PauseRequest(BaseModel):
    """Body of ``POST /api/v1/signals/pause`` and ``.../resume``: neither ``strategy_id`` nor
    ``symbol`` means every signal; either narrows the pause."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "strategy_id": "trade_momentum",
                "changed_by": "operator@desk",
                "reason": "Exchange incident: hold momentum signals",
            }
        },
    )

    strategy_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="Only this strategy's signals (422 if no such strategy)."
    )
    symbol: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="Only this symbol's signals (1-32 letters and digits; any case)."
    )
    changed_by: Author = Field(description="Who pauses or resumes (person or agent id).")
    reason: Reason = Field(description="Why; kept in the audit trail.")


# --- responses --------------------------------------------------------------------------------


class StrategyOut(BaseModel):
    strategy_id: str = Field(examples=["orderbook_skew"])
    name: str = Field(examples=["Order Book Skew"])
    description: str
    has_global_config: bool
    symbol_overrides: list[str] = Field(examples=[["BTCUSDT"]])
    parameter_count: int
    enabled: bool = Field(description="Effective ``enabled`` of the global config.")
    version: int = Field(description="Effective version of the global config (0: defaults).")


class ParamSpecOut(BaseModel):
    name: str = Field(examples=["buy_threshold"])
    type: Literal["bool", "int", "float"]
    description: str
    default: ParamValueOut
    min: int | float | None = Field(default=None, description="Integer for an int parameter.")
    max: int | float | None = Field(default=None, description="Integer for an int parameter.")
    example: ParamValueOut


_CONFIG_EXAMPLE: dict[str, Any] = {
    "strategy_id": "orderbook_skew",
    "symbol": "BTCUSDT",
    "parameters": {"buy_threshold": 1.3},
    "effective": {"enabled": True, "buy_threshold": 1.3, "top_levels": 5},
    "version": 4,
    "source": "mongodb",
    "is_override": True,
    "exists": True,
    "layer_version": 4,
    "updated_at": "2025-10-17T14:45:00Z",
    "updated_by": "llm_agent_v1",
}
"""A symbol override as the API shows it (the examples of the config schemas)."""


class ConfigOut(BaseModel):
    """A configuration layer and the effective configuration it results in."""

    model_config = ConfigDict(json_schema_extra={"example": _CONFIG_EXAMPLE})

    strategy_id: str
    symbol: str | None = Field(description="None for the global config.")
    parameters: dict[str, ParamValueOut] = Field(
        description="The layer as stored (empty when ``exists`` is false)."
    )
    effective: dict[str, ParamValueOut] = Field(
        description="Every parameter the strategy runs with: defaults → environment → global "
        "→ symbol override, merged field by field."
    )
    version: int = Field(description="Effective version, as carried by signals.")
    source: str = Field(description="default, environment, mongodb, mysql, sqlite or memory.")
    is_override: bool
    exists: bool = Field(description="Whether this layer is stored (not absent or deleted).")
    layer_version: int = Field(description="Version of the last write to this layer (0: never).")
    updated_at: datetime | None = None
    updated_by: str | None = None


class WriteMetadata(BaseModel):
    action: Literal["created", "updated", "deleted", "rolled_back", "validated"]
    changes_applied: bool
    previous_parameters: dict[str, ParamValueOut] | None = Field(
        None, description="The layer before the write (None: it did not exist)."
    )


class ConfigWriteEnvelope(BaseModel):
    """Answer to a write: the resulting (or, for a dry run, would-be) configuration."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "success": True,
                "data": {
                    **_CONFIG_EXAMPLE,
                    "symbol": None,
                    "version": 3,
                    "is_override": False,
                    "layer_version": 3,
                },
                "error": None,
                "metadata": {
                    "action": "updated",
                    "changes_applied": True,
                    "previous_parameters": {"buy_threshold": 1.2},
                },
            }
        }
    )

    success: bool = True
    data: ConfigOut
    error: None = None
    metadata: WriteMetadata


class AuditOut(BaseModel):
    id: str = Field(description="``<strategy_id>:<version>``, unique per change.")
    strategy_id: str
    symbol: str | None
    action: Literal["CREATE", "UPDATE", "DELETE", "ROLLBACK", "PAUSE", "RESUME"]
    version: int
    old_parameters: dict[str, ParamValueOut] | None
    new_parameters: dict[str, ParamValueOut] | None
    changed_by: str
    changed_at: datetime
    reason: str


class PauseOut(BaseModel):
    strategy_id: str | None = Field(description="``null``: every strategy.")
    symbol: str | None = Field(description="``null``: every symbol.")
    active: bool
    version: int = Field(
        description="Version of the pause's sequence (the paused strategy's, or ``*``'s); its "
        "audit record is ``<strategy or *>:<version>``."
    )
    updated_at: datetime
    updated_by: str
    reason: str


class RefreshOut(BaseModel):
    refreshed: bool
    refreshed_at: datetime | None


# --- market metrics ---------------------------------------------------------------------------
# Documentation models: metrics responses keep the reference's top-level shape
# (``jq '.pressure'`` works as the reference documents) plus the envelope's ``success``,
# ``error`` and ``metadata`` keys. Fields stay open (``extra="allow"``).


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MetricsResponse(_Open):
    success: bool = True
    error: None = None
    metadata: dict[str, Any] | None = None


class ImbalanceOut(_Open):
    bid_volume: float | None
    ask_volume: float | None
    bid_ask_ratio: float | None
    imbalance: float
    imbalance_percent: float


class PressureOut(_Open):
    buy_pressure: float = Field(examples=[65.5])
    sell_pressure: float = Field(examples=[34.5])
    net_pressure: float = Field(examples=[31.0])
    interpretation: Literal["bullish", "bearish", "neutral"]


class SideDepthOut(_Open):
    bid: float | None
    ask: float | None
    total: float | None


class LiquidityOut(_Open):
    total_liquidity: float | None = Field(description="B + A, base units.")
    total_liquidity_quote: float | None = Field(description="Σ price·qty, quote units.")
    depth_top5: SideDepthOut
    depth_top10: SideDepthOut
    vwap_bid: float | None
    vwap_ask: float | None


class SpreadOut(_Open):
    best_bid: float | None
    best_ask: float | None
    mid: float | None
    spread: float | None
    spread_bps: float | None


class PriceLevelOut(_Open):
    price: float
    quantity: float


class LevelsOut(_Open):
    bid_levels: int
    ask_levels: int
    strongest_support: PriceLevelOut | None
    strongest_resistance: PriceLevelOut | None


class DepthMetricsOut(_Open):
    symbol: str = Field(examples=["BTCUSDT"])
    event_time_ms: int
    imbalance: ImbalanceOut
    pressure: PressureOut
    liquidity: LiquidityOut
    spread: SpreadOut
    levels: LevelsOut


class DepthResponse(MetricsResponse, DepthMetricsOut):
    """``GET /metrics/depth/{symbol}``."""


class PressureSummaryOut(_Open):
    count: int
    avg_pressure: float = Field(description="Average net pressure (alias of avg_net_pressure).")
    avg_net_pressure: float
    min_net_pressure: float
    max_net_pressure: float
    avg_buy_pressure: float
    avg_sell_pressure: float
    trend: Literal["bullish", "bearish", "neutral"]
    trend_strength: float = Field(ge=0.0, le=1.0)
    slope_per_minute: float
    first_time_ms: int
    last_time_ms: int
    span_seconds: float


class PressurePointOut(_Open):
    event_time_ms: int
    buy_pressure: float
    sell_pressure: float
    net_pressure: float


class PressureResponse(MetricsResponse):
    """``GET /metrics/pressure/{symbol}``."""

    symbol: str
    timeframe: Literal["1m", "5m", "15m", "1h"]
    window_start_ms: int
    window_end_ms: int
    summary: PressureSummaryOut
    points: list[PressurePointOut]
    history_seconds: int


class SentimentOut(_Open):
    bullish_symbols: int = Field(examples=[28])
    bearish_symbols: int = Field(examples=[12])
    neutral_symbols: int = Field(examples=[5])
    avg_net_pressure: float | None = Field(examples=[15.5])
    sentiment: Literal["bullish", "bearish", "neutral"] | None


class SymbolPressureOut(_Open):
    symbol: str
    net_pressure: float


class SummaryResponse(MetricsResponse):
    """``GET /metrics/summary``."""

    market_sentiment: SentimentOut
    symbols: int
    most_bullish: SymbolPressureOut | None
    most_bearish: SymbolPressureOut | None
    latest_event_time_ms: int | None
    stale_events: int
    evicted_symbols: int


class AllMetricsResponse(MetricsResponse):
    """``GET /metrics/all``."""

    total: int
    offset: int
    limit: int
    count: int
    items: list[DepthMetricsOut]
    sort_by: str
    descending: bool


# --- health -----------------------------------------------------------------------------------


class LivenessOut(_Open):
    status: str = Field(examples=["alive"])


class ReadinessOut(_Open):
    status: Literal["ready", "not_ready"]
    components: dict[str, Any] = Field(
        description="Per component (nats, config stores, feed): ready, degraded, detail."
    )
    reasons: list[str] | None = Field(None, description="Why each not-ready component is not.")
