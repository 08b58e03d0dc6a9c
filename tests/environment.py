"""Environment settings that several test set-ups give the service alike."""

from __future__ import annotations

from domain.strategies.registry import STRATEGIES

NO_CONFIDENCE_FLOOR: dict[str, str] = {
    f"{strategy_id.upper()}_MIN_CONFIDENCE": "0" for strategy_id in STRATEGIES
}
"""Every strategy's ``min_confidence`` at 0: no signal is held back for its confidence."""
