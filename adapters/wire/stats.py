"""Decode outcomes and their counters.

Every message a codec sees ends as exactly one of:

- a domain event (``MarketEvent``, or :class:`Decoded` with the envelope's metadata), counted
  by :class:`MessageType`;
- a :class:`Skip`, counted by :class:`SkipReason`.

The reason and type names are stable snake_case strings: they are Prometheus label values,
dead-letter headers and backtest report keys. Do not rename them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from domain.market import (
    DepthSnapshot,
    DominanceObservation,
    ExchangeFlow,
    MarketEvent,
    Ticker,
    Trade,
    VenueQuote,
    WhaleTransfer,
)


class SkipReason(StrEnum):
    """Why a message was skipped (one label per class of bad or unsupported input)."""

    MALFORMED_JSON = "malformed_json"
    """Not valid JSON (or not UTF-8)."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON, but the message (or its ``data``) is not a JSON object."""
    TOO_LARGE = "too_large"
    """Larger than the codec's ``max_bytes``; rejected before parsing."""
    MISSING_FIELD = "missing_field"
    """A required field is absent (including an event time: neither ``E`` nor ``timestamp``)."""
    NON_NUMERIC = "non_numeric"
    """A numeric field holds something that is not a number or a numeric string."""
    INVALID_PRICE = "invalid_price"
    """NaN, infinite, negative or zero price; negative (or, for a trade, zero) quantity."""
    CROSSED_BOOK = "crossed_book"
    """Best bid >= best ask (or a venue quote with bid > ask)."""
    EMPTY_BOOK = "empty_book"
    """A depth snapshot with no level on either side (after dropping zero quantities)."""
    UNKNOWN_SYMBOL = "unknown_symbol"
    """The symbol is not in the configured allow-list."""
    OUT_OF_ORDER = "out_of_order"
    """Event time went backwards for this (symbol, kind) by more than the tolerance."""
    FUTURE_DATED = "future_dated"
    """Event time beyond the wall clock plus a small tolerance (or, replaying without a wall
    clock, far ahead of the symbol's time line); never advances per-symbol state."""
    DUPLICATE = "duplicate"
    """The same ``message_id``, or the same trade id of a symbol, seen within the recent window."""
    UNSUPPORTED_STREAM = "unsupported_stream"
    """A stream the service does not consume (kline, bookTicker, markPrice, unknown...)."""
    UNSUPPORTED_TYPE = "unsupported_type"
    """An on-chain event whose ``type`` is neither ``whale_transfer`` nor ``exchange_flow``."""
    INVALID_VALUE = "invalid_value"
    """Any other value the domain rejects (bad symbol, negative time, wrong type...)."""
    TRUNCATED_FILE = "truncated_file"
    """A replay file ended mid-stream (truncated or corrupt gzip); the rest is lost."""
    BAD_RECORD = "bad_record"
    """A recording line whose wrapper is broken (no subject/input/data, bad base64...)."""


ALL_SKIP_REASONS: Final[frozenset[str]] = frozenset(r.value for r in SkipReason)

INTENDED_SKIPS: Final[frozenset[str]] = frozenset(
    {SkipReason.UNKNOWN_SYMBOL.value, SkipReason.UNSUPPORTED_STREAM.value}
)
"""Skips by design, not errors: a symbol outside the allow-list, a stream the service does
not consume (left out of ``messages_errors_total``, the error rate and its alert)."""


class MessageType(StrEnum):
    """Kinds of successfully decoded messages."""

    TRADE = "trade"
    TICKER = "ticker"
    DEPTH = "depth"
    DOMINANCE = "dominance"
    QUOTE = "quote"
    WHALE_TRANSFER = "whale_transfer"
    EXCHANGE_FLOW = "exchange_flow"


_TYPE_OF_EVENT: Final[dict[type, str]] = {
    Trade: MessageType.TRADE.value,
    Ticker: MessageType.TICKER.value,
    DepthSnapshot: MessageType.DEPTH.value,
    DominanceObservation: MessageType.DOMINANCE.value,
    VenueQuote: MessageType.QUOTE.value,
    WhaleTransfer: MessageType.WHALE_TRANSFER.value,
    ExchangeFlow: MessageType.EXCHANGE_FLOW.value,
}


