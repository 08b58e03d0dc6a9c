"""One test signal, built the same way wherever a test needs a plain valid one."""

from __future__ import annotations

from typing import Any

from domain.signal import Action, ConfigStamp, Signal


def a_signal(**changes: Any) -> Signal:
    """A valid BTCUSDT buy at 100.0 (stop 99.0, take profit 101.5, quantity 1.0) of
    ``orderbook_skew`` on the default configuration; ``changes`` replace any field."""
    fields: dict[str, Any] = {
        "signal_id": "s1",
        "strategy_id": "orderbook_skew",
        "symbol": "BTCUSDT",
        "action": Action.BUY,
        "confidence": 0.8,
        "price": 100.0,
        "quantity": 1.0,
        "current_price": 100.0,
        "stop_loss": 99.0,
        "take_profit": 101.5,
        "event_time_ms": 1,
        "config": ConfigStamp(1, {}, "default", False),
    }
    fields.update(changes)
    return Signal(**fields)
