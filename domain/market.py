"""Market events: the value objects strategies and metrics consume.

All prices and quantities are ``float`` (see docs/adr/0002-floats-for-prices.md); every
timestamp is the exchange's event time in epoch milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from domain.symbol import Symbol

Level = tuple[float, float]
"""One order-book level: (price, quantity)."""

_INF = math.inf


def _positive(value: float) -> bool:
    return 0.0 < value < _INF


def _non_negative(value: float) -> bool:
    return 0.0 <= value < _INF


def _check_symbol(symbol: str) -> None:
    Symbol(symbol)  # the one symbol rule; raises ValueError


def _check_time(event_time_ms: int) -> None:
    if event_time_ms < 0:
        raise ValueError(f"event time must be >= 0 ms, got {event_time_ms}")


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A partial order book (top N levels) at one event time.

    ``bids`` are best (highest) first, ``asks`` best (lowest) first. A side may be empty
    (strategies then stay silent); a crossed book (best bid >= best ask) is rejected.
    """

    symbol: str
    event_time_ms: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check_time(self.event_time_ms)
        for side in (self.bids, self.asks):
            for price, qty in side:
                if not (_positive(price) and _non_negative(qty)):
                    raise ValueError(f"invalid level ({price}, {qty}) in {self.symbol} book")
        if self.bids and self.asks and self.bids[0][0] >= self.asks[0][0]:
            raise ValueError(
                f"crossed book for {self.symbol}: bid {self.bids[0][0]} >= ask {self.asks[0][0]}"
            )

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2.0


@dataclass(frozen=True, slots=True)
class Trade:
    """One executed trade. ``is_buyer_maker`` true means the taker sold (Binance ``m``)."""

    symbol: str
    event_time_ms: int
    trade_id: int
    price: float
    quantity: float
    is_buyer_maker: bool

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check_time(self.event_time_ms)
        if not _positive(self.price):
            raise ValueError(f"trade price must be finite and > 0, got {self.price}")
        if not _positive(self.quantity):
            raise ValueError(f"trade quantity must be finite and > 0, got {self.quantity}")


@dataclass(frozen=True, slots=True)
class Ticker:
    """A rolling 24h ticker. ``price_change`` is absolute, ``price_change_percent`` in percent."""

    symbol: str
    event_time_ms: int
    last_price: float
    price_change: float
    price_change_percent: float
    open_price: float
    high_price: float
    low_price: float
    volume: float
    quote_volume: float
    best_bid: float
    best_ask: float

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check_time(self.event_time_ms)
        if not _positive(self.last_price):
            raise ValueError(f"ticker last price must be finite and > 0, got {self.last_price}")
        for name in (
            "open_price",
            "high_price",
            "low_price",
            "volume",
            "quote_volume",
            "best_bid",
            "best_ask",
        ):
            if not _non_negative(getattr(self, name)):
                raise ValueError(f"ticker {name} must be finite and >= 0")
        if not (math.isfinite(self.price_change) and math.isfinite(self.price_change_percent)):
            raise ValueError("ticker price change must be finite")


@dataclass(frozen=True, slots=True)
class DominanceObservation:
    """BTC market-cap dominance in percent (0..100) from an external source."""

    event_time_ms: int
    btc_dominance: float

    def __post_init__(self) -> None:
        _check_time(self.event_time_ms)
        if not 0.0 <= self.btc_dominance <= 100.0:
            raise ValueError(f"btc_dominance must be within 0..100, got {self.btc_dominance}")


@dataclass(frozen=True, slots=True)
class VenueQuote:
    """Best bid/ask of ``symbol`` on another venue (lower-case venue name)."""

    venue: str
    symbol: str
    event_time_ms: int
    bid: float
    ask: float

    def __post_init__(self) -> None:
        if not self.venue or self.venue != self.venue.lower():
            raise ValueError(f"venue must be a non-empty lower-case name, got {self.venue!r}")
        _check_symbol(self.symbol)
        _check_time(self.event_time_ms)
        if not (_positive(self.bid) and _positive(self.ask)):
            raise ValueError("quote bid and ask must be finite and > 0")
        if self.bid > self.ask:
            raise ValueError(f"crossed quote on {self.venue}: bid {self.bid} > ask {self.ask}")


class FlowDirection(StrEnum):
    TO_EXCHANGE = "to_exchange"
    FROM_EXCHANGE = "from_exchange"


@dataclass(frozen=True, slots=True)
class WhaleTransfer:
    """A large on-chain transfer of ``amount`` units of ``asset`` into or out of an exchange."""

    asset: str
    event_time_ms: int
    amount: float
    direction: FlowDirection

    def __post_init__(self) -> None:
        _check_symbol(self.asset)
        _check_time(self.event_time_ms)
        if not _positive(self.amount):
            raise ValueError(f"whale transfer amount must be finite and > 0, got {self.amount}")


@dataclass(frozen=True, slots=True)
class ExchangeFlow:
    """Aggregate exchange in/outflow of ``asset`` over ``period_seconds``."""

    asset: str
    event_time_ms: int
    inflow: float
    outflow: float
    period_seconds: int

    def __post_init__(self) -> None:
        _check_symbol(self.asset)
        _check_time(self.event_time_ms)
        if not (_non_negative(self.inflow) and _non_negative(self.outflow)):
            raise ValueError("exchange flow inflow/outflow must be finite and >= 0")
        if self.period_seconds <= 0:
            raise ValueError(f"period_seconds must be > 0, got {self.period_seconds}")


MarketEvent = (
    DepthSnapshot
    | Trade
    | Ticker
    | DominanceObservation
    | VenueQuote
    | WhaleTransfer
    | ExchangeFlow
)
"""Every event the domain understands."""


# Tuples, not ``A | B`` unions: a union written inside a function is built anew on every
# call, and isinstance() is faster on a tuple (these run for every market event).
_SYMBOL_EVENTS = (DepthSnapshot, Trade, Ticker, VenueQuote)
_ASSET_EVENTS = (WhaleTransfer, ExchangeFlow)


def event_symbol(event: MarketEvent) -> str | None:
    """The trading symbol an event is about, or None for market-wide events."""
    if isinstance(event, _SYMBOL_EVENTS):
        return event.symbol
    if isinstance(event, _ASSET_EVENTS):
        return f"{event.asset}USDT"
    return None
