"""Capture files: the recorder's line format, and a line decoder for every capture format.

Two formats are replayed, line by line, and may be mixed in one file:

- the **producer format** of the bundled capture: each line is one Binance producer message
  (``{"stream", "data", "timestamp", ...}``), decoded by the Binance codec;
- the **recording format** that ``realtime-strategies record`` writes: each line wraps one
  NATS message with where and when it was received::

      {"subject": "binance.websocket.data", "input": "binance",
       "received_at": "2026-12-06T20:01:02.123456Z", "received_at_ns": 1733515262123456789,
       "data": "<the message, exactly>"}

  ``input`` names the decoder (``binance``, ``dominance``, ``quotes``, ``onchain``) so that a
  recording replays whatever the subjects were called. ``data`` is the message's bytes as a
  JSON string when they are UTF-8 (JSON escaping round-trips them exactly); other bytes go in
  ``data_b64`` (standard base64). A recording line always starts with ``{"subject":``, which
  is how the decoder tells the formats apart without parsing twice.

A recording line's message is judged as the live service judged it when it arrived:
future-dated against its ``received_at`` (:class:`ReceiveClock`, the wall clock of the
recording) instead of against the replay's time line, so a forged message the service
rejected is rejected by the backtest too.

Bad lines are :class:`Skip` s (``bad_record`` for a broken wrapper, the codec's reasons for a
bad message inside one): counted by the replay, never raised.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson

from adapters.wire.binance import BinanceDecoder
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.stats import Skip, SkipReason
from domain.market import MarketEvent

BINANCE_INPUT: Final = "binance"
"""The input name of Binance producer messages (trades, tickers, depth)."""
RECORD_INPUTS: Final = (
    BINANCE_INPUT,
    InputKind.DOMINANCE.value,
    InputKind.QUOTES.value,
    InputKind.ONCHAIN.value,
)
RECORD_PREFIX: Final = b'{"subject":'


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One message as the recorder received it."""

    subject: str
    input: str
    data: bytes
    received_at_ns: int


def _iso_ns(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1000:06d}Z"


def encode_record(message: RecordedMessage) -> bytes:
    """One line of the recording format (without the newline)."""
    record: dict[str, str | int] = {
        "subject": message.subject,
        "input": message.input,
        "received_at": _iso_ns(message.received_at_ns),
        "received_at_ns": message.received_at_ns,
    }
    try:
        record["data"] = message.data.decode("utf-8")
    except UnicodeDecodeError:
        record["data_b64"] = base64.b64encode(message.data).decode("ascii")
    return orjson.dumps(record)


class BadRecordError(ValueError):
    """A recording line whose wrapper is not a record."""


def decode_record(line: bytes) -> RecordedMessage:
    """Parse one recording line; raises :class:`BadRecordError`."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadRecordError(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise BadRecordError("not a JSON object")
    subject, input_, at = record.get("subject"), record.get("input"), record.get("received_at_ns")
    if not isinstance(subject, str) or not isinstance(input_, str):
        raise BadRecordError("subject and input must be strings")
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise BadRecordError("received_at_ns must be a non-negative integer")
    text, b64 = record.get("data"), record.get("data_b64")
    if isinstance(text, str) and b64 is None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
            raise BadRecordError("data is not valid UTF-8 text") from None
    elif isinstance(b64, str) and text is None:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadRecordError("data_b64 is not base64") from None
    else:
        raise BadRecordError("exactly one of data (string) and data_b64 (string) is required")
    return RecordedMessage(subject, input_, data, at)


class ReceiveClock:
    """The receive time (ms) of the recording line being decoded, as a decoder's
    ``clock_ms``: the wall clock the live service had when that message arrived."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


class RecordedDecoders:
    """The codecs of recording lines, judged at the line's receive time: both decoders'
    integrity options' ``clock_ms`` is ``clock``, which the line decoder sets to each
    line's receive time. ``symbols``: the allow-list, as for :class:`BinanceDecoder`."""

    __slots__ = ("binance", "clock", "inputs")

    def __init__(self, symbols: Iterable[str] | str | None = None) -> None:
        self.clock = ReceiveClock()
        integrity = IntegrityOptions(clock_ms=self.clock)
        self.binance = BinanceDecoder(symbols, integrity=integrity)
        self.inputs = MarketInputDecoder(symbols, integrity=integrity)


class CaptureLineDecoder:
    """Decodes a capture line of either format into a market event or a :class:`Skip`.

    Producer-format lines go straight to the Binance codec (the backtest's fast path);
    recording lines are unwrapped and their message decoded by the codec of their ``input``:
    those of ``recorded`` at the line's receive time when given (each format then keeps its
    own time lines and recent ids), else the producer lines' codecs.
    Implements the replay feed's ``LineDecoder`` (``decode``, ``reset``).
    """

    def __init__(
        self,
        binance: BinanceDecoder,
        inputs: MarketInputDecoder | None = None,
        recorded: RecordedDecoders | None = None,
    ) -> None:
        self.binance = binance
        self.inputs = inputs if inputs is not None else MarketInputDecoder()
        self.recorded = recorded
        self._decode_producer = binance.decode
        self.records = 0
        """Recording-format lines seen."""

    def reset(self) -> None:
        self.binance.reset()
        self.inputs.reset()
        if self.recorded is not None:
            self.recorded.binance.reset()
            self.recorded.inputs.reset()

    def decode(self, line: bytes) -> MarketEvent | Skip:
        if not line.startswith(RECORD_PREFIX):
            return self._decode_producer(line)
        self.records += 1
        try:
            message = decode_record(line)
        except BadRecordError as error:
            return Skip(SkipReason.BAD_RECORD, str(error))
        binance, inputs, recorded = self.binance, self.inputs, self.recorded
        if recorded is not None:
            recorded.clock.ms = message.received_at_ns // 1_000_000
            binance, inputs = recorded.binance, recorded.inputs
        if message.input == BINANCE_INPUT:
            return binance.decode(message.data)
        if message.input in _INPUT_KINDS:
            return inputs.decode(_INPUT_KINDS[message.input], message.data)
        return Skip(
            SkipReason.UNSUPPORTED_STREAM,
            f"recorded input {message.input[:40]!r} is not one of {', '.join(RECORD_INPUTS)}",
        )


_INPUT_KINDS: Final[Mapping[str, InputKind]] = {kind.value: kind for kind in InputKind}
