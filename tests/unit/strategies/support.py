"""Scaffolding shared by the per-strategy test modules.

Every strategy is exercised the same way: alone (``run`` feeds events straight to
``on_event``, ``offer_each`` asks ``config_symbol`` too), through a
:class:`~domain.engine.SignalEngine` whose configuration lookup is the real
:func:`domain.config.resolve` over in-memory documents (``engine_with``, ``config_doc``),
against its parameter schema (``schema_table``, ``COMMON_SCHEMA``,
``assert_schema_documented``, ``rejection``, ``assert_one_cross_field_error``), and by
properties over any in-range parameters (``params_from_schema``, ``property_settings``,
``assert_decision_in_bounds``).

Only what is the same for every strategy lives here; event builders and expectations
specific to one strategy stay in its module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from domain.config import ConfigDocument, EffectiveConfig, resolve
from domain.engine import SignalEngine
from domain.governance import Governance, GovernanceParams
from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    ExchangeFlow,
    FlowDirection,
    MarketEvent,
    Ticker,
    Trade,
    VenueQuote,
    WhaleTransfer,
)
from domain.params import CommonParams, FieldError, ParamValidationError, ParamValue
from domain.strategies.base import Decision, Held, Strategy

P = TypeVar("P", bound=CommonParams)

SpecRow = tuple[str, ParamValue, float | None, float | None]
"""One schema entry as ``schema_table`` shows it: (type, default, min, max)."""

COMMON_SCHEMA: dict[str, SpecRow] = {
    "enabled": ("bool", True, None, None),
    "reversal_cooldown_seconds": ("int", 900, 0, 604800),
    "min_confidence": ("float", 0.6, 0.0, 1.0),
    "stop_loss_percent": ("float", 1.0, 0.1, 20.0),
    "take_profit_percent": ("float", 1.5, 0.1, 50.0),
    "position_notional_usdt": ("float", 100.0, 1.0, 1_000_000.0),
}
"""The rows every strategy inherits from :class:`~domain.params.CommonParams` (each strategy
declares ``cooldown_seconds`` with its default)."""

MAX_CONFIDENCE = 0.95
"""No strategy ever claims more confidence than this."""


# --- events ---------------------------------------------------------------------------------

SAMPLE_TIME_MS = 1_723_161_600_000
"""2024-08-09T00:00:00Z, where the tests' event times start unless a module needs another."""
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
"""Units of event time (milliseconds)."""


def sample_events(symbol: str, t: int = SAMPLE_TIME_MS) -> list[MarketEvent]:
    """One event of every type the domain knows, about ``symbol`` where it has one."""
    asset = symbol.removesuffix("USDT") or "BTC"
    return [
        DepthSnapshot(symbol, t, ((100.0, 1.0),), ((100.5, 1.0),)),
        Trade(symbol, t, 1, 100.0, 1.0, False),
        Ticker(symbol, t, 100.0, 1.0, 1.0, 99.0, 101.0, 98.0, 10.0, 1000.0, 99.9, 100.1),
        DominanceObservation(t, 55.0),
        VenueQuote("kraken", symbol, t, 99.0, 99.5),
        WhaleTransfer(asset, t, 1000.0, FlowDirection.TO_EXCHANGE),
        ExchangeFlow(asset, t, 100.0, 10.0, 3600),
    ]


def trade_at(symbol: str, t: int, price: float, *, taker_sell: bool = False) -> Trade:
    """A trade of 0.5 ``symbol`` at ``price``."""
    return Trade(
        symbol=symbol,
        event_time_ms=t,
        trade_id=1,
        price=price,
        quantity=0.5,
        is_buyer_maker=taker_sell,
    )


def ticker_at(symbol: str, t: int, last: float) -> Ticker:
    """A 24h ticker of ``symbol`` whose last price is ``last``, the rest consistent with it."""
    return Ticker(
        symbol=symbol,
        event_time_ms=t,
        last_price=last,
        price_change=10.0,
        price_change_percent=0.1,
        open_price=last * 0.99,
        high_price=last * 1.01,
        low_price=last * 0.98,
        volume=1_000.0,
        quote_volume=last * 1_000.0,
        best_bid=last * 0.9999,
        best_ask=last * 1.0001,
    )


