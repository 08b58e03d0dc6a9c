"""Wire codecs: producer messages → domain events (bad input → counted Skips), signals → JSON.

- :mod:`adapters.wire.binance`: Binance market data (trade, aggTrade, ticker, partial depth);
- :mod:`adapters.wire.market_inputs`: dominance, venue quotes and on-chain subjects;
- :mod:`adapters.wire.signals`: the trade engine's signal contract;
- :mod:`adapters.wire.stats`: :class:`Skip`, :class:`SkipReason`, :class:`DecodeStats`.
"""

from adapters.wire.binance import BinanceDecoder, iso_to_epoch_ms, parse_timestamp_ms
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.signals import (
    DEFAULT_SOURCE,
    decode_signal,
    encode_signal,
    format_timestamp_ms,
    signal_to_wire,
    validate_trade_engine_contract,
)
from adapters.wire.stats import (
    ALL_SKIP_REASONS,
    Decoded,
    DecodeStats,
    MessageType,
    Skip,
    SkipReason,
    SkipSample,
    message_type,
)

__all__ = [
    "ALL_SKIP_REASONS",
    "DEFAULT_SOURCE",
    "BinanceDecoder",
    "DecodeStats",
    "Decoded",
    "InputKind",
    "MarketInputDecoder",
    "MessageType",
    "Skip",
    "SkipReason",
    "SkipSample",
    "decode_signal",
    "encode_signal",
    "format_timestamp_ms",
    "iso_to_epoch_ms",
    "message_type",
    "parse_timestamp_ms",
    "signal_to_wire",
    "validate_trade_engine_contract",
]
