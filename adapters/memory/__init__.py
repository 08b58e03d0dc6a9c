"""In-process adapters: replay feed, signal sink, fixed clock (and the in-memory stores)."""

from adapters.memory.clock import FixedClock
from adapters.memory.replay_feed import ReplayItem, ReplayMarketFeed
from adapters.memory.signal_sink import InMemorySignalSink

__all__ = ["FixedClock", "InMemorySignalSink", "ReplayItem", "ReplayMarketFeed"]
