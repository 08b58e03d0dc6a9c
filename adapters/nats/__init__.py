"""NATS adapters: shared connection, market feed, signal sink, config-change broadcast."""

from adapters.nats.circuit_breaker import BreakerState, CircuitBreaker
from adapters.nats.config_broadcast import (
    CONFIG_CHANGED_SUBJECT,
    NatsConfigChangeListener,
    NatsConfigChangeNotifier,
)
from adapters.nats.connection import ConnectionEvent, ConnectionState, NatsConnection
from adapters.nats.market_feed import FeedItem, NatsMarketFeed
from adapters.nats.signal_sink import NatsSignalSink

__all__ = [
    "CONFIG_CHANGED_SUBJECT",
    "BreakerState",
    "CircuitBreaker",
    "ConnectionEvent",
    "ConnectionState",
    "FeedItem",
    "NatsConfigChangeListener",
    "NatsConfigChangeNotifier",
    "NatsConnection",
    "NatsMarketFeed",
    "NatsSignalSink",
]
