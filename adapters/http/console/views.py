"""What the console's templates show, computed from the use cases' answers.

Plain functions from the read models (config views, audit records, metrics dicts) to the
template's values: form fields from a parameter schema, per-change diffs of the audit trail,
and the geometry of the inline SVG charts (no chart library, nothing fetched at run time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.config import AuditRecord
from domain.params import ParamSpec, ParamValue

CHART_WIDTH = 640
CHART_HEIGHT = 200


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of a strategy's configuration form, generated from its schema."""

    name: str
    type: str  # int | float | bool
    value: ParamValue
    default: ParamValue
    min: int | float | None
    max: int | float | None
    description: str
    in_layer: bool

    @property
    def step(self) -> str:
        return "1" if self.type == "int" else "any"

    @property
    def input_value(self) -> str:
        """The value as an ``<input>`` shows it (booleans are checkboxes)."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def _bound(spec: ParamSpec, value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if spec.type == "int" else value


def form_fields(
    specs: Sequence[ParamSpec],
    effective: Mapping[str, ParamValue],
    layer: Mapping[str, ParamValue],
) -> list[FormField]:
    """One field per parameter: the effective value, and whether this layer sets it."""
    return [
        FormField(
            name=spec.name,
            type=spec.type,
            value=effective.get(spec.name, spec.default),
            default=spec.default,
            min=_bound(spec, spec.min),
            max=_bound(spec, spec.max),
            description=spec.description,
            in_layer=spec.name in layer,
        )
        for spec in specs
    ]


@dataclass(frozen=True, slots=True)
class Change:
    """One parameter's difference between two versions of a layer."""

    name: str
    kind: str  # added | removed | changed
    old: ParamValue | None
    new: ParamValue | None


def diff(
    old: Mapping[str, ParamValue] | None, new: Mapping[str, ParamValue] | None
) -> list[Change]:
    """Parameter-level changes from ``old`` to ``new`` (None: the layer did not exist)."""
    before = dict(old or {})
    after = dict(new or {})
    changes: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            changes.append(Change(name, "added", None, after[name]))
        elif name not in after:
            changes.append(Change(name, "removed", before[name], None))
        elif before[name] != after[name]:
            changes.append(Change(name, "changed", before[name], after[name]))
    return changes


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One audit record with its diff, for the timeline."""

    record: AuditRecord
    changes: list[Change]

    @property
    def layer(self) -> str:
        return self.record.symbol or "global"


def timeline(records: Iterable[AuditRecord], limit: int) -> list[TimelineEntry]:
    """Records newest first (ties: higher version first), at most ``limit``, with diffs."""
    ordered = sorted(records, key=lambda r: (_timestamp(r.changed_at), r.version), reverse=True)[
        :limit
    ]
    return [TimelineEntry(r, diff(r.old_parameters, r.new_parameters)) for r in ordered]


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


# --- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One polyline of a chart: its name, CSS class and SVG ``points`` attribute."""

    name: str
    css: str
    points: str


@dataclass(frozen=True, slots=True)
class LineChart:
    """A line chart of pressure over event time, on a −100…100 scale."""

    width: int
    height: int
    series: list[Series]
    zero_y: float
    first_ms: int | None
    last_ms: int | None


def pressure_chart(points: Sequence[Mapping[str, Any]]) -> LineChart:
    """Buy, sell and net pressure of a ``/metrics/pressure`` answer's ``points``."""
    width, height = CHART_WIDTH, CHART_HEIGHT
    times = [int(p["event_time_ms"]) for p in points]
    first = min(times, default=None)
    last = max(times, default=None)
    span = (last - first) if first is not None and last is not None and last > first else 1

    def x(ms: int) -> float:
        return 0.0 if first is None else (ms - first) / span * width

    def y(value: float) -> float:  # −100 at the bottom, +100 at the top
        return (1.0 - (max(-100.0, min(100.0, value)) + 100.0) / 200.0) * height

    def line(key: str) -> str:
        return " ".join(
            f"{x(t):.1f},{y(float(p[key])):.1f}" for t, p in zip(times, points, strict=True)
        )

    series = [
        Series("buy pressure", "buy", line("buy_pressure")),
        Series("sell pressure", "sell", line("sell_pressure")),
        Series("net pressure", "net", line("net_pressure")),
    ]
    return LineChart(width, height, series, y(0.0), first, last)


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar pair of the depth chart: bid and ask quantity at a depth."""

    label: str
    bid: float
    ask: float
    bid_width: float
    ask_width: float


def depth_bars(liquidity: Mapping[str, Any], half_width: float = CHART_WIDTH / 2) -> list[Bar]:
    """Bid against ask quantity in the top 5 and top 10 levels, scaled to the largest."""
    rows = [
        ("top 5", liquidity.get("depth_top5") or {}),
        ("top 10", liquidity.get("depth_top10") or {}),
    ]
    values = [(label, float(d.get("bid") or 0.0), float(d.get("ask") or 0.0)) for label, d in rows]
    scale = max([max(b, a) for _, b, a in values] + [0.0]) or 1.0
    return [
        Bar(label, bid, ask, bid / scale * half_width, ask / scale * half_width)
        for label, bid, ask in values
    ]