def depth_at(symbol: str, t: int, bid: float, ask: float) -> DepthSnapshot:
    """A book of ``symbol`` with one level of quantity 1 a side."""
    return DepthSnapshot(symbol=symbol, event_time_ms=t, bids=((bid, 1.0),), asks=((ask, 1.0),))


# --- running a strategy --------------------------------------------------------------------


def run(
    strategy: Strategy[P], events: Iterable[MarketEvent], params: P | None = None
) -> list[Decision | None]:
    """Feed ``events`` to ``strategy.on_event`` in order; one decision (or None) per event.

    ``params`` defaults to the strategy's default parameters. A decision the strategy holds
    back itself (hysteresis: a :data:`~domain.strategies.base.Held` reason) is None here.
    """
    p = params if params is not None else cast(P, ungoverned(strategy.params_type))
    return [_decision(strategy.on_event(e, p)) for e in events]


def judged_alone(params_type: type[P]) -> P:
    """The defaults of ``params_type`` without hysteresis: each event judged on its own
    (hysteresis is tested in ``tests/unit/test_governance.py``)."""
    return params_type.from_mapping({"hysteresis": False})


def ungoverned_values(params_type: type[CommonParams]) -> dict[str, ParamValue]:
    """Parameter values that turn the per-strategy governance off: no hysteresis (where the
    strategy has it), no confidence floor. Cooldowns stay at their defaults."""
    values: dict[str, ParamValue] = {"min_confidence": 0.0}
    if params_type.spec("hysteresis") is not None:
        values["hysteresis"] = False
    return values


def ungoverned(params_type: type[P]) -> P:
    """The defaults of ``params_type`` with :func:`ungoverned_values` applied."""
    return params_type.from_mapping(ungoverned_values(params_type))


def _decision(result: Decision | Held | None) -> Decision | None:
    return None if isinstance(result, str) else result


def decide(strategy: Strategy[P], event: MarketEvent, params: P) -> Decision | None:
    """``strategy.on_event(event, params)``, a decision held back (hysteresis) as None."""
    return _decision(strategy.on_event(event, params))


def offer_each(
    strategy: Strategy[P], events: Iterable[MarketEvent], params: P
) -> Iterator[tuple[MarketEvent, Decision | None]]:
    """Ask ``strategy`` about each event in turn, ``config_symbol`` first and then
    ``on_event`` (whatever ``config_symbol`` answered), and yield the event with the decision.

    For properties that both calls never raise, whatever the events.
    """
    for event in events:
        strategy.config_symbol(event)
        yield event, _decision(strategy.on_event(event, params))


# --- configuration and the engine ----------------------------------------------------------


def config_doc(
    strategy_id: str, symbol: str | None, version: int, /, **values: ParamValue
) -> ConfigDocument:
    """A stored layer of ``strategy_id``: the global one (``symbol`` None) or an override."""
    return ConfigDocument(
        strategy_id=strategy_id,
        symbol=symbol,
        parameters=values,
        version=version,
        updated_at=datetime(2024, 8, 1, tzinfo=UTC),
        updated_by="test",
        source="memory",
    )


def engine_with(
    strategy: Strategy[P],
    symbol_docs: Mapping[str, ConfigDocument] | None = None,
    *,
    global_doc: ConfigDocument | None = None,
    governed: bool = False,
) -> SignalEngine:
    """An engine running ``strategy`` alone, its parameters resolved from the given layers.

    ``symbol_docs`` maps a symbol to its override; symbols without one get the global layer
    (if any) over the defaults. Asking for another strategy fails the test. Unless
    ``governed``, :func:`ungoverned_values` replace the resolved values and there are no
    rate caps either.
    """
    params_type = strategy.params_type
    docs = dict(symbol_docs or {})
    loosened = {} if governed else ungoverned_values(params_type)

    def lookup(strategy_id: str, symbol: str) -> EffectiveConfig[CommonParams]:
        assert strategy_id == params_type.strategy_id
        config = resolve(
            params_type, strategy_id, symbol, global_doc=global_doc, symbol_doc=docs.get(symbol)
        )
        if not loosened:
            return config
        loose = dataclasses.replace(config.params, **loosened)  # type: ignore[arg-type]
        return dataclasses.replace(config, params=loose)

    limits = None if governed else GovernanceParams(0, 0)
    return SignalEngine(
        [cast(Strategy[CommonParams], strategy)], lookup, governance=Governance(limits)
    )


