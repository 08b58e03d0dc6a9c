"""The codec's trusted builders make ordinary, frozen domain events."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.wire import binance
from domain.market import DepthSnapshot, Trade

pytestmark = pytest.mark.unit


def test_built_events_are_the_domain_types_and_stay_frozen() -> None:
    trade = binance._make_trade("BTCUSDT", 1, 2, 3.0, 4.0, True)
    depth = binance._make_depth("BTCUSDT", 5, ((1.0, 2.0),), ((3.0, 4.0),))
    assert type(trade) is Trade
    assert type(depth) is DepthSnapshot
    assert trade == Trade("BTCUSDT", 1, 2, 3.0, 4.0, True)
    assert hash(trade) == hash(Trade("BTCUSDT", 1, 2, 3.0, 4.0, True))
    assert depth == DepthSnapshot("BTCUSDT", 5, ((1.0, 2.0),), ((3.0, 4.0),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        trade.price = 9.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        depth.bids = ()  # type: ignore[misc]
    assert dataclasses.replace(trade, price=5.0).price == 5.0
