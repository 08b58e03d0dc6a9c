"""The per-second cache of ``iso_to_epoch_ms`` answers like a cold parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wire import binance
from adapters.wire.binance import iso_to_epoch_ms

pytestmark = pytest.mark.unit


def reference(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.lists(st.sampled_from(["", ".1", ".12", ".123", ".1234", ".999999", ".000"]), min_size=2),
)
def test_same_second_again_with_any_fraction(moment: datetime, fractions: list[str]) -> None:
    second = moment.replace(microsecond=0).isoformat()
    for fraction in fractions:  # the first one fills the cache, the others hit it
        text = f"{second}{fraction}Z"
        assert iso_to_epoch_ms(text) == reference(text)
    assert second in binance._second_cache


def test_a_cached_second_with_an_odd_fraction_is_read_like_a_cold_parse() -> None:
    assert iso_to_epoch_ms("2024-08-08T23:54:15.5Z") == 1723161255500
    assert iso_to_epoch_ms("2024-08-08T23:54:15.Z") == reference("2024-08-08T23:54:15.Z")
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError, as fromisoformat raises
        iso_to_epoch_ms("2024-08-08T23:54:15.1xZ")


def test_the_cache_is_bounded() -> None:
    for minute in range(60):
        for second in range(60):
            iso_to_epoch_ms(f"2024-08-08T10:{minute:02d}:{second:02d}.250Z")
    assert len(binance._second_cache) <= binance._MINUTE_CACHE_MAX
