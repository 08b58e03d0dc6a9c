"""Use case: query market metrics (depth, pressure history, market summary, all symbols).

Validates what an API caller sends, looks symbols up case-insensitively and returns
JSON-ready dicts. The HTTP adapter maps :class:`UnknownSymbolError` to 404 and
:class:`InvalidQueryError` (including :class:`InvalidTimeframeError`) to 422.
"""

from __future__ import annotations

import math
from typing import Any

from domain.metrics import (
    DEFAULT_MAX_POINTS,
    Interpretation,
    MarketMetricsBook,
    SortField,
    Timeframe,
)
from domain.symbol import normalise

MAX_LIMIT = 1000
"""Largest page size :meth:`MarketMetricsQuery.all` accepts."""
MAX_POINTS_LIMIT = 5000
"""Largest ``max_points`` :meth:`MarketMetricsQuery.pressure` accepts."""

TIMEFRAMES = tuple(tf.value for tf in Timeframe)
SORT_FIELDS = tuple(field.value for field in SortField)
INTERPRETATIONS = tuple(i.value for i in Interpretation)


class UnknownSymbolError(LookupError):
    """No depth snapshot has been seen for the symbol (HTTP 404)."""

    def __init__(self, symbol: str) -> None:
        super().__init__(f"no market metrics for symbol {symbol!r}")
        self.symbol = symbol


class InvalidQueryError(ValueError):
    """A query parameter is invalid (HTTP 422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidTimeframeError(InvalidQueryError):
    """The timeframe is not one of 1m, 5m, 15m, 1h (HTTP 422)."""

    def __init__(self, timeframe: object) -> None:
        super().__init__("timeframe", f"must be one of {', '.join(TIMEFRAMES)}, got {timeframe!r}")
        self.timeframe = timeframe


def parse_timeframe(timeframe: str) -> Timeframe:
    """``"5m"`` → :attr:`Timeframe.M5` (surrounding blanks ignored, case-insensitive)."""
    try:
        return Timeframe(timeframe.strip().lower())
    except (ValueError, AttributeError):
        raise InvalidTimeframeError(timeframe) from None


class MarketMetricsQuery:
    """Read side of the metrics API over a :class:`MarketMetricsBook`."""

    def __init__(self, book: MarketMetricsBook) -> None:
        self.book = book

    def depth(self, symbol: str) -> dict[str, Any]:
        """Metrics of the symbol's latest snapshot; :class:`UnknownSymbolError` if none."""
        key = normalise(symbol)
        metrics = self.book.depth(key)
        if metrics is None:
            raise UnknownSymbolError(key)
        return metrics.as_dict()

    def pressure(
        self, symbol: str, timeframe: str = "5m", max_points: int = DEFAULT_MAX_POINTS
    ) -> dict[str, Any]:
        """Pressure history over ``timeframe`` back from the symbol's latest event time.

        The timeframe is validated before the symbol is looked up, so a bad timeframe is
        422 even for an unknown symbol.
        """
        frame = parse_timeframe(timeframe)
        if isinstance(max_points, bool) or not 1 <= max_points <= MAX_POINTS_LIMIT:
            raise InvalidQueryError(
                "max_points", f"must be an integer in 1..{MAX_POINTS_LIMIT}, got {max_points!r}"
            )
        key = normalise(symbol)
        series = self.book.pressure(key, frame, max_points)
        if series is None:
            raise UnknownSymbolError(key)
        result = series.as_dict()
        result["history_seconds"] = self.book.history_seconds
        return result

    def summary(self) -> dict[str, Any]:
        """Market sentiment across every tracked symbol, plus book counters."""
        result = self.book.summary().as_dict()
        result["stale_events"] = self.book.stale_events
        result["evicted_symbols"] = self.book.evicted_symbols
        return result

    def all(
        self,
        interpretation: str | None = None,
        min_liquidity: float | None = None,
        sort_by: str = "symbol",
        descending: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """A filtered, sorted page of every symbol's depth metrics.

        ``interpretation``: bullish|bearish|neutral; ``min_liquidity``: minimum
        ``total_liquidity_quote`` (quote units); ``sort_by``: one of :data:`SORT_FIELDS`;
        ``offset`` ≥ 0; ``limit`` in 1..:data:`MAX_LIMIT`.
        """
        wanted: Interpretation | None = None
        if interpretation is not None:
            try:
                wanted = Interpretation(interpretation.strip().lower())
            except ValueError:
                raise InvalidQueryError(
                    "interpretation",
                    f"must be one of {', '.join(INTERPRETATIONS)}, got {interpretation!r}",
                ) from None
        if min_liquidity is not None and (
            isinstance(min_liquidity, bool)
            or not math.isfinite(min_liquidity)
            or min_liquidity < 0.0
        ):
            raise InvalidQueryError(
                "min_liquidity", f"must be a finite number >= 0, got {min_liquidity!r}"
            )
        try:
            field = SortField(sort_by.strip().lower())
        except ValueError:
            raise InvalidQueryError(
                "sort_by", f"must be one of {', '.join(SORT_FIELDS)}, got {sort_by!r}"
            ) from None
        if isinstance(offset, bool) or offset < 0:
            raise InvalidQueryError("offset", f"must be an integer >= 0, got {offset!r}")
        if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidQueryError("limit", f"must be an integer in 1..{MAX_LIMIT}, got {limit!r}")
        page = self.book.all(
            interpretation=wanted,
            min_liquidity=min_liquidity,
            sort_by=field,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        result = page.as_dict()
        result["sort_by"] = field.value
        result["descending"] = descending
        return result
