"""Use case: query market metrics (depth, pressure history, market summary, all symbols).

Validates what an API caller sends, looks symbols up case-insensitively and returns
JSON-ready dicts. The HTTP adapter maps :class:`UnknownSymbolError` to 404 and
:class:`InvalidQueryError` (including :class:`InvalidTimeframeError`) to 422.

In the partitioned deployment every worker holds the book of its own symbols;
:func:`merge_pages` and :func:`merge_summaries` combine the workers' answers of
:meth:`MarketMetricsQuery.all` and :meth:`MarketMetricsQuery.summary` into what one book over
all their symbols answers (the proxy in ``adapters/http/partition_api.py`` only does HTTP).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.metrics import (
    DEFAULT_MAX_POINTS,
    Interpretation,
    MarketMetricsBook,
    MarketSummary,
    SortField,
    Timeframe,
    in_page_order,
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


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Which page of every symbol's metrics a caller asks for (:meth:`MarketMetricsQuery.all`),
    checked by :meth:`of`."""

    sort_by: SortField
    descending: bool
    offset: int
    limit: int

    @classmethod
    def of(cls, sort_by: str, descending: bool, offset: int, limit: int) -> PageQuery:
        """:class:`InvalidQueryError` unless ``sort_by`` is one of :data:`SORT_FIELDS`,
        ``offset`` ≥ 0 and ``limit`` in 1..:data:`MAX_LIMIT`."""
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
        return cls(field, descending, offset, limit)

    @property
    def worker_pages(self) -> tuple[tuple[int, int], ...]:
        """The ``(offset, limit)`` pages to ask each worker for, in order, so that
        :func:`merge_pages` holds this page: every worker's first ``offset + limit`` items,
        in pages of at most :data:`MAX_LIMIT` (a worker whose total is reached needs no
        more)."""
        end = self.offset + self.limit
        return tuple((start, min(MAX_LIMIT, end - start)) for start in range(0, end, MAX_LIMIT))


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
        return _with_counters(
            self.book.summary().as_dict(), self.book.stale_events, self.book.evicted_symbols
        )

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
        query = PageQuery.of(sort_by, descending, offset, limit)
        page = self.book.all(
            interpretation=wanted,
            min_liquidity=min_liquidity,
            sort_by=query.sort_by,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        return _page_answer(page.as_dict(), query)


def _page_answer(page: dict[str, Any], query: PageQuery) -> dict[str, Any]:
    return page | {"sort_by": query.sort_by.value, "descending": query.descending}


def merge_pages(pages: Sequence[Mapping[str, Any]], query: PageQuery) -> dict[str, Any]:
    """The :meth:`MarketMetricsQuery.all` answer of one book over the workers' symbols, from
    the workers' answers (each worker's first ``offset + limit`` items, from
    :attr:`PageQuery.worker_pages`, same filters): their items in
    :func:`domain.metrics.in_page_order`, ``total`` their totals."""
    items = in_page_order(
        (item for page in pages for item in page.get("items", [])),
        query.sort_by,
        query.descending,
        lambda item: str(item.get("symbol")),
        query.sort_by.value_in,
    )
    chosen = items[query.offset : query.offset + query.limit]
    page = {
        "total": sum(int(page.get("total", 0)) for page in pages),
        "offset": query.offset,
        "limit": query.limit,
        "count": len(chosen),
        "items": chosen,
    }
    return _page_answer(page, query)


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The :meth:`MarketMetricsQuery.summary` answer of one book over the workers' symbols,
    from the workers' answers (:meth:`domain.metrics.MarketSummary.combine`; the book
    counters add)."""
    combined = MarketSummary.combine(MarketSummary.from_dict(s) for s in summaries)
    return _with_counters(
        combined.as_dict(),
        sum(int(s.get("stale_events", 0)) for s in summaries),
        sum(int(s.get("evicted_symbols", 0)) for s in summaries),
    )


def _with_counters(summary: dict[str, Any], stale: int, evicted: int) -> dict[str, Any]:
    return summary | {"stale_events": stale, "evicted_symbols": evicted}
