"""The metrics book's recency order (which symbol is evicted) matches a plain LRU."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market import DepthSnapshot
from domain.metrics import MarketMetricsBook

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(
    updates=st.lists(
        st.tuples(st.sampled_from(["AUSDT", "BUSDT", "CUSDT", "DUSDT"]), st.integers(0, 5)),
        max_size=60,
    ),
    max_symbols=st.integers(1, 3),
)
def test_eviction_follows_the_least_recently_updated_symbol(
    updates: list[tuple[str, int]], max_symbols: int
) -> None:
    book = MarketMetricsBook(max_symbols=max_symbols)
    reference: OrderedDict[str, int] = OrderedDict()  # symbol -> latest time, oldest first
    evicted = 0
    for t, (symbol, back) in enumerate(updates, start=1):
        time_ms = 10 + t - back  # sometimes older than the symbol's latest: stale, ignored
        accepted = book.on_depth(DepthSnapshot(symbol, time_ms, ((1.0, 1.0),), ((2.0, 1.0),)))
        latest = reference.get(symbol)
        if latest is None:
            if len(reference) >= max_symbols:
                reference.popitem(last=False)
                evicted += 1
            reference[symbol] = time_ms
        elif time_ms >= latest:
            reference.move_to_end(symbol)
            reference[symbol] = time_ms
        assert accepted == (reference[symbol] == time_ms)
        assert book.symbols() == sorted(reference)
    assert book.evicted_symbols == evicted
