"""Strategy parameters: typed, bounded, documented, and validated as a whole.

Each strategy declares one frozen dataclass of parameters (subclassing ``CommonParams``);
its fields are declared with :func:`param`, which records default, bounds and description.
The schema served by the API (``GET /strategies/{id}/schema``) is generated from it, and
every configuration write is validated through :meth:`StrategyParams.from_mapping`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, cast

ParamValue = bool | int | float
ParamType = Literal["bool", "int", "float"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """Schema of one parameter: what the API publishes and validation enforces."""

    name: str
    type: ParamType
    default: ParamValue
    min: float | None
    max: float | None
    description: str

    def as_dict(self) -> dict[str, object]:
        """The published schema; an int parameter's bounds are integers."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min": self._bound(self.min),
            "max": self._bound(self.max),
            "description": self.description,
        }

    def _bound(self, bound: float | None) -> ParamValue | None:
        if bound is not None and self.type == "int" and float(bound).is_integer():
            return int(bound)
        return bound


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure, attributable to a field (or ``"__root__"`` for cross-field)."""

    field: str
    code: str  # unknown_parameter | wrong_type | out_of_range | cross_field | not_a_value
    message: str


class ParamValidationError(ValueError):
    """Raised when a parameter set is invalid; carries every field-level error at once."""

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


def param(
    default: ParamValue,
    *,
    description: str,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """Declare a parameter field: its type is that of ``default`` (bool, int or float)."""
    kind: ParamType
    if isinstance(default, bool):
        kind = "bool"
    elif isinstance(default, int):
        kind = "int"
    else:
        kind = "float"
    return dataclasses.field(
        default=default,
        metadata={"type": kind, "min": min, "max": max, "description": description},
    )


def _type_error(spec: ParamSpec, value: object) -> FieldError | None:
    if spec.type == "bool":
        ok = isinstance(value, bool)
    elif spec.type == "int":
        # An integral float (3.0) is the integer 3, as in the reference's pydantic models.
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and spec.type == "float" and not math.isfinite(float(value)):  # type: ignore[arg-type]
        return FieldError(spec.name, "not_a_value", f"{spec.name} must be a finite number")
    if ok:
        return None
    return FieldError(
        spec.name,
        "wrong_type",
        f"{spec.name} must be of type {spec.type}, got {type(value).__name__}",
    )


def cross_field_error(message: str) -> FieldError:
    """An error of a rule between fields (``__root__``, ``cross_field``)."""
    return FieldError("__root__", "cross_field", message)


def _range_error(spec: ParamSpec, value: ParamValue) -> FieldError | None:
    if spec.type == "bool":
        return None
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return FieldError(
            spec.name,
            "out_of_range",
            f"{spec.name}={value} is outside [{spec.min}, {spec.max}]",
        )
    return None


def coerce(spec: ParamSpec, value: ParamValue) -> ParamValue:
    """A valid value in its parameter's own type: 3 → 3.0 for a float, 3.0 → 3 for an int."""
    if spec.type == "float" and not isinstance(value, bool):
        return float(value)
    if spec.type == "int" and isinstance(value, float):
        return int(value)
    return value


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """Base of every strategy's parameter type: schema generation and validation."""

    strategy_id: ClassVar[str] = ""

    @classmethod
    def schema(cls) -> tuple[ParamSpec, ...]:
        """The parameter schema, in declaration order."""
        cached: tuple[ParamSpec, ...] | None = cls.__dict__.get("_schema_cache")
        if cached is not None:
            return cached
        specs = tuple(
            ParamSpec(
                name=f.name,
                type=f.metadata["type"],
                default=f.default,  # type: ignore[arg-type]
                min=f.metadata["min"],
                max=f.metadata["max"],
                description=f.metadata["description"],
            )
            for f in dataclasses.fields(cls)
        )
        type.__setattr__(cls, "_schema_cache", specs)
        return specs

    def below(self, lower: str, upper: str) -> list[FieldError]:
        """The cross-field error, if any, of the rule "``lower`` is below ``upper``"."""
        low, high = getattr(self, lower), getattr(self, upper)
        if low < high:
            return []
        return [cross_field_error(f"{lower} ({low}) must be below {upper} ({high})")]

    def some_weight(self, *weights: str) -> list[FieldError]:
        """The cross-field error, if any, of the rule "the ``weights`` add up to more than 0"."""
        if sum(getattr(self, name) for name in weights) > 0.0:
            return []
        return [cross_field_error(" + ".join(weights) + " must be > 0")]

    @classmethod
    def spec(cls, name: str) -> ParamSpec | None:
        return next((s for s in cls.schema() if s.name == name), None)

    @classmethod
    def defaults(cls) -> dict[str, ParamValue]:
        return {s.name: s.default for s in cls.schema()}

    @classmethod
    def field_errors(cls, values: Mapping[str, object]) -> list[FieldError]:
        """Per-field errors of a (possibly partial) parameter mapping: unknown, type, range."""
        errors: list[FieldError] = []
        for name, value in values.items():
            spec = cls.spec(name)
            if spec is None:
                errors.append(FieldError(name, "unknown_parameter", f"unknown parameter {name!r}"))
                continue
            type_error = _type_error(spec, value)
            if type_error is not None:
                errors.append(type_error)
                continue
            range_error = _range_error(spec, value)  # type: ignore[arg-type]
            if range_error is not None:
                errors.append(range_error)
        return errors

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Self:
        """Build validated params from defaults overlaid with ``values``.

        Raises :class:`ParamValidationError` with every field-level and cross-field error.
        Integers are accepted for float parameters (and stored as float), integral floats for
        int parameters (stored as int); booleans are never accepted as numbers.
        """
        errors = cls.field_errors(values)
        if errors:
            raise ParamValidationError(errors)
        merged: dict[str, ParamValue] = cls.defaults()
        for name, value in values.items():
            spec = cls.spec(name)
            assert spec is not None
            checked = cast(ParamValue, value)  # field_errors proved its type
            merged[name] = coerce(spec, checked)
        instance = cls(**merged)
        cross = instance.cross_field_errors()
        if cross:
            raise ParamValidationError(cross)
        return instance

    def cross_field_errors(self) -> list[FieldError]:
        """Rules that involve several fields; overridden by strategies that have them."""
        return []

    def to_mapping(self) -> dict[str, ParamValue]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class CommonParams(StrategyParams):
    """Parameters every strategy has, governance included (``domain.governance``).

    A strategy may re-declare one of them to change its default (the market-logic strategies
    set ``cooldown_seconds`` to 0: their ``min_signal_interval`` is the cooldown).
    """

    enabled: bool = param(True, description="Run this strategy and emit its signals.")
    cooldown_seconds: int = param(
        300,
        min=0,
        max=86400,
        description=(
            "No signal of this strategy on a symbol, whatever the action, within this many "
            "event-time seconds of its last one there."
        ),
    )
    reversal_cooldown_seconds: int = param(
        900,
        min=0,
        max=604800,
        description=(
            "No opposite action on a symbol within this many event-time seconds of the last "
            "signal (the effective value is at least the cooldown)."
        ),
    )
    min_confidence: float = param(
        0.6,
        min=0.0,
        max=1.0,
        description="Signals with a lower confidence are suppressed (counted as 'confidence').",
    )
    stop_loss_percent: float = param(
        1.0,
        min=0.1,
        max=20.0,
        description="Stop-loss distance from the entry price, in percent (below for buy).",
    )
    take_profit_percent: float = param(
        1.5,
        min=0.1,
        max=50.0,
        description="Take-profit distance from the entry price, in percent (above for buy).",
    )
    position_notional_usdt: float = param(
        100.0,
        min=1.0,
        max=1_000_000.0,
        description="Order size in quote currency; quantity = notional / price.",
    )

    @property
    def cooldown_ms(self) -> int:
        """Minimum event-time gap between two signals on one symbol, whatever the action:
        the larger of ``cooldown_seconds`` and ``min_signal_interval`` (when it has one)."""
        interval = getattr(self, "min_signal_interval", 0)
        return int(max(self.cooldown_seconds, interval) * 1000)

    @property
    def reversal_ms(self) -> int:
        """Minimum event-time gap before the opposite action: at least the cooldown."""
        return max(self.reversal_cooldown_seconds * 1000, self.cooldown_ms)


def parse_text(spec: ParamSpec, text: str) -> ParamValue:
    """Parse a parameter from text (environment variables, CLI ``--set``), typed by ``spec``.

    Raises :class:`ParamValidationError` naming the parameter when the text does not parse.
    """
    raw = text.strip()
    try:
        if spec.type == "bool":
            lowered = raw.lower()
            if lowered in {"true", "1", "yes", "on"}:
                return True
            if lowered in {"false", "0", "no", "off"}:
                return False
            raise ValueError(raw)
        if spec.type == "int":
            return int(raw)
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    except ValueError:
        raise ParamValidationError(
            [
                FieldError(
                    spec.name, "wrong_type", f"{spec.name}: cannot read {text!r} as {spec.type}"
                )
            ]
        ) from None
