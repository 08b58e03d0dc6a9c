"""Binance market-data codec: producer messages → domain events; bad input → :class:`Skip`.

Accepted input (SPEC §3), one JSON object per message:

- the producer envelope ``{"stream", "data", "timestamp", "message_id", "source", "version",
  "_otel_trace_context"?}`` and the bare combined-stream frame ``{"stream", "data"}``;
- ``<sym>@trade`` and ``<sym>@aggTrade`` (→ :class:`Trade`, ``trade_id`` = ``t`` / ``a``);
- ``<sym>@ticker`` (24hrTicker → :class:`Ticker`; ``p`` is the absolute change, ``P`` percent);
- ``<sym>@depth5|10|20[@<n>ms]``: the spot partial book ``{lastUpdateId, bids, asks}`` (no
  symbol inside: it is the stream's part before the first ``@``, upper-cased) and the futures
  partial book ``{e: "depthUpdate", E, s, b, a}`` (→ :class:`DepthSnapshot`; level order is
  kept, levels with quantity 0 are dropped).

Everything else is a :class:`Skip` with a :class:`SkipReason` — diff-depth (``@depth``),
``kline``, ``bookTicker``, ``markPrice`` and unknown streams as ``unsupported_stream``. The
codec never raises.

Event time is the payload's ``E``; without one (spot depth) the envelope ``timestamp``
(ISO-8601, ``Z``) in epoch ms; without either, ``missing_field``.

Speed: a message of the usual form (the producer's envelope around a trade, aggTrade or partial
book, nothing unusual in it) is parsed by compiled msgspec structs first
(:mod:`adapters.wire.binance_fast`: book levels straight to float tuples, no dictionary of every
field); anything else is decoded from the untouched bytes by the plain path (orjson and the
field checks below), which is the reference for every value and every skip reason.
Validated events are then built without running the domain constructor's checks a second time
(see ``_make_trade``/``_make_depth``); the codec applies the same checks, and a test holds the
two equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from adapters.wire.binance_fast import parse_usual
from adapters.wire.binance_streams import (
    STREAM_AGG_TRADE,
    STREAM_DEPTH,
    STREAM_TICKER,
    STREAM_TRADE,
    STREAM_UNSUPPORTED,
    classify_stream,
)
from adapters.wire.integrity import (
    DEFAULT_INTEGRITY,
    UNCHECKED,
    IntegrityOptions,
    RecentIds,
    TimeLines,
)
from adapters.wire.integrity import Rejected as _Reject
from adapters.wire.stats import Decoded, Skip, SkipReason
from domain.market import DepthSnapshot, Level, MarketEvent, Ticker, Trade
from domain.state import row
from domain.symbol import is_symbol

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BinanceDecoder",
    "Decoded",
    "Skip",
    "SkipReason",
    "classify_stream",
    "decode",
    "decode_envelope",
    "iso_to_epoch_ms",
    "parse_timestamp_ms",
]

DEFAULT_MAX_BYTES: Final = 1 << 20
"""Messages larger than this (1 MiB) are skipped as ``too_large`` without being parsed."""
_INF: Final = math.inf
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError

# ---------------------------------------------------------------------------------------------
# Timestamps


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_ONE_MS: Final = timedelta(milliseconds=1)
_MINUTE_CACHE_MAX: Final = 4096
_minute_cache: dict[str, int] = {}
_second_cache: dict[str, int] = {}
_MILLIS: Final = {f"{ms:03d}": ms for ms in range(1000)}
"""Three-digit fraction → milliseconds: one lookup that also checks the digits."""
"""``YYYY-MM-DDTHH:MM:SS`` already read by the fast path → its epoch ms (bounded like the
minute cache): a depth message per 100 ms shares its second with nine others."""


def _minute_base_ms(prefix: str) -> int:
    """Epoch ms of ``YYYY-MM-DDTHH:MM`` (UTC); raises ValueError when it is not one."""
    if not (prefix[4] == "-" and prefix[7] == "-" and prefix[10] in "Tt " and prefix[13] == ":"):
        raise ValueError(f"not an ISO-8601 date and time: {prefix!r}")
    base = (datetime.fromisoformat(prefix) - _EPOCH_NAIVE) // _ONE_MS
    if len(_minute_cache) >= _MINUTE_CACHE_MAX:
        _minute_cache.clear()
    _minute_cache[prefix] = base
    return base


def iso_to_epoch_ms(text: str) -> int:
    """ISO-8601 date-time → epoch milliseconds (floor); naive times are taken as UTC.

    The producer's form ``2024-08-08T23:54:14.152400Z`` takes a fast path (the second, and
    the minute, are cached); anything else goes through :meth:`datetime.fromisoformat`.
    Raises ValueError.
    """
    n = len(text)
    if n >= 20 and text[n - 1] == "Z":
        second = _second_cache.get(text[:19])
        if second is not None:  # the same checks as below, minus those of the cached part
            if n == 20:
                return second
            frac = text[20 : n - 1]
            if text[19] == ".":
                millis = _MILLIS.get(frac)  # exactly three digits: the producer's form
                if millis is not None:
                    return second + millis
                if frac.isascii() and frac.isdigit():
                    return second + int((frac + "00")[:3])
    if n >= 20 and text[n - 1] == "Z" and text[16] == ":":
        prefix = text[:16]
        base = _minute_cache.get(prefix)
        if base is None:
            base = _minute_base_ms(prefix)
        sec = text[17:19]
        if sec.isascii() and sec.isdigit() and sec < "60":
            second = base + int(sec) * 1000
            if len(_second_cache) >= _MINUTE_CACHE_MAX:
                _second_cache.clear()
            _second_cache[text[:19]] = second
            if n == 20:
                return second
            frac = text[20 : n - 1]
            if text[19] == "." and frac.isascii() and frac.isdigit():
                return second + int((frac + "00")[:3])
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def parse_timestamp_ms(value: object) -> int:
    """An ISO-8601 string or an epoch-milliseconds number → epoch ms.

    Raises ValueError (unparseable, non-finite) or TypeError (not a string or number).
    """
    cls = value.__class__
    if cls is int:
        return value  # type: ignore[return-value]
    if cls is str:
        return iso_to_epoch_ms(value)  # type: ignore[arg-type]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"timestamp must be finite, got {value}")
        return math.floor(value)  # type: ignore[call-overload, no-any-return]
    raise TypeError(f"timestamp must be an ISO-8601 string or epoch ms, got {cls.__name__}")


# ---------------------------------------------------------------------------------------------
# Field helpers (the slow, exact path). Failures raise _Reject, turned into a Skip at the top.


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 60 characters (for skip details)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_float(value: object, name: str) -> float:
    """A JSON number or numeric string as a float; raises ``_Reject(non_numeric)``."""
    cls = value.__class__
    if cls is str or cls is float or cls is int:
        try:
            return float(value)  # type: ignore[arg-type]
        except (ValueError, OverflowError):
            pass
    raise _Reject(SkipReason.NON_NUMERIC, f"{name} is not numeric: {short_repr(value)}")


def to_int(value: object, name: str) -> int:
    """A JSON integer (or integral float / decimal string) as an int; else non_numeric."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    raise _Reject(SkipReason.NON_NUMERIC, f"{name} is not an integer: {short_repr(value)}")


