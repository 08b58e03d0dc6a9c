"""Cross-exchange spread: trade the home venue's leg when venues' prices diverge."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from domain.market import DepthSnapshot, MarketEvent, VenueQuote
from domain.params import CommonParams, param
from domain.signal import Action, JsonValue
from domain.state import mapping, row
from domain.strategies.base import Decision, Owns

HOME_VENUE = "binance"
"""Default home venue: the exchange whose order book arrives on the market-data stream."""

FRESHNESS_MS = 60_000
"""A quote is fresh when its event time is within 60 s of the current event's."""

FORGET_AFTER_MS = 600_000
"""A symbol whose other venues have all been silent this long is forgotten (its depth is no
longer consumed until the next quote)."""

MAX_VENUES_PER_SYMBOL = 16
"""Bound of quotes kept per symbol; beyond it the stalest venue is forgotten."""

MAX_SYMBOLS = 4096
"""Bound of symbols tracked; beyond it the symbol quoted least recently is forgotten."""

_MIN_CONFIDENCE = 0.5
_MAX_CONFIDENCE = 0.95

Quote = tuple[float, float, int]
"""(bid, ask, event_time_ms) of one venue."""


@dataclass(frozen=True, slots=True)
class CrossExchangeSpreadParams(CommonParams):
    """Parameters of :class:`CrossExchangeSpreadStrategy`."""

    strategy_id: ClassVar[str] = "cross_exchange_spread"

    spread_threshold_percent: float = param(
        0.5,
        min=0.1,
        max=5.0,
        description=(
            "Minimum spread, (highest bid - lowest ask) / lowest ask in percent across fresh "
            "venues, for a signal; twice the threshold gives the maximum confidence."
        ),
    )
    min_signal_interval: int = param(
        300,
        min=60,
        max=3600,
        description="Minimum seconds (event time) between two equal signals on one symbol.",
    )
    max_position_size: float = param(
        500.0,
        min=100.0,
        max=10000.0,
        description=(
            "Position size in USDT at full confidence; quantity = max_position_size * "
            "confidence / price (replaces position_notional_usdt for this strategy)."
        ),
    )
    cooldown_seconds: int = param(
        0,
        min=0,
        max=86400,
        description=(
            "Extra cooldown; the effective cooldown is max(cooldown_seconds, min_signal_interval)."
        ),
    )


