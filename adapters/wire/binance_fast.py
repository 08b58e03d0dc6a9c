"""Compiled decoding of the producer's usual messages (msgspec), in front of the plain codec.

:class:`~adapters.wire.binance.BinanceDecoder` asks :func:`parse_usual` first. It decodes the
envelope and the ``data`` of a trade, aggTrade or partial-depth message straight into typed
msgspec structs — no dictionary of every field, book levels as ``(price, quantity)`` float
tuples converted from their decimal strings in C — and hands back what the plain parse would
have given the codec: the envelope as a ``dict`` with ``data`` as a ``dict`` (book levels
already validated: every value a finite number > 0).

It accepts only the usual form and answers None for everything else, which the plain path
(``orjson`` then the codec's field checks) then decodes from the untouched bytes: it stays
the reference for every value and every skip reason. "Usual" means: every key of the envelope
and of ``data`` is one the producer sends (``forbid_unknown_fields``), every field the codec
reads has the JSON type it expects, integers are within orjson's 64-bit range (beyond it
orjson gives floats, msgspec exact integers), book values are numbers or numeric strings that
parse to finite values > 0 (a zero quantity, ``"inf"`` or ``"nan"`` go the plain way). Both
parsers reject the same malformed JSON and round decimals correctly, so an accepted message
decodes to the same values either way; ``tests/unit/wire/test_binance_fast.py`` holds the two
paths equal on fuzzed input, skips and errors included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, Final

import msgspec
import orjson
from msgspec import Meta, Raw, Struct, field

from adapters.wire.binance_streams import (
    STREAM_AGG_TRADE,
    STREAM_DEPTH,
    STREAM_TICKER,
    STREAM_TRADE,
)

__all__ = ["parse_usual"]

_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer orjson also reads as an integer (a signed 64-bit one)."""
_Positive = Annotated[float, Meta(gt=0.0, le=sys.float_info.max)]
_Level = tuple[_Positive, _Positive]
_Book = tuple[_Level, ...]


class _Envelope(Struct, forbid_unknown_fields=True, kw_only=True):
    """The producer envelope; each subclass types ``data`` for one kind of stream."""

    stream: str
    timestamp: str | None = None
    message_id: Any = None
    source: Any = None
    version: Any = None
    trace_context: Any = field(name="_otel_trace_context", default=None)


class _Trade(Struct, forbid_unknown_fields=True):
    """``<sym>@trade`` and ``<sym>@aggTrade`` data."""

    s: str
    p: str
    q: str
    m: bool
    E: _Int | None = None
    t: _Int | None = None
    a: _Int | None = None
    e: Any = None
    T: Any = None
    M: Any = None
    f: Any = None
    l: Any = None  # noqa: E741
    b: Any = None


class _SpotBook(Struct, forbid_unknown_fields=True):
    """Spot partial depth ``{lastUpdateId, bids, asks}`` (decoded in lax mode: decimal
    strings → floats; the fields typed ``Any`` are not converted)."""

    bids: _Book
    asks: _Book
    lastUpdateId: Any = None  # noqa: N815
    E: Any = None


class _FuturesBook(Struct, forbid_unknown_fields=True):
    """Futures partial depth ``{e: "depthUpdate", E, T, s, U, u, pu, b, a}`` (lax mode)."""

    b: _Book
    a: _Book
    s: Any = None
    E: Any = None
    e: Any = None
    T: Any = None
    U: Any = None
    u: Any = None
    pu: Any = None


class _TradeEnvelope(_Envelope, kw_only=True):
    data: _Trade


class _SpotEnvelope(_Envelope, kw_only=True):
    data: _SpotBook


class _FuturesEnvelope(_Envelope, kw_only=True):
    data: _FuturesBook


class _RawEnvelope(_Envelope, kw_only=True):
    data: Raw


# One pass over the message: the stream name (first in the producer's envelope) tells which
# decoder to try; the stream is then classified, and a mismatch goes the plain way.
_trade: Final = msgspec.json.Decoder(_TradeEnvelope)
_spot_book: Final = msgspec.json.Decoder(_SpotEnvelope, strict=False)
_futures_book: Final = msgspec.json.Decoder(_FuturesEnvelope, strict=False)
_other: Final = msgspec.json.Decoder(_RawEnvelope)
_PROBE: Final = 128
_loads: Final = orjson.loads
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1


def _plain_int_or_none(value: object) -> bool:
    return value is None or (value.__class__ is int and _INT_MIN <= value <= _INT_MAX)


def parse_usual(
    raw: bytes, kind: Callable[[str], tuple[int, str]]
) -> tuple[dict[str, Any], bool] | None:
    """(envelope, whether ``data``'s book levels are validated) of a usual message, or None.

    ``kind`` maps a stream name to its ``(STREAM_* kind, symbol prefix)`` (the codec's
    cached :func:`~adapters.wire.binance_streams.classify_stream`).
    """
    head = raw[:_PROBE]
    envelope: _Envelope
    data: dict[str, Any]
    try:
        if b"@depth" in head:
            try:
                spot = _spot_book.decode(raw)
            except msgspec.ValidationError:
                futures = _futures_book.decode(raw)
                book = futures.data
                if not (book.s is None or book.s.__class__ is str):
                    return None
                if not _plain_int_or_none(book.E):
                    return None
                envelope = futures
                data = {"b": book.b, "a": book.a, "s": book.s, "E": book.E}
            else:
                if not _plain_int_or_none(spot.data.E):
                    return None
                envelope = spot
                data = {"bids": spot.data.bids, "asks": spot.data.asks, "E": spot.data.E}
            if kind(envelope.stream)[0] != STREAM_DEPTH:
                return None
            trusted = True
        elif b'@trade"' in head or b'@aggTrade"' in head:
            trade_envelope = _trade.decode(raw)
            stream_kind = kind(trade_envelope.stream)[0]
            trade = trade_envelope.data
            if stream_kind == STREAM_TRADE:
                id_key, trade_id = "t", trade.t
            elif stream_kind == STREAM_AGG_TRADE:
                id_key, trade_id = "a", trade.a
            else:
                return None
            if trade_id is None:
                return None  # missing or null: the plain path tells which
            envelope = trade_envelope
            data = {"s": trade.s, "p": trade.p, "q": trade.q, id_key: trade_id, "m": trade.m}
            if trade.E is not None:
                data["E"] = trade.E
            trusted = False
        else:
            other = _other.decode(raw)
            if kind(other.stream)[0] != STREAM_TICKER:
                return None
            data = _loads(memoryview(other.data))
            if data.__class__ is not dict:
                return None
            envelope = other
            trusted = False
    except Exception:  # malformed or unusual: the plain path decodes it and tells why
        return None
    stream = envelope.stream
    return {
        "stream": stream,
        "data": data,
        "timestamp": envelope.timestamp,
        "message_id": envelope.message_id,
        "_otel_trace_context": envelope.trace_context,
    }, trusted
