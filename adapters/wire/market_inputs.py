"""Codec for the market-logic input subjects: dominance, venue quotes, on-chain events.

Formats (one flat JSON object per message; schemas and examples in ``docs/schemas/``):

- dominance (``market.dominance``): ``{"btc_dominance": 56.2, "timestamp": ...}``
  → :class:`DominanceObservation` (percent, 0..100);
- quotes (``market.quotes``): ``{"venue", "symbol", "bid", "ask", "timestamp"}``
  → :class:`VenueQuote`; the venue is lower-cased, the symbol upper-cased with ``-``, ``/``
  and ``_`` removed (``btc-usdt`` → ``BTCUSDT``);
- on-chain (``onchain.events``), by ``type``:
  ``{"type": "whale_transfer", "asset", "amount", "direction": "to_exchange"|"from_exchange",
  "timestamp"}`` → :class:`WhaleTransfer`;
  ``{"type": "exchange_flow", "asset", "inflow", "outflow", "period_seconds", "timestamp"}``
  → :class:`ExchangeFlow`. The asset is upper-cased.

Numbers may be JSON numbers or numeric strings (booleans are not numbers). ``timestamp`` is
an ISO-8601 string (``Z`` or offset; naive means UTC) or epoch **milliseconds**. Like the
Binance codec, every method returns an event or a :class:`Skip` and never raises; the
envelope fields ``message_id`` and ``_otel_trace_context`` are honoured by
:meth:`MarketInputDecoder.decode_envelope`.

Input integrity is the Binance codec's rule (:mod:`adapters.wire.integrity`), on one time line
per input: dominance one (it is market-wide), quotes one per (venue, symbol), on-chain events
one per (type, asset). An event stamped more than ``future_tolerance_ms`` after the wall clock
(or, replaying without one, more than a day ahead of its time line) is ``future_dated``, one
going back is ``out_of_order``; a ``message_id`` — or a whale transfer's ``tx_hash`` with the
same asset, direction and amount — seen among the recent ones is a ``duplicate``. None of them
moves a time line.

That memory is checkpointed with a worker's partitions (:meth:`MarketInputDecoder.to_state`):
each entry goes with the partition its message is routed to (the partition router's rule,
:mod:`adapters.wire.routing_keys`), so the worker that consumes that partition next rejects
what this one rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

import orjson

from adapters.wire.binance import (
    DEFAULT_MAX_BYTES,
    decoded,
    short_repr,
    symbol_allow_list,
    to_float,
    to_timestamp,
)
from adapters.wire.integrity import (
    DEFAULT_INTEGRITY,
    IntegrityOptions,
    RecentIds,
    TimeLines,
)
from adapters.wire.integrity import Rejected as _Reject
from adapters.wire.stats import Decoded, Skip, SkipReason
from application.partitioning import DOMINANCE_SYMBOL, onchain_symbol
from domain.market import (
    DominanceObservation,
    ExchangeFlow,
    FlowDirection,
    MarketEvent,
    VenueQuote,
    WhaleTransfer,
    event_symbol,
)
from domain.state import items, row


class InputKind(StrEnum):
    """The three input subjects (also the ``stream`` of their Skips)."""

    DOMINANCE = "dominance"
    QUOTES = "quotes"
    ONCHAIN = "onchain"


WHALE_TRANSFER: Final = "whale_transfer"
EXCHANGE_FLOW: Final = "exchange_flow"
_SYMBOL_SEPARATORS: Final = str.maketrans("", "", "-/_")
DOMINANCE_LINE: Final = "BTC"
"""The key of the one dominance time line (dominance is market-wide: no symbol)."""
_TIME_LINES: Final[Mapping[type, tuple[str, Callable[[Any], Hashable], Callable[[Any], str]]]] = {
    DominanceObservation: (
        InputKind.DOMINANCE,
        lambda event: DOMINANCE_LINE,
        lambda key: DOMINANCE_SYMBOL,
    ),
    VenueQuote: (InputKind.QUOTES, lambda event: (event.venue, event.symbol), lambda key: key[1]),
    WhaleTransfer: (WHALE_TRANSFER, lambda event: event.asset, onchain_symbol),
    ExchangeFlow: (EXCHANGE_FLOW, lambda event: event.asset, onchain_symbol),
}
"""Per market-logic input event class, its time lines' kind, an event's key in it, and the
symbol a key's messages are routed by (:mod:`adapters.wire.routing_keys`: dominance
``BTCUSDT``, a quote its symbol, an on-chain event ``<ASSET>USDT``)."""
_LINE_SYMBOL: Final[Mapping[Hashable, Callable[[Any], str]]] = {
    kind: symbol for kind, _, symbol in _TIME_LINES.values()
}
"""Time line kind → the routing symbol of one of its keys."""


def time_line(event: MarketEvent) -> tuple[str, Hashable]:
    """The (kind, key) time line of a market-logic input event: dominance one, quotes per
    (venue, symbol), on-chain events per (type, asset)."""
    line = _TIME_LINES.get(type(event))
    if line is None:
        raise TypeError(f"not a market-logic input event: {type(event).__name__}")
    kind, key, _ = line
    return kind, key(event)


def _message_id(entry: object) -> tuple[str, str]:
    """A recent ``[symbol, message_id]`` of :meth:`MarketInputDecoder.to_state`."""
    symbol, message_id = row(entry, 2, "market inputs message_ids")
    if symbol.__class__ is not str or message_id.__class__ is not str:
        raise ValueError(f"market inputs state: bad message id {entry!r:.80}")
    return symbol, message_id


def _transfer(entry: object) -> tuple[str, str, str, float]:
    """A recent whale transfer id ``[tx_hash, asset, direction, amount]``."""
    tx_hash, asset, direction, amount = row(entry, 4, "market inputs transfers")
    if not (
        tx_hash.__class__ is str
        and asset.__class__ is str
        and direction.__class__ is str
        and amount.__class__ is float
    ):
        raise ValueError(f"market inputs state: bad transfer id {entry!r:.80}")
    return tx_hash, asset, direction, amount


def _transfer_id(event: MarketEvent, obj: dict[str, Any]) -> tuple[str, str, str, float] | None:
    """A whale transfer's natural id: its ``tx_hash`` (when it has one) with the asset,
    direction and amount (one transaction can move several amounts)."""
    if not isinstance(event, WhaleTransfer):
        return None
    tx_hash = obj.get("tx_hash")
    if tx_hash.__class__ is not str or not tx_hash:
        return None
    return tx_hash, event.asset, event.direction.value, event.amount


def _required(obj: dict[str, Any], name: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise _Reject(SkipReason.MISSING_FIELD, f"no {name!r}")
    return value


def _number(obj: dict[str, Any], name: str) -> float:
    return to_float(_required(obj, name), name)


def _text(obj: dict[str, Any], name: str) -> str:
    value = _required(obj, name)
    if value.__class__ is not str:
        raise _Reject(SkipReason.INVALID_VALUE, f"{name} is not a string: {short_repr(value)}")
    return value.strip()


def _timestamp(obj: dict[str, Any]) -> int:
    return to_timestamp(_required(obj, "timestamp"))  # a bool is not an int here: invalid


class MarketInputDecoder:
    """Decodes the dominance / quotes / on-chain subjects.

    ``symbols``: allow-list (as for :class:`BinanceDecoder`) applied to quote symbols and to
    the ``<ASSET>USDT`` symbol of on-chain events; dominance is market-wide and never
    filtered. ``integrity``: the same :class:`~adapters.wire.integrity.IntegrityOptions` as
    the Binance decoder's. Not thread-safe: use one instance per consumer.
    """

    __slots__ = (
        "_allowed",
        "_handlers",
        "_lines",
        "_max_bytes",
        "_message_ids",
        "_message_symbols",
        "_transfers",
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
        self._handlers: dict[str, Callable[[dict[str, Any]], MarketEvent]] = {
            InputKind.DOMINANCE: self._dominance,
            InputKind.QUOTES: self._quote,
            InputKind.ONCHAIN: self._onchain,
        }
        self._lines = TimeLines((kind for kind, _, _ in _TIME_LINES.values()), integrity)
        self._message_ids: RecentIds[str] = RecentIds(integrity.dedup_window)
        self._message_symbols: dict[str, str] = {}
        """The routing symbol of each recent message id's message (for checkpoints); may
        hold forgotten ids too, up to twice the window, pruned to the recent ones."""
        self._transfers: RecentIds[tuple[str, str, str, float]] = RecentIds(integrity.dedup_window)

    def reset(self) -> None:
        """Forget the time lines and recent ids (e.g. before replaying a file again)."""
        self._lines.clear()
        self._message_ids.clear()
        self._message_symbols.clear()
        self._transfers.clear()

    # -- state snapshots (partition checkpoints) ---------------------------------------------

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]:
        """The order and duplicate memory of the partitions ``owns`` accepts the symbols of,
        as plain data: the time lines with their reject/jump/in-order counts
        (:meth:`TimeLines.to_state`), the recent ``message_id``s with their message's symbol
        (``message_ids``: ``[symbol, id]``) and the recent whale transfer ids (``transfers``),
        oldest first.

        Each entry goes with the symbol its messages are routed by, so it is saved with the
        partition that consumes them (``application/partitioning.py``, the router's
        ``adapters/wire/routing_keys.py``): a quote's time line and ids with its symbol; the
        dominance time line — dominance has no symbol — with ``BTCUSDT``, where the router
        sends every dominance observation (btc_dominance's symbol); an on-chain event's
        (type, asset) time line and its ids with ``<ASSET>USDT``, where the router sends
        that asset's events. Unlike the Binance decoder's, the recent ``message_id``s are
        saved: each is remembered with its message's symbol, and for these inputs they are
        the only duplicate check of a message at its time line's latest time.
        """
        lines = self._lines.to_state(lambda kind, key: owns(_LINE_SYMBOL[kind](key)))
        symbols = self._message_symbols
        lines["message_ids"] = [
            [symbols[message_id], message_id]
            for message_id in self._message_ids
            if owns(symbols[message_id])
        ]
        lines["transfers"] = self._transfers.to_state(lambda t: owns(onchain_symbol(t[1])))
        return lines

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other partitions' entries
        (``ValueError`` on a malformed state, which may then be merged in part: a checkpoint
        is restored into a fresh decoder first)."""
        owned = [_message_id(entry) for entry in items(state, "message_ids", "market inputs")]
        self._lines.merge_state(state)
        self._transfers.merge_state(state.get("transfers"), _transfer)
        for symbol, message_id in owned:
            if message_id not in self._message_ids:
                self._remember_message(message_id, symbol)

    def _remember_message(self, message_id: str, symbol: str) -> None:
        """Remember an accepted message's id (and its routing symbol, for checkpoints)."""
        ids = self._message_ids
        if not ids.window:
            return
        ids.remember(message_id)
        symbols = self._message_symbols
        symbols[message_id] = symbol
        if len(symbols) > 2 * ids.window:
            self._message_symbols = {kept: symbols[kept] for kept in ids}

    # -- entry points ----------------------------------------------------------------------

    def decode(self, kind: InputKind | str, raw: bytes | str) -> MarketEvent | Skip:
        """One message of subject ``kind`` → an event or a Skip. Never raises."""
        result = self._decode(kind, raw)
        return result if result.__class__ is Skip else result[0]  # type: ignore[index]

    def decode_envelope(self, kind: InputKind | str, raw: bytes | str) -> Decoded | Skip:
        """Like :meth:`decode`, with ``message_id`` and ``_otel_trace_context`` if present."""
        result = self._decode(kind, raw)
        if result.__class__ is Skip:
            return result
        event, obj = result  # type: ignore[misc]
        return decoded(event, obj, str(kind))

    # Subject handlers (``raw -> Decoded | Skip``, the shape the NATS feed takes per subject).

    def decode_dominance(self, raw: bytes | str) -> Decoded | Skip:
        return self.decode_envelope(InputKind.DOMINANCE, raw)

    def decode_quote(self, raw: bytes | str) -> Decoded | Skip:
        return self.decode_envelope(InputKind.QUOTES, raw)

    def decode_onchain(self, raw: bytes | str) -> Decoded | Skip:
        return self.decode_envelope(InputKind.ONCHAIN, raw)

    # -- internals -------------------------------------------------------------------------

    def _decode(
        self, kind: InputKind | str, raw: bytes | str
    ) -> tuple[MarketEvent, dict[str, Any]] | Skip:
        stream = str(kind)
        try:
            handler = self._handlers.get(stream)
            if handler is None:
                return Skip(SkipReason.UNSUPPORTED_STREAM, f"unknown input kind {stream!r}")
            size = len(raw)
            if isinstance(raw, str) and size * 4 > self._max_bytes:
                size = len(raw.encode("utf-8", "surrogatepass"))
            if size > self._max_bytes:
                return Skip(SkipReason.TOO_LARGE, f"{size} bytes > {self._max_bytes}", stream)
            try:
                obj = orjson.loads(raw)
            except (orjson.JSONDecodeError, TypeError) as exc:
                return Skip(SkipReason.MALFORMED_JSON, str(exc)[:120], stream)
            if obj.__class__ is not dict:
                return Skip(SkipReason.NOT_AN_OBJECT, f"message is a {type(obj).__name__}", stream)
            message_id = obj.get("message_id")
            if message_id.__class__ is not str:
                message_id = None
            elif message_id in self._message_ids:
                return Skip(SkipReason.DUPLICATE, f"message_id {short_repr(message_id)}", stream)
            try:
                event = handler(obj)
                symbol = event_symbol(event)
                if self._allowed is not None and symbol is not None and symbol not in self._allowed:
                    raise _Reject(SkipReason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not traded")
                transfer = _transfer_id(event, obj)
                if transfer is not None and transfer in self._transfers:
                    raise _Reject(SkipReason.DUPLICATE, f"transfer {short_repr(transfer[0])} seen")
                kind, key = time_line(event)
                self._lines.accept(kind, key, event.event_time_ms)
            except _Reject as rejected:
                return Skip(rejected.reason, rejected.detail, stream)
            except ValueError as exc:  # the domain constructor said no
                return Skip(SkipReason.INVALID_VALUE, str(exc)[:200], stream)
            # Only an accepted message is remembered: a rejected forgery shadows nothing.
            if message_id is not None:
                self._remember_message(message_id, _LINE_SYMBOL[kind](key))
            if transfer is not None:
                self._transfers.remember(transfer)
            return event, obj
        except Exception as exc:  # pragma: no cover - defensive: the codec must not raise
            return Skip(
                SkipReason.INVALID_VALUE, f"internal error {type(exc).__name__}: {exc}", stream
            )

    @staticmethod
    def _dominance(obj: dict[str, Any]) -> MarketEvent:
        dominance = _number(obj, "btc_dominance")
        if not 0.0 <= dominance <= 100.0:
            raise _Reject(SkipReason.INVALID_VALUE, f"btc_dominance {dominance} not in 0..100")
        return DominanceObservation(event_time_ms=_timestamp(obj), btc_dominance=dominance)

    @staticmethod
    def _quote(obj: dict[str, Any]) -> MarketEvent:
        venue = _text(obj, "venue").lower()
        symbol = _text(obj, "symbol").upper().translate(_SYMBOL_SEPARATORS)
        bid = _number(obj, "bid")
        ask = _number(obj, "ask")
        time_ms = _timestamp(obj)
        if not (0.0 < bid < math.inf and 0.0 < ask < math.inf):
            raise _Reject(SkipReason.INVALID_PRICE, f"quote bid {bid} ask {ask}")
        if bid > ask:
            raise _Reject(SkipReason.CROSSED_BOOK, f"quote bid {bid} > ask {ask} on {venue}")
        return VenueQuote(venue=venue, symbol=symbol, event_time_ms=time_ms, bid=bid, ask=ask)

    @staticmethod
    def _onchain(obj: dict[str, Any]) -> MarketEvent:
        kind = _text(obj, "type")
        if kind != WHALE_TRANSFER and kind != EXCHANGE_FLOW:
            raise _Reject(
                SkipReason.UNSUPPORTED_TYPE, f"unknown on-chain event type {short_repr(kind)}"
            )
        asset = _text(obj, "asset").upper()
        if kind == WHALE_TRANSFER:
            amount = _number(obj, "amount")
            direction = _text(obj, "direction")
            try:
                flow = FlowDirection(direction)
            except ValueError:
                raise _Reject(
                    SkipReason.INVALID_VALUE,
                    f"direction must be to_exchange or from_exchange, got {short_repr(direction)}",
                ) from None
            if not 0.0 < amount < math.inf:
                raise _Reject(SkipReason.INVALID_VALUE, f"whale amount {amount} is not > 0")
            return WhaleTransfer(
                asset=asset, event_time_ms=_timestamp(obj), amount=amount, direction=flow
            )
        inflow = _number(obj, "inflow")
        outflow = _number(obj, "outflow")
        period = _number(obj, "period_seconds")
        if not (0.0 <= inflow < math.inf and 0.0 <= outflow < math.inf):
            raise _Reject(SkipReason.INVALID_VALUE, f"flows must be >= 0, got {inflow} / {outflow}")
        if not (0.0 < period < math.inf and period == int(period)):
            raise _Reject(
                SkipReason.INVALID_VALUE, f"period_seconds must be a positive integer: {period}"
            )
        return ExchangeFlow(
            asset=asset,
            event_time_ms=_timestamp(obj),
            inflow=inflow,
            outflow=outflow,
            period_seconds=int(period),
        )