class CrossExchangeSpreadStrategy:
    """Trade the home venue's leg of a cross-exchange price divergence.

    Business rules, per symbol (config of the quoted symbol):

    * Inputs: :class:`VenueQuote` best bid/ask of other venues, and the home venue's own best
      bid/ask from its :class:`DepthSnapshot` (a quote of the home venue name counts too).
      Per venue only the newest quote (event time) is kept.
    * On every such event, quotes within 60 s of the event's time are fresh. With fresh
      quotes from at least two venues, spread = (highest bid - lowest ask) / lowest ask × 100,
      between the venue with the highest bid (sell venue) and the one with the lowest ask
      (buy venue). Ties go to the home venue, then to the venue name.
    * When spread > ``spread_threshold_percent``, the leg on the home venue is emitted:
      home is the buy venue → **buy** at the home ask; home is the sell venue → **sell** at
      the home bid; home is neither (or not fresh) → no signal. current_price is the home mid.
    * Confidence = 0.5 + 0.45 × min(1, (spread - threshold) / threshold), within
      [0.5, 0.95]; quantity = max_position_size × confidence / price.
    * Metadata names the other venue, buy/sell venues, both prices and the spread.

    Depth of a symbol no venue quoted is not consumed (``config_symbol`` is None), so the
    10/s depth path costs nothing until quotes arrive; a symbol whose other venues have been
    silent for :data:`FORGET_AFTER_MS` is forgotten again. Memory is bounded by
    :data:`MAX_VENUES_PER_SYMBOL` and :data:`MAX_SYMBOLS`.
    """

    strategy_id: ClassVar[str] = CrossExchangeSpreadParams.strategy_id
    params_type: ClassVar[type[CommonParams]] = CrossExchangeSpreadParams
    consumes: ClassVar[tuple[type, ...]] = (VenueQuote, DepthSnapshot)

    __slots__ = ("_books", "home_venue")

    def __init__(self, home_venue: str = HOME_VENUE) -> None:
        self.home_venue = home_venue.lower()
        self._books: dict[str, dict[str, Quote]] = {}

    def quotes(self, symbol: str) -> dict[str, Quote]:
        """A copy of the quotes kept for ``symbol`` (venue → (bid, ask, event_time_ms))."""
        return dict(self._books.get(symbol, {}))

    def to_state(self, owns: Owns) -> dict[str, object]:
        """The quotes (venue → [bid, ask, event time], in arrival order) of the symbols
        ``owns`` accepts, in the order they were first quoted."""
        return {
            "books": {
                symbol: {venue: list(quote) for venue, quote in book.items()}
                for symbol, book in self._books.items()
                if owns(symbol)
            }
        }

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols."""
        where = self.strategy_id
        books: dict[str, dict[str, Quote]] = {}
        for symbol, book in mapping(state, "books", where).items():
            if not isinstance(book, Mapping):
                raise ValueError(f"{where} state: book of {symbol!r} must be an object")
            quotes: dict[str, Quote] = {}
            for venue, quote in book.items():
                bid, ask, time_ms = row(quote, 3, where)
                quotes[str(venue)] = (float(bid), float(ask), int(time_ms))
            books[str(symbol)] = quotes
        for symbol, quotes in books.items():
            if symbol not in self._books and len(self._books) >= MAX_SYMBOLS:
                self._evict_symbol()
            self._books[symbol] = quotes

    def config_symbol(self, event: MarketEvent) -> str | None:
        if isinstance(event, VenueQuote):
            return event.symbol
        if isinstance(event, DepthSnapshot) and event.symbol in self._books:
            return event.symbol
        return None

    def on_event(self, event: MarketEvent, params: CrossExchangeSpreadParams) -> Decision | None:
        if isinstance(event, DepthSnapshot):
            book = self._books.get(event.symbol)
            if book is None:
                return None
            now = event.event_time_ms
            if event.bids and event.asks:
                _store(book, self.home_venue, (event.bids[0][0], event.asks[0][0], now))
            else:
                book.pop(self.home_venue, None)  # one side empty: no usable home quote
                return None
            decision = self._evaluate(event.symbol, book, now, params)
            if decision is None and _abandoned(book, self.home_venue, now):
                del self._books[event.symbol]
            return decision
        if isinstance(event, VenueQuote):
            book = self._books.get(event.symbol)
            if book is None:
                if len(self._books) >= MAX_SYMBOLS:
                    self._evict_symbol()
                book = self._books[event.symbol] = {}
            now = event.event_time_ms
            _store(book, event.venue, (event.bid, event.ask, now))
            return self._evaluate(event.symbol, book, now, params)
        return None

    def _evict_symbol(self) -> None:
        def newest(symbol: str) -> int:
            quotes = self._books[symbol]
            return max((q[2] for q in quotes.values()), default=-1)

        del self._books[min(self._books, key=newest)]

    def _evaluate(
        self, symbol: str, book: dict[str, Quote], now: int, params: CrossExchangeSpreadParams
    ) -> Decision | None:
        home = self.home_venue
        home_quote = book.get(home)
        if home_quote is None or len(book) < 2 or abs(now - home_quote[2]) > FRESHNESS_MS:
            return None
        home_bid, home_ask, _ = home_quote
        # Home wins ties, so start from it and only replace on a strictly better price.
        sell_venue, sell_price = home, home_bid
        buy_venue, buy_price = home, home_ask
        fresh = 1
        for venue, (bid, ask, time_ms) in book.items():
            if venue == home or abs(now - time_ms) > FRESHNESS_MS:
                continue
            fresh += 1
            if bid > sell_price or (
                bid == sell_price and sell_venue != home and venue < sell_venue
            ):
                sell_venue, sell_price = venue, bid
            if ask < buy_price or (ask == buy_price and buy_venue != home and venue < buy_venue):
                buy_venue, buy_price = venue, ask
        if fresh < 2 or sell_venue == buy_venue:
            return None
        spread_percent = (sell_price - buy_price) / buy_price * 100.0
        if not math.isfinite(spread_percent):
            return None  # absurd prices (e.g. 1e300 against 1e-9): nothing sensible to emit
        threshold = params.spread_threshold_percent
        if not spread_percent > threshold or spread_percent <= 0.0:
            return None
        if buy_venue == home:
            action, price, other_venue, other_price = Action.BUY, home_ask, sell_venue, sell_price
        elif sell_venue == home:
            action, price, other_venue, other_price = Action.SELL, home_bid, buy_venue, buy_price
        else:
            return None
        scale = threshold if threshold > 0.0 else 1.0
        confidence = _MIN_CONFIDENCE + (_MAX_CONFIDENCE - _MIN_CONFIDENCE) * min(
            1.0, max(0.0, (spread_percent - threshold) / scale)
        )
        metadata: dict[str, JsonValue] = {
            "home_venue": home,
            "other_venue": other_venue,
            "buy_venue": buy_venue,
            "sell_venue": sell_venue,
            "buy_price": buy_price,
            "sell_price": sell_price,
            "home_price": price,
            "other_price": other_price,
            "spread_percent": spread_percent,
            "fresh_venues": fresh,
        }
        return Decision(
            symbol=symbol,
            action=action,
            confidence=confidence,
            price=price,
            current_price=home_bid + (home_ask - home_bid) / 2.0,
            indicators={
                "spread_percent": spread_percent,
                "home_bid": home_bid,
                "home_ask": home_ask,
                "other_price": other_price,
            },
            metadata=metadata,
            quantity=params.max_position_size * confidence / price,
        )


def _store(book: dict[str, Quote], venue: str, quote: Quote) -> None:
    """Keep the newest quote per venue; forget the stalest venue when the book is full."""
    current = book.get(venue)
    if current is not None:
        if quote[2] >= current[2]:
            book[venue] = quote
        return
    if len(book) >= MAX_VENUES_PER_SYMBOL:
        del book[min(book, key=lambda v: book[v][2])]
    book[venue] = quote


def _abandoned(book: dict[str, Quote], home: str, now: int) -> bool:
    """True when no venue but home has quoted within :data:`FORGET_AFTER_MS` of ``now``."""
    return all(venue == home or now - q[2] > FORGET_AFTER_MS for venue, q in book.items())