def message_type(event: MarketEvent) -> str:
    """The :class:`MessageType` label of a decoded event."""
    return _TYPE_OF_EVENT[type(event)]


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that produced no event: ``reason`` is a :class:`SkipReason` value.

    ``detail`` is a short human-readable explanation (for logs and dead letters, never a
    metric label); ``stream`` is the envelope's stream (or input kind) when it was known.
    """

    reason: str
    detail: str = ""
    stream: str | None = None


class Decoded(NamedTuple):
    """A decoded event with the envelope metadata the service needs.

    ``trace_context`` is the producer's ``_otel_trace_context`` (string keys and values only,
    else None); ``message_id`` is the envelope's ``message_id`` when it is a string. (A named
    tuple: immutable like a frozen dataclass, without its per-field ``object.__setattr__`` —
    one is built per message.)
    """

    event: MarketEvent
    message_id: str | None
    trace_context: dict[str, str] | None
    stream: str | None


@dataclass(frozen=True, slots=True)
class SkipSample:
    """One retained skip, with its line number when it came from a file."""

    line: int | None
    reason: str
    detail: str
    stream: str | None


_MAX_STREAM_KINDS = 32
_OTHER_KIND = "other"


def stream_kind(stream: str | None) -> str:
    """The kind of a stream: ``btcusdt@kline_1m`` → ``kline``, ``btcusdt@depth@100ms`` →
    ``depth_diff``, ``btcusdt@bookTicker`` → ``bookTicker``; ``other`` when unnamed."""
    if not stream:
        return _OTHER_KIND
    _, at, rest = stream.partition("@")
    if not at or not rest:
        return _OTHER_KIND
    kind = rest.partition("@")[0]
    if kind.startswith("kline"):
        return "kline"
    if kind == "depth":
        return "depth_diff"
    return kind or _OTHER_KIND


class DecodeStats:
    """Plain-int counters of decode outcomes (exported to Prometheus by another adapter).

    - ``by_type``: decoded events per :class:`MessageType` value;
    - ``by_reason`` (also ``skipped`` / ``skipped_by_reason``): skips per reason — a
      :class:`SkipReason` value, or whatever reason a feed records (e.g. a decoder error);
    - ``unsupported_by_kind``: ``unsupported_stream`` skips per stream kind (``kline_1m``,
      ``bookTicker``...), bounded to 32 kinds (the rest under ``other``) so that a hostile
      producer cannot blow up label cardinality;
    - ``samples``: the first ``max_samples`` skips with their line numbers.
    """

    __slots__ = ("_max_samples", "by_reason", "by_type", "samples", "unsupported_by_kind")

    def __init__(self, max_samples: int = 20) -> None:
        self._max_samples = max_samples
        self.by_type: dict[str, int] = {}
        self.by_reason: dict[str, int] = {}
        self.unsupported_by_kind: dict[str, int] = {}
        self.samples: list[SkipSample] = []

    def record(self, result: MarketEvent | Decoded | Skip, line: int | None = None) -> None:
        """Count one outcome; ``line`` (1-based) is kept with the first skips."""
        cls = result.__class__
        if cls is Skip:
            self.record_skip(result, line)  # type: ignore[arg-type]
            return
        if cls is Decoded:
            cls = result.event.__class__  # type: ignore[union-attr]
        name = _TYPE_OF_EVENT.get(cls, _OTHER_KIND)
        by_type = self.by_type
        by_type[name] = by_type.get(name, 0) + 1

    def record_skip(self, skip: Skip, line: int | None = None) -> None:
        # Counted by the reason's plain text: a SkipReason member (a StrEnum) is not a dict
        # key every JSON encoder takes (orjson refused the backtest report with one).
        reason = str(skip.reason)
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if reason == SkipReason.UNSUPPORTED_STREAM:
            kind = stream_kind(skip.stream)
            counts = self.unsupported_by_kind
            if kind not in counts and len(counts) >= _MAX_STREAM_KINDS:
                kind = _OTHER_KIND
            counts[kind] = counts.get(kind, 0) + 1
        if len(self.samples) < self._max_samples:
            self.samples.append(SkipSample(line, reason, skip.detail, skip.stream))

    @property
    def skipped(self) -> dict[str, int]:
        """Skips per reason (the same dict as ``by_reason``)."""
        return self.by_reason

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Skips per reason (the same dict as ``by_reason``)."""
        return self.by_reason

    @property
    def decoded_total(self) -> int:
        return sum(self.by_type.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.by_reason.values())

    @property
    def total(self) -> int:
        return self.decoded_total + self.skipped_total

    def messages_by_type(self) -> dict[str, int]:
        """Decoded events per type plus unsupported streams per kind (``kline``...)."""
        counts = dict(self.by_type)
        for kind, count in self.unsupported_by_kind.items():
            counts[kind] = counts.get(kind, 0) + count
        return dict(sorted(counts.items()))

    def merge(self, other: DecodeStats) -> None:
        """Add another instance's counters to this one (samples up to this one's limit)."""
        for name, count in other.by_type.items():
            self.by_type[name] = self.by_type.get(name, 0) + count
        for reason, count in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + count
        for kind, count in other.unsupported_by_kind.items():
            self.unsupported_by_kind[kind] = self.unsupported_by_kind.get(kind, 0) + count
        room = self._max_samples - len(self.samples)
        if room > 0:
            self.samples.extend(other.samples[:room])

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (sorted keys inside, for deterministic reports)."""
        return {
            "decoded": self.decoded_total,
            "skipped": self.skipped_total,
            "by_type": dict(sorted(self.by_type.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
            "unsupported_by_kind": dict(sorted(self.unsupported_by_kind.items())),
            "samples": [
                {"line": s.line, "reason": s.reason, "detail": s.detail, "stream": s.stream}
                for s in self.samples
            ],
        }
