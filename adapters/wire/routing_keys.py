"""Routing keys: which symbol (and kind) a raw market-data message is about, cheaply.

The partition router (``adapters.nats.partition_router``) republishes every message unchanged
to ``<prefix>.<partition>.<SYMBOL>.<kind>``; this module finds ``(SYMBOL, kind)`` without
decoding the whole message where it can:

- **Binance** envelopes: the producer writes ``"stream":"<sym>@<type>"`` first, so the key is a
  ``bytes.find`` in the first bytes and a cached classification of the stream name (the symbol
  is the part before the first ``@``, upper-cased — the rule the decoder applies to depth).
  Messages laid out otherwise (whitespace, key order) fall back to a full ``orjson`` parse.
  The stream types are the ones :class:`adapters.wire.binance.BinanceDecoder` accepts
  (``trade``, ``aggTrade``, ``ticker``, ``depth5|10|20[@<n>ms]``); others are unroutable
  (``unsupported_stream``) — routing them would only store what every worker skips.
- **dominance**: market-wide, keyed by ``BTCUSDT`` (btc_dominance needs BTCUSDT's price);
  not parsed at all.
- **quotes**: parsed (low rate); the symbol normalised as the quotes decoder does
  (upper-cased, ``-``, ``/``, ``_`` removed).
- **on-chain**: parsed; keyed by ``<ASSET>USDT`` (the symbol onchain_metrics trades).

Nothing here raises: every message yields a :class:`RouteKey` or an :class:`Unroutable` with
a reason (the skip reasons of ``adapters.wire.stats`` where one applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import orjson

from adapters.wire.binance_streams import (
    STREAM_AGG_TRADE,
    STREAM_DEPTH,
    STREAM_TICKER,
    STREAM_TRADE,
)
from adapters.wire.binance_streams import classify_stream as classify_binance_stream
from adapters.wire.stats import SkipReason
from application.partitioning import DOMINANCE_SYMBOL, onchain_symbol
from domain.symbol import is_symbol

_STREAM_KEY: Final = b'"stream":"'
_STREAM_PROBE: Final = 64
"""The fast path looks for ``"stream":"`` in the first bytes only (the producer writes it
first); anything else takes the parse path."""
_MAX_STREAM_NAME: Final = 96
_CACHE_MAX: Final = 8192
_SEPARATORS: Final = str.maketrans("", "", "-/_")


class RouteKind(StrEnum):
    """What a routed payload is, so a worker picks the decoder without parsing (the last token
    of a partition subject: ``adapters/nats/partition_subjects.py``): the Binance stream
    types, then the market-logic inputs."""

    TRADE = "trade"
    AGG_TRADE = "aggtrade"
    TICKER = "ticker"
    DEPTH = "depth"
    DOMINANCE = "dominance"
    QUOTES = "quotes"
    ONCHAIN = "onchain"


BINANCE_KINDS: Final = frozenset(
    {RouteKind.TRADE, RouteKind.AGG_TRADE, RouteKind.TICKER, RouteKind.DEPTH}
)

MISSING_SYMBOL: Final = "missing_symbol"
"""Skip reason of a message whose routing symbol is absent or not a symbol."""


@dataclass(frozen=True, slots=True)
class RouteKey:
    symbol: str
    kind: RouteKind


@dataclass(frozen=True, slots=True)
class Unroutable:
    reason: str
    detail: str


RouteResult = RouteKey | Unroutable


_ROUTE_KINDS: Final = {
    STREAM_TRADE: RouteKind.TRADE,
    STREAM_AGG_TRADE: RouteKind.AGG_TRADE,
    STREAM_TICKER: RouteKind.TICKER,
    STREAM_DEPTH: RouteKind.DEPTH,
}


def classify_stream(stream: str) -> RouteResult:
    """``"btcusdt@depth20@100ms"`` → ``RouteKey("BTCUSDT", depth)``, or why not (the
    decoder's grammar: :func:`adapters.wire.binance_streams.classify_stream`)."""
    kind, symbol = classify_binance_stream(stream)
    route_kind = _ROUTE_KINDS.get(kind)
    if route_kind is None:
        return Unroutable(SkipReason.UNSUPPORTED_STREAM, f"stream {stream[:60]!r}")
    if not is_symbol(symbol):
        return Unroutable(SkipReason.INVALID_VALUE, f"bad symbol in stream {stream[:60]!r}")
    return RouteKey(symbol, route_kind)


def _field(raw: bytes, name: str) -> object:
    """The top-level field ``name`` of the JSON object ``raw`` (None if absent), or the
    :class:`Unroutable` of a message that is no JSON object."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Unroutable(SkipReason.MALFORMED_JSON, str(exc)[:120])
    if not isinstance(obj, dict):
        return Unroutable(SkipReason.NOT_AN_OBJECT, f"message is a JSON {type(obj).__name__}")
    return obj.get(name)


class BinanceRouteKeys:
    """Routing keys of Binance envelopes, with a bounded cache of stream names."""

    __slots__ = ("_cache", "fast_path", "parse_path")

    def __init__(self) -> None:
        self._cache: dict[bytes, RouteResult] = {}
        self.fast_path = 0
        self.parse_path = 0

    def __call__(self, raw: bytes) -> RouteResult:
        start = raw.find(_STREAM_KEY, 0, _STREAM_PROBE)
        if start >= 0:
            start += len(_STREAM_KEY)
            end = raw.find(b'"', start, start + _MAX_STREAM_NAME)
            if end > start and raw.find(b"\\", start, end) < 0:
                name = raw[start:end]
                cached = self._cache.get(name)
                if cached is None:
                    if len(self._cache) >= _CACHE_MAX:
                        self._cache.clear()
                    try:
                        cached = classify_stream(name.decode("ascii"))
                    except UnicodeDecodeError:
                        cached = Unroutable(SkipReason.INVALID_VALUE, "non-ASCII stream name")
                    self._cache[name] = cached
                self.fast_path += 1
                return cached
        self.parse_path += 1
        return self._parse(raw)

    @staticmethod
    def _parse(raw: bytes) -> RouteResult:
        stream = _field(raw, "stream")
        if isinstance(stream, Unroutable):
            return stream
        if stream is None:
            return Unroutable(SkipReason.MISSING_FIELD, "no 'stream'")
        if not isinstance(stream, str):
            return Unroutable(SkipReason.INVALID_VALUE, "'stream' is not a string")
        return classify_stream(stream)


def dominance_route(raw: bytes) -> RouteResult:
    """Dominance is market-wide: it lives with BTCUSDT. The payload is not inspected (the
    worker's decoder validates it, counts and dead-letters a bad one)."""
    return RouteKey(DOMINANCE_SYMBOL, RouteKind.DOMINANCE)


def quote_route(raw: bytes) -> RouteResult:
    symbol = _field(raw, "symbol")
    if isinstance(symbol, Unroutable):
        return symbol
    if not isinstance(symbol, str):
        return Unroutable(MISSING_SYMBOL, "quote without a string 'symbol'")
    normalized = symbol.strip().upper().translate(_SEPARATORS)
    if not is_symbol(normalized):
        return Unroutable(SkipReason.INVALID_VALUE, f"bad quote symbol {symbol[:40]!r}")
    return RouteKey(normalized, RouteKind.QUOTES)


def onchain_route(raw: bytes) -> RouteResult:
    asset = _field(raw, "asset")
    if isinstance(asset, Unroutable):
        return asset
    if not isinstance(asset, str) or not asset.strip():
        return Unroutable(MISSING_SYMBOL, "on-chain event without a string 'asset'")
    symbol = onchain_symbol(asset)
    if not is_symbol(symbol):
        return Unroutable(SkipReason.INVALID_VALUE, f"bad on-chain asset {asset[:40]!r}")
    return RouteKey(symbol, RouteKind.ONCHAIN)
