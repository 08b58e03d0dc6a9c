"""Errors raised by the use cases (mapped to HTTP statuses by the API adapter).

- :class:`UnknownStrategyError` → 404: no strategy with that id is registered.
- :class:`ConfigNotFoundError` → 404: the configuration layer (or audit version) asked for
  does not exist.
- :class:`PauseNotFoundError` → 404: no active pause to resume with that target.

- :class:`WritesOverloadedError` → 429 with ``Retry-After``: the bounded write queue is full.

Validation errors are :class:`domain.params.ParamValidationError` (→ 422) and store outages
are :class:`application.ports.StoreUnavailableError` (→ 503); they are not re-exported here.
"""

from __future__ import annotations


class UnknownStrategyError(LookupError):
    """No strategy with this id is registered."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        super().__init__(f"unknown strategy {strategy_id!r}")


class ConfigNotFoundError(LookupError):
    """The requested configuration layer, or the audit version to roll back to, is absent."""

    def __init__(self, strategy_id: str, symbol: str | None, detail: str) -> None:
        self.strategy_id = strategy_id
        self.symbol = symbol
        self.detail = detail
        layer = "global config" if symbol is None else f"config override for {symbol}"
        super().__init__(f"{strategy_id}: {layer}: {detail}")


class PauseNotFoundError(LookupError):
    """No active signal pause has this target (``strategy_id``/``symbol``, None = every)."""

    def __init__(self, strategy_id: str | None, symbol: str | None) -> None:
        self.strategy_id = strategy_id
        self.symbol = symbol
        super().__init__(f"no active pause of {strategy_id or '*'}/{symbol or '*'}")


class WritesOverloadedError(Exception):
    """Too many configuration writes are running or queued; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many concurrent configuration writes; retry in {retry_after_s} s")