def _event_time(data: dict[str, Any], envelope: dict[str, Any]) -> int:
    """Binance ``E`` or, without it, the envelope ``timestamp``."""
    value = data.get("E")
    if value is not None:
        return to_int(value, "E")
    stamp = envelope.get("timestamp")
    if stamp is None:
        raise _Reject(SkipReason.MISSING_FIELD, "no event time: neither 'E' nor 'timestamp'")
    return to_timestamp(stamp)


def to_timestamp(value: object) -> int:
    """A message's ``timestamp`` (ISO-8601 or epoch ms, :func:`parse_timestamp_ms`) as epoch
    ms; anything else is ``invalid_value``."""
    try:
        return parse_timestamp_ms(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _Reject(
            SkipReason.INVALID_VALUE, f"bad timestamp {short_repr(value)}: {exc}"
        ) from None


def _levels_exact(side: object, name: str) -> tuple[Level, ...]:
    """Book levels from ``[[price, qty], ...]`` (strings or numbers); zero quantities dropped."""
    if side.__class__ is not list:
        raise _Reject(SkipReason.INVALID_VALUE, f"{name} is not a list: {short_repr(side)}")
    out: list[Level] = []
    for level in side:
        if level.__class__ is not list or len(level) < 2:
            raise _Reject(
                SkipReason.INVALID_VALUE, f"{name} level is not a pair: {short_repr(level)}"
            )
        price = to_float(level[0], f"{name} price")
        qty = to_float(level[1], f"{name} quantity")
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            raise _Reject(SkipReason.INVALID_PRICE, f"{name} level ({price}, {qty})")
        if qty != 0.0:
            out.append((price, qty))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Event construction for input the codec has validated with the domain's own rules.

# Frozen dataclasses set every field through object.__setattr__ (~90 ns a call, argument
# parsing included). The builders below are plain classes made with the slots of Trade / Ticker
# / DepthSnapshot, so with their exact layout and no frozen __setattr__: the fields are stored
# as plain slot writes, then the object becomes the domain type by __class__ assignment, which
# CPython allows only between types of identical layout (it raises TypeError otherwise). The
# result is an ordinary domain event, equal to one built by its constructor.


def _builder(event_type: type[Trade | Ticker | DepthSnapshot]) -> type:
    """A plain class with ``event_type``'s slots: its instances take the same fields."""
    return type(f"_{event_type.__name__}Builder", (), {"__slots__": event_type.__slots__})


_TradeBuilder: Final = _builder(Trade)
_TickerBuilder: Final = _builder(Ticker)
_DepthBuilder: Final = _builder(DepthSnapshot)


def _make_trade(
    symbol: str, time_ms: int, trade_id: int, price: float, qty: float, maker: bool
) -> Trade:
    """A :class:`Trade` whose invariants the caller has checked (symbol rule, time >= 0,
    price and quantity finite and > 0)."""
    trade = _TradeBuilder()
    trade.symbol = symbol
    trade.event_time_ms = time_ms
    trade.trade_id = trade_id
    trade.price = price
    trade.quantity = qty
    trade.is_buyer_maker = maker
    trade.__class__ = Trade
    return trade  # type: ignore[no-any-return]


def _make_depth(
    symbol: str, time_ms: int, bids: tuple[Level, ...], asks: tuple[Level, ...]
) -> DepthSnapshot:
    """A :class:`DepthSnapshot` whose invariants the caller has checked (symbol rule, time
    >= 0, every price finite > 0, every quantity finite >= 0, not crossed)."""
    snapshot = _DepthBuilder()
    snapshot.symbol = symbol
    snapshot.event_time_ms = time_ms
    snapshot.bids = bids
    snapshot.asks = asks
    snapshot.__class__ = DepthSnapshot
    return snapshot  # type: ignore[no-any-return]


def decoded(event: MarketEvent, envelope: dict[str, Any], stream: str | None) -> Decoded:
    """``event`` with its envelope's ``message_id`` (if a string) and trace context."""
    message_id = envelope.get("message_id")
    return Decoded(
        event,
        message_id if message_id.__class__ is str else None,
        trace_context(envelope),
        stream,
    )


def trace_context(envelope: dict[str, Any]) -> dict[str, str] | None:
    """The envelope's ``_otel_trace_context`` if it is a non-empty object of strings."""
    context = envelope.get("_otel_trace_context")
    if context.__class__ is not dict or not context:
        return None
    for key, value in context.items():
        if key.__class__ is not str or value.__class__ is not str:
            return None
    return context


_TICKER_FIELDS: Final = ("c", "p", "P", "o", "h", "l", "v", "q", "b", "a")
_STREAM_CACHE_MAX: Final = 4096


def _trade_key(entry: object) -> tuple[int, str, int]:
    """A recent trade id of :meth:`BinanceDecoder.to_state` back from plain data."""
    kind, symbol, trade_id = row(entry, 3, "decoder trades")
    if kind not in (STREAM_TRADE, STREAM_AGG_TRADE) or kind.__class__ is not int:
        raise ValueError(f"decoder state: unknown trade kind {kind!r:.40}")
    if symbol.__class__ is not str or trade_id.__class__ is not int:
        raise ValueError(f"decoder state: bad trade id {entry!r:.80}")
    return kind, symbol, trade_id


def symbol_allow_list(symbols: Iterable[str] | str | None) -> frozenset[str] | None:
    """The symbols a decoder accepts (a comma-separated string or an iterable, upper-cased),
    or None when it accepts every symbol (``symbols`` None, or containing ``*``)."""
    if isinstance(symbols, str):
        symbols = symbols.split(",")
    names = None if symbols is None else {s.strip().upper() for s in symbols} - {""}
    return None if names is None or "*" in names else frozenset(names)


class BinanceDecoder:
    """Decodes producer messages; keeps the per-(symbol, kind) last event time.

    ``symbols``: allow-list of symbols (upper-cased); None, ``"*"`` or an iterable containing
    ``"*"`` accept every symbol; a string is split on commas. ``integrity``: the order,
    future-dated and duplicate checks (:class:`~adapters.wire.integrity.IntegrityOptions`).
    Not thread-safe: use one instance per consumer.
    """

    __slots__ = (
        "_accept",
        "_accept_in_full",
        "_allowed",
        "_clock_ms",
        "_future_ms",
        "_id_order",
        "_jumps",
        "_lines",
        "_max_bytes",
        "_max_jump",
        "_max_tracked",
        "_message_ids",
        "_rejects",
        "_remember_trade",
        "_seen_ids",
        "_seen_trades",
        "_streams",
        "_trade_times",
        "_trades",
        "_valid_symbols",
        "_window",
    )

    def __init__(
        self,
        symbols: Iterable[str] | str | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        integrity: IntegrityOptions = DEFAULT_INTEGRITY,
    ) -> None:
        self._allowed = symbol_allow_list(symbols)
        self._max_bytes = max_bytes
        self._streams: dict[str, tuple[int, str]] = {}
        self._valid_symbols: set[str] = set()
        # The time line of each (kind, symbol): trade and aggTrade share the trade kind.
        self._lines = TimeLines((STREAM_TRADE, STREAM_TICKER, STREAM_DEPTH), integrity)
        self._max_tracked = self._lines.max_tracked
        self._accept = self._lines.accept
        self._accept_in_full = self._lines.accept_in_full
        # What the trade path's inline copy of accept's usual case reads (the same objects).
        self._trade_times = self._lines.last[STREAM_TRADE]
        self._rejects = self._lines.rejects
        self._jumps = self._lines.jumps
        self._max_jump = self._lines.max_jump
        self._clock_ms = integrity.clock_ms
        self._future_ms = integrity.future_tolerance_ms
        # Duplicates: bounded windows of recent message ids and (kind, symbol, trade id) (their
        # sets bound once: one test per message, on the hot path).
        self._message_ids: RecentIds[str] = RecentIds(integrity.dedup_window)
        self._window = self._message_ids.window
        self._seen_ids = self._message_ids.ids
        self._id_order = self._message_ids.order
        self._trades: RecentIds[tuple[int, str, int]] = RecentIds(integrity.dedup_window)
        self._seen_trades = self._trades.ids
        self._remember_trade = self._trades.remember

    @property
    def symbols(self) -> frozenset[str] | None:
        """The allow-list, or None when every symbol is accepted."""
        return self._allowed

    def reset(self) -> None:
        """Forget the last-seen event times (e.g. before replaying a file again)."""
        self._lines.clear()
        self._message_ids.clear()
        self._trades.clear()

    # -- state snapshots (partition checkpoints) ---------------------------------------------

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]:
        """The order and duplicate memory of the symbols ``owns`` accepts, as plain data:
        each (kind, symbol) time line with its reject/jump/in-order counts
        (:meth:`TimeLines.to_state`), and the recent trade ids in the order they were accepted
        (``trades``). Recent ``message_id``s are not included (they name no symbol; the
        market-data stream deduplicates by ``Nats-Msg-Id``)."""
        state = self._lines.to_state(lambda kind, symbol: owns(symbol))  # type: ignore[arg-type]
        state["trades"] = self._trades.to_state(lambda key: owns(key[1]))
        return state

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other symbols (``ValueError``
        on a malformed state, which may then be merged in part: a checkpoint is restored into
        a fresh decoder first)."""
        self._lines.merge_state(state)
        self._trades.merge_state(state.get("trades"), _trade_key)

    # -- entry points ----------------------------------------------------------------------

    def decode(self, raw: bytes | str) -> MarketEvent | Skip:
        """One message → a domain event or a Skip. Never raises."""
        result = self._decode(raw)
        return result if result.__class__ is Skip else result[0]  # type: ignore[index]

    def decode_envelope(self, raw: bytes | str) -> Decoded | Skip:
        """Like :meth:`decode`, with the envelope's ``message_id`` and trace context."""
        result = self._decode(raw)
        if result.__class__ is Skip:
            return result
        event, envelope = result  # type: ignore[misc]
        return decoded(event, envelope, envelope.get("stream"))

    def _decode(self, raw: bytes | str) -> tuple[MarketEvent, dict[str, Any]] | Skip:
        """(event, envelope) or a Skip. Never raises."""
        try:
            parsed = self._parse(raw)
            if parsed.__class__ is Skip:
                return parsed
            envelope, trusted_book = parsed  # type: ignore[misc]
            event = self._dispatch(envelope, trusted_book)
            return event if event.__class__ is Skip else (event, envelope)  # type: ignore[return-value]
        except Exception as exc:  # pragma: no cover - defensive: the codec must not raise
            return Skip(SkipReason.INVALID_VALUE, f"internal error {type(exc).__name__}: {exc}")

    # -- parsing ---------------------------------------------------------------------------

    def _parse(self, raw: bytes | str) -> tuple[dict[str, Any], bool] | Skip:
        """(envelope, whether data's book levels are already parsed and validated) or a Skip."""
        try:
            size = len(raw)
        except TypeError:
            return Skip(SkipReason.MALFORMED_JSON, f"not bytes or str: {type(raw).__name__}")
        if raw.__class__ is str and size * 4 > self._max_bytes:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > self._max_bytes:
            return Skip(SkipReason.TOO_LARGE, f"{size} bytes > {self._max_bytes}")
        if raw.__class__ is bytes:
            usual = parse_usual(raw, self._stream_kind)
            if usual is not None:
                return usual
        try:
            obj = _loads(raw)
        except _JSONDecodeError as exc:
            return Skip(SkipReason.MALFORMED_JSON, str(exc)[:120])
        except TypeError as exc:  # not bytes/str at all
            return Skip(SkipReason.MALFORMED_JSON, str(exc)[:120])
        if obj.__class__ is not dict:
            return Skip(SkipReason.NOT_AN_OBJECT, f"message is a JSON {type(obj).__name__}")
        return obj, False

    def _dispatch(self, envelope: dict[str, Any], trusted_book: bool) -> MarketEvent | Skip:
        message_id = envelope.get("message_id")
        if message_id.__class__ is str and self._window:
            if message_id in self._seen_ids:
                return Skip(
                    SkipReason.DUPLICATE,
                    f"message_id {short_repr(message_id)}",
                    envelope.get("stream"),
                )
            event = self._dispatch_stream(envelope, trusted_book)
            if event.__class__ is not Skip:
                # RecentIds.remember, inline (one per message; a test holds the two equal)
                self._seen_ids.add(message_id)
                order = self._id_order
                order.append(message_id)
                if len(order) > self._window:
                    self._seen_ids.discard(order.popleft())
            return event
        return self._dispatch_stream(envelope, trusted_book)

    def _dispatch_stream(self, envelope: dict[str, Any], trusted_book: bool) -> MarketEvent | Skip:
        stream = envelope.get("stream")
        if stream.__class__ is not str:
            if stream is None:
                return Skip(SkipReason.MISSING_FIELD, "no 'stream'")
            return Skip(SkipReason.INVALID_VALUE, f"'stream' is not a string: {short_repr(stream)}")
        kind, prefix = self._stream_kind(stream)
        if kind == STREAM_UNSUPPORTED:
            return Skip(SkipReason.UNSUPPORTED_STREAM, stream, stream)
        data = envelope.get("data")
        if data.__class__ is not dict:
            if data is None:
                return Skip(SkipReason.MISSING_FIELD, "no 'data'", stream)
            return Skip(SkipReason.NOT_AN_OBJECT, f"'data' is a JSON {type(data).__name__}", stream)
        try:
            if kind == STREAM_TRADE:
                return self._trade(envelope, data, "t")
            if kind == STREAM_DEPTH:
                return self._depth(envelope, data, prefix, trusted_book)
            if kind == STREAM_AGG_TRADE:
                return self._trade(envelope, data, "a")
            return self._ticker(envelope, data)
        except _Reject as rejected:
            return Skip(rejected.reason, rejected.detail, stream)

    def _stream_kind(self, stream: str) -> tuple[int, str]:
        """:func:`classify_stream`, memoised."""
        info = self._streams.get(stream)
        if info is None:
            info = classify_stream(stream)
            if len(self._streams) >= _STREAM_CACHE_MAX:
                self._streams.clear()
            self._streams[stream] = info
        return info

    # -- per stream ------------------------------------------------------------------------

    def _symbol(self, symbol: object) -> str:
        if symbol.__class__ is not str:
            raise _Reject(SkipReason.INVALID_VALUE, f"symbol is not a string: {short_repr(symbol)}")
        allowed = self._allowed
        if allowed is not None and symbol not in allowed:
            raise _Reject(SkipReason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not traded")
        if symbol not in self._valid_symbols:
            if not is_symbol(symbol):
                raise _Reject(SkipReason.INVALID_VALUE, f"bad symbol {short_repr(symbol)}")
            if len(self._valid_symbols) >= self._max_tracked:
                self._valid_symbols.clear()
            self._valid_symbols.add(symbol)
        return symbol

    def _trade(self, envelope: dict[str, Any], data: dict[str, Any], id_key: str) -> Trade:
        try:
            symbol = data["s"]
            p = data["p"]
            q = data["q"]
            trade_id = data[id_key]
            maker = data["m"]
        except KeyError as exc:
            raise _Reject(SkipReason.MISSING_FIELD, f"trade without {exc.args[0]!r}") from None
        if (
            symbol.__class__ is not str
            or self._allowed is not None
            or symbol not in self._valid_symbols
        ):
            symbol = self._symbol(symbol)
        time_ms = data.get("E")
        if time_ms.__class__ is not int:
            time_ms = _event_time(data, envelope)
        if p.__class__ is str and q.__class__ is str:
            try:
                price = float(p)
                qty = float(q)
            except ValueError:
                price = to_float(p, "p")
                qty = to_float(q, "q")
        else:
            price = to_float(p, "p")
            qty = to_float(q, "q")
        if not (0.0 < price < _INF and 0.0 < qty < _INF):
            raise _Reject(SkipReason.INVALID_PRICE, f"trade price {price} quantity {qty}")
        if trade_id.__class__ is not int:
            trade_id = to_int(trade_id, id_key)
        if maker.__class__ is not bool:
            raise _Reject(SkipReason.INVALID_VALUE, f"'m' is not a boolean: {short_repr(maker)}")
        trade_key = (STREAM_TRADE if id_key == "t" else STREAM_AGG_TRADE, symbol, trade_id)
        if trade_key in self._seen_trades:
            raise _Reject(SkipReason.DUPLICATE, f"{symbol} trade id {trade_id} seen already")
        # TimeLines.accept's usual case, inline (trades are most of the traffic; a test holds
        # the two equal): in order, within the forward jump, nothing pending, not future.
        trade_times = self._trade_times
        last = trade_times.get(symbol)
        if (
            last is not None
            and last <= time_ms <= last + self._max_jump
            and not self._rejects
            and not self._jumps
            and (self._clock_ms is None or time_ms <= self._clock_ms() + self._future_ms)
        ):
            trade_times[symbol] = time_ms
        else:
            self._accept_in_full(STREAM_TRADE, symbol, time_ms)
        if self._window:  # only an accepted trade: a forged one cannot shadow the real one
            self._remember_trade(trade_key)
        return _make_trade(symbol, time_ms, trade_id, price, qty, maker)

    def _depth(
        self, envelope: dict[str, Any], data: dict[str, Any], prefix: str, trusted_book: bool
    ) -> DepthSnapshot:
        if "bids" in data or "asks" in data:
            bids_raw = data.get("bids")
            asks_raw = data.get("asks")
            if bids_raw is None or asks_raw is None:
                missing = "bids" if bids_raw is None else "asks"
                raise _Reject(SkipReason.MISSING_FIELD, f"depth without {missing!r}")
            symbol = self._symbol(prefix)
        elif "b" in data and "a" in data:  # futures partial depth (depthUpdate)
            bids_raw = data["b"]
            asks_raw = data["a"]
            symbol = self._symbol(data.get("s") or prefix)
        else:
            raise _Reject(SkipReason.MISSING_FIELD, "depth without 'bids'/'asks'")
        if trusted_book:  # validated by binance_fast.parse_usual
            bids = bids_raw
            asks = asks_raw
        else:
            bids = _levels_exact(bids_raw, "bids")
            asks = _levels_exact(asks_raw, "asks")
        if not bids:
            if not asks:
                raise _Reject(SkipReason.EMPTY_BOOK, "no level on either side")
        elif asks and bids[0][0] >= asks[0][0]:
            raise _Reject(
                SkipReason.CROSSED_BOOK, f"best bid {bids[0][0]} >= best ask {asks[0][0]}"
            )
        time_ms = data.get("E")
        if time_ms.__class__ is not int:
            time_ms = _event_time(data, envelope)
        self._accept(STREAM_DEPTH, symbol, time_ms)
        return _make_depth(symbol, time_ms, bids, asks)

    def _ticker(self, envelope: dict[str, Any], data: dict[str, Any]) -> Ticker:
        try:
            symbol = data["s"]
            values = [data[name] for name in _TICKER_FIELDS]
        except KeyError as exc:
            raise _Reject(SkipReason.MISSING_FIELD, f"ticker without {exc.args[0]!r}") from None
        symbol = self._symbol(symbol)
        time_ms = _event_time(data, envelope)
        last, change, change_pct, open_, high, low, volume, quote_volume, bid, ask = (
            to_float(value, name) for value, name in zip(values, _TICKER_FIELDS, strict=True)
        )
        if not 0.0 < last < _INF:
            raise _Reject(SkipReason.INVALID_PRICE, f"ticker last price {last}")
        for name, value in (
            ("o", open_),
            ("h", high),
            ("l", low),
            ("v", volume),
            ("q", quote_volume),
            ("b", bid),
            ("a", ask),
        ):
            if not 0.0 <= value < _INF:
                raise _Reject(SkipReason.INVALID_PRICE, f"ticker {name} = {value}")
        if not (math.isfinite(change) and math.isfinite(change_pct)):
            raise _Reject(SkipReason.INVALID_PRICE, f"ticker change {change} / {change_pct} %")
        if time_ms < 0:  # the one domain check not made above, with the domain's message
            raise _Reject(SkipReason.INVALID_VALUE, f"event time must be >= 0 ms, got {time_ms}")
        ticker = _TickerBuilder()
        ticker.symbol = symbol
        ticker.event_time_ms = time_ms
        ticker.last_price = last
        ticker.price_change = change
        ticker.price_change_percent = change_pct
        ticker.open_price = open_
        ticker.high_price = high
        ticker.low_price = low
        ticker.volume = volume
        ticker.quote_volume = quote_volume
        ticker.best_bid = bid
        ticker.best_ask = ask
        ticker.__class__ = Ticker  # see _builder
        self._accept(STREAM_TICKER, symbol, time_ms)
        return ticker  # type: ignore[no-any-return]


# Stateless module-level codec: no ordering check and no duplicate detection (so the same
# messages decode the same way however often they are decoded), every symbol, default size
# limit. Services that want the
# out-of-order check or an allow-list use their own BinanceDecoder instance.
_STATELESS: Final = BinanceDecoder(integrity=UNCHECKED)


def decode(raw: bytes | str) -> MarketEvent | Skip:
    """:meth:`BinanceDecoder.decode` without ordering state or symbol allow-list."""
    return _STATELESS.decode(raw)


def decode_envelope(raw: bytes | str) -> Decoded | Skip:
    """:meth:`BinanceDecoder.decode_envelope` without ordering state or symbol allow-list."""
    return _STATELESS.decode_envelope(raw)