def static_config(params: CommonParams, symbol: str = "BTCUSDT") -> EffectiveConfig[CommonParams]:
    """``params`` as an effective configuration, for building signals without the engine."""
    return EffectiveConfig(params.strategy_id, symbol, params, 1, "test", False)


# --- schema and validation -----------------------------------------------------------------


def schema_table(params_type: type[CommonParams]) -> dict[str, SpecRow]:
    """The schema of ``params_type`` as ``{name: (type, default, min, max)}``."""
    return {s.name: (s.type, s.default, s.min, s.max) for s in params_type.schema()}


def assert_schema_documented(params_type: type[CommonParams]) -> None:
    """Every parameter is described and its default is of its declared type."""
    for spec in params_type.schema():
        assert spec.description, spec.name
        assert type(spec.default).__name__ == spec.type, spec.name


def rejection(params_type: type[CommonParams], values: Mapping[str, Any]) -> list[FieldError]:
    """The errors ``params_type.from_mapping(values)`` raises; fails the test if it accepts."""
    with pytest.raises(ParamValidationError) as caught:
        params_type.from_mapping(values)
    return list(caught.value.errors)


def field_codes(errors: Sequence[FieldError]) -> list[tuple[str, str]]:
    """``(field, code)`` of each error, in order."""
    return [(e.field, e.code) for e in errors]


def assert_one_cross_field_error(errors: Sequence[FieldError], mentioning: str) -> None:
    """Exactly one error, a cross-field one whose message names ``mentioning``."""
    assert len(errors) == 1, errors
    (error,) = errors
    assert (error.field, error.code) == ("__root__", "cross_field")
    assert mentioning in error.message


# --- properties ----------------------------------------------------------------------------


def schema_values(params_type: type[CommonParams]) -> st.SearchStrategy[dict[str, Any]]:
    """Every parameter of ``params_type`` drawn anywhere within its schema range."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in params_type.schema():
        if spec.type == "bool":
            fields[spec.name] = st.booleans()
            continue
        assert spec.min is not None
        assert spec.max is not None
        if spec.type == "int":
            fields[spec.name] = st.integers(int(spec.min), int(spec.max))
        else:
            fields[spec.name] = st.floats(spec.min, spec.max)
    return st.fixed_dictionaries(fields)


def params_from_schema(params_type: type[P], *, cross_field_valid: bool) -> st.SearchStrategy[P]:
    """Parameters with every field in range.

    With ``cross_field_valid`` the sets that break a cross-field rule are left out and the
    rest go through validation (``from_mapping``); without it they are built directly, so
    that a strategy is also shown never to crash on a set validation would refuse.
    """
    built = schema_values(params_type).map(lambda values: params_type(**values))
    if not cross_field_valid:
        return built
    valid = built.filter(lambda params: not params.cross_field_errors())
    return valid.map(lambda params: params_type.from_mapping(params.to_mapping()))


def property_settings(max_examples: int, *, slow_generation: bool = False) -> settings:
    """Hypothesis settings of the strategy properties.

    No deadline: one example runs a whole event stream through a strategy, whose time
    varies with the machine. ``slow_generation`` tolerates slow example generation (long
    lists of composite events).
    """
    suppressed = [HealthCheck.too_slow] if slow_generation else []
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=suppressed)


def assert_decision_in_bounds(decision: Decision, *, min_confidence: float = 0.0) -> None:
    """What holds for any decision of any strategy: confidence within
    [``min_confidence``, 0.95] (so within [0, 1]), a positive finite price and finite
    indicators."""
    assert 0.0 <= decision.confidence <= 1.0
    assert min_confidence <= decision.confidence <= MAX_CONFIDENCE
    assert 0.0 < decision.price < math.inf
    assert all(math.isfinite(v) for v in decision.indicators.values())
