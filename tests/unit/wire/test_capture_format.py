"""Capture files: the recording format round-trips exact bytes, both formats replay alike, bad
lines are counted skips (hypothesis: no input makes the parser raise)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory.replay_feed import ReplayMarketFeed
from adapters.wire.binance import BinanceDecoder
from adapters.wire.capture import (
    RECORD_PREFIX,
    BadRecordError,
    CaptureLineDecoder,
    RecordedMessage,
    decode_record,
    encode_record,
)
from adapters.wire.stats import DecodeStats, Skip, SkipReason
from domain.market import DepthSnapshot, DominanceObservation, Ticker, Trade, VenueQuote
from entrypoints.backtest_container import BacktestParts
from tests.data import capture_lines

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def producer_lines() -> list[bytes]:
    return capture_lines(3000)


def record(data: bytes, input_: str = "binance", subject: str = "binance.websocket.data") -> bytes:
    return encode_record(RecordedMessage(subject, input_, data, 1_733_515_262_123_456_789))


@settings(max_examples=300)
@given(
    data=st.binary(max_size=400),
    subject=st.text(min_size=1, max_size=40),
    at=st.integers(0, 2**63 - 1),
)
def test_recording_round_trips_any_bytes_exactly(data: bytes, subject: str, at: int) -> None:
    message = RecordedMessage(subject, "binance", data, at)
    line = encode_record(message)
    assert line.startswith(RECORD_PREFIX)
    assert b"\n" not in line  # one message, one line, whatever its bytes
    assert decode_record(line) == message


def test_utf8_goes_as_text_other_bytes_as_base64() -> None:
    assert orjson.loads(record(b'{"a": "\xc3\xa9"}'))["data"] == '{"a": "é"}'
    loaded = orjson.loads(record(b"\xff\x00raw"))
    assert "data" not in loaded
    assert loaded["data_b64"] == "/wByYXc="
    assert loaded["received_at"] == "2024-12-06T20:01:02.123456Z"


@settings(max_examples=500)
@given(
    line=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: RECORD_PREFIX + b),
        st.dictionaries(
            st.sampled_from(["subject", "input", "received_at_ns", "data", "data_b64"]),
            st.one_of(
                st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=30)
            ),
        ).map(lambda d: orjson.dumps({"subject": d.pop("subject", "x"), **d})),
    )
)
def test_no_line_makes_the_decoder_raise(line: bytes) -> None:
    result = CaptureLineDecoder(BinanceDecoder()).decode(line)
    assert isinstance(result, Skip | DepthSnapshot | Trade | Ticker | DominanceObservation)


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b'{"subject": 1}', "not JSON"),
        (b'{"subject":"s","input":"binance","received_at_ns":1}', "exactly one of"),
        (b'{"subject":"s","input":"binance","received_at_ns":-1,"data":"x"}', "received_at_ns"),
        (b'{"subject":"s","input":"binance","received_at_ns":true,"data":"x"}', "received_at_ns"),
        (b'{"subject":"s","input":2,"received_at_ns":1,"data":"x"}', "strings"),
        (b'{"subject":"s","input":"binance","received_at_ns":1,"data_b64":"!!"}', "base64"),
        (
            b'{"subject":"s","input":"binance","received_at_ns":1,"data":"x","data_b64":"eA=="}',
            "one",
        ),
        (b'{"subject":[]}', "strings"),
    ],
)
def test_broken_records_are_bad_record_skips(line: bytes, detail: str) -> None:
    if detail == "not JSON":
        line = RECORD_PREFIX + b"{"
    with pytest.raises(BadRecordError, match=detail):
        decode_record(line)
    result = CaptureLineDecoder(BinanceDecoder()).decode(line)
    assert isinstance(result, Skip)
    assert result.reason == SkipReason.BAD_RECORD


def test_a_recorded_message_decodes_like_the_producer_line(producer_lines: list[bytes]) -> None:
    plain, wrapped = CaptureLineDecoder(BinanceDecoder()), CaptureLineDecoder(BinanceDecoder())
    for line in producer_lines:
        assert wrapped.decode(record(line)) == plain.decode(line)
    assert wrapped.records == len(producer_lines)
    assert plain.records == 0


def test_side_inputs_are_decoded_by_their_input_name() -> None:
    decoder = CaptureLineDecoder(BinanceDecoder())
    dominance = decoder.decode(
        record(b'{"btc_dominance": 56.2, "timestamp": 1700000000000}', "dominance", "any.subject")
    )
    assert dominance == DominanceObservation(1_700_000_000_000, 56.2)
    quote = decoder.decode(
        record(b'{"venue":"coinbase","symbol":"BTC-USDT","bid":1,"ask":2,"timestamp":1}', "quotes")
    )
    assert isinstance(quote, VenueQuote)
    assert quote.symbol == "BTCUSDT"
    unknown = decoder.decode(record(b"{}", "klines"))
    assert isinstance(unknown, Skip)
    assert unknown.reason == SkipReason.UNSUPPORTED_STREAM
    bad_inside = decoder.decode(record(b"not json", "dominance"))
    assert isinstance(bad_inside, Skip)
    assert bad_inside.reason == SkipReason.MALFORMED_JSON


def test_a_mixed_file_replays_the_same_events(tmp_path: Path, producer_lines: list[bytes]) -> None:
    """Half the lines as the producer wrote them, half recorded, gzip: the same events."""
    mixed = [record(line) if i % 2 else line for i, line in enumerate(producer_lines)]
    plain_path, mixed_path = tmp_path / "plain.jsonl", tmp_path / "mixed.jsonl.gz"
    plain_path.write_bytes(b"\n".join(producer_lines) + b"\n")
    mixed_path.write_bytes(gzip.compress(b"\n".join([*mixed, b"garbage", RECORD_PREFIX]) + b"\n"))
    stats = DecodeStats()
    plain = ReplayMarketFeed(plain_path, CaptureLineDecoder(BinanceDecoder())).iter_events()
    again = ReplayMarketFeed(mixed_path, CaptureLineDecoder(BinanceDecoder()), stats).iter_events()
    for a, b in itertools.zip_longest(plain, again):
        assert a == b
    assert stats.skipped == {SkipReason.MALFORMED_JSON: 1, SkipReason.BAD_RECORD: 1}


def _trade_at(time_ms: int, trade_id: int) -> bytes:
    data = {"e": "trade", "E": time_ms, "s": "BTCUSDT", "t": trade_id, "p": "60000.0"}
    return orjson.dumps(
        {"stream": "btcusdt@trade", "data": data | {"q": "0.1", "T": time_ms, "m": False}}
    )


def _dominance_at(time_ms: int, percent: float) -> bytes:
    return orjson.dumps({"btc_dominance": percent, "timestamp": time_ms})


def test_a_backtest_judges_recorded_messages_at_their_receive_time() -> None:
    """A forged trade stamped an hour ahead, which the live service rejected as future-dated
    when it arrived, is rejected by the backtest of the recording too. Judged against the
    replay's time line instead (it is less than a day ahead), it was accepted, and the real
    trades after it were skipped as out of order."""
    decoder = BacktestParts().decoder()
    t = 1_723_161_255_000
    hour = 3_600_000

    def received(data: bytes, at_ms: int, input_: str = "binance") -> object:
        line = encode_record(RecordedMessage("s", input_, data, at_ms * 1_000_000))
        return decoder.decode(line)

    assert isinstance(received(_trade_at(t, 1), t + 10), Trade)
    forged = received(_trade_at(t + hour, 2), t + 1_000)
    assert isinstance(forged, Skip)
    assert forged.reason == SkipReason.FUTURE_DATED
    for n in (3, 4):
        assert isinstance(received(_trade_at(t + n * 1_000, n), t + n * 1_000 + 10), Trade)
    forged_dominance = received(_dominance_at(t + hour, 99.0), t + 5_000, "dominance")
    assert isinstance(forged_dominance, Skip)
    assert forged_dominance.reason == SkipReason.FUTURE_DATED
    real = received(_dominance_at(t + 5_000, 56.2), t + 5_010, "dominance")
    assert real == DominanceObservation(t + 5_000, 56.2)
    # The producer lines of the same replay keep the time-line rule (no receive time).
    assert isinstance(decoder.decode(_trade_at(t + hour, 5)), Trade)
