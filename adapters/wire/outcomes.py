"""Outcome records as JSON-ready documents (the stores' format and the API's ``outcome``).

One document per signal::

    {signal_id, strategy_id, symbol, action, config_version, signal_time_ms, price,
     recorded_at_ms, payload: {trade-engine signal JSON},
     horizons: {"1m": {price, gross_bps, net_bps, hit}, ...},
     trade: null | {entry_time_ms, entry_price, exit_time_ms, exit_price, exit_reason,
                    notional_usdt, gross_bps, net_bps, net_usdt, win},
     trade_unfilled, complete}

:func:`outcome_from_document` is the inverse; it raises ``ValueError`` on a document that
is not one (a store holding something else is reported, never served half-read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.live_outcomes import HorizonResult, OutcomeRecord
from domain.signal import Action, JsonValue
from domain.trade_model import ClosedTrade, ExitReason


def horizons_document(record: OutcomeRecord) -> dict[str, JsonValue]:
    return {
        label: {
            "price": result.price,
            "gross_bps": result.gross_bps,
            "net_bps": result.net_bps,
            "hit": result.is_hit,
        }
        for label, result in record.horizons.items()
    }


def trade_document(trade: ClosedTrade | None) -> dict[str, JsonValue] | None:
    if trade is None:
        return None
    return {
        "entry_time_ms": trade.entry_time_ms,
        "entry_price": trade.entry_price,
        "exit_time_ms": trade.exit_time_ms,
        "exit_price": trade.exit_price,
        "exit_reason": trade.exit_reason.value,
        "notional_usdt": trade.notional_usdt,
        "gross_bps": trade.gross_bps,
        "net_bps": trade.net_bps,
        "net_usdt": trade.net_usdt,
        "win": trade.is_win,
    }


def outcome_document(record: OutcomeRecord) -> dict[str, JsonValue]:
    """The outcome part alone (the API's ``outcome`` of a signal)."""
    return {
        "horizons": horizons_document(record),
        "trade": trade_document(record.trade),
        "trade_unfilled": record.trade_unfilled,
        "complete": record.complete,
    }


def signal_fields(record: OutcomeRecord) -> dict[str, JsonValue]:
    """What identifies the record's signal: id, strategy, symbol, action, config version and
    signal time (the start of the store's document and of the API's recent signal)."""
    return {
        "signal_id": record.signal_id,
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "action": record.action.value,
        "config_version": record.config_version,
        "signal_time_ms": record.signal_time_ms,
    }


def outcome_to_document(record: OutcomeRecord) -> dict[str, JsonValue]:
    return {
        **signal_fields(record),
        "price": record.price,
        "recorded_at_ms": record.recorded_at_ms,
        "payload": dict(record.payload),
        **outcome_document(record),
    }


def _signal_fields_from(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`signal_fields`: the typed identity of a document's signal."""
    return {
        "signal_id": str(raw["signal_id"]),
        "strategy_id": str(raw["strategy_id"]),
        "symbol": str(raw["symbol"]),
        "action": Action(raw["action"]),
        "config_version": int(raw["config_version"]),
        "signal_time_ms": int(raw["signal_time_ms"]),
    }


def _trade_from(raw: Mapping[str, Any], signal: Mapping[str, Any]) -> ClosedTrade:
    return ClosedTrade(
        **signal,
        entry_time_ms=int(raw["entry_time_ms"]),
        entry_price=float(raw["entry_price"]),
        exit_time_ms=int(raw["exit_time_ms"]),
        exit_price=float(raw["exit_price"]),
        exit_reason=ExitReason(raw["exit_reason"]),
        notional_usdt=float(raw["notional_usdt"]),
        gross_bps=float(raw["gross_bps"]),
        net_bps=float(raw["net_bps"]),
    )


def outcome_from_document(raw: Mapping[str, Any]) -> OutcomeRecord:
    try:
        horizons = {
            str(label): HorizonResult(
                str(label), float(h["price"]), float(h["gross_bps"]), float(h["net_bps"])
            )
            for label, h in dict(raw.get("horizons") or {}).items()
        }
        trade_raw = raw.get("trade")
        payload = raw.get("payload") or {}
        if not isinstance(payload, Mapping):
            raise TypeError("payload is not an object")
        signal = _signal_fields_from(raw)
        return OutcomeRecord(
            **signal,
            price=float(raw["price"]),
            recorded_at_ms=int(raw["recorded_at_ms"]),
            payload=dict(payload),
            horizons=horizons,
            trade=None if trade_raw is None else _trade_from(trade_raw, signal),
            trade_unfilled=bool(raw.get("trade_unfilled", False)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not an outcome record: {error!r}") from error
