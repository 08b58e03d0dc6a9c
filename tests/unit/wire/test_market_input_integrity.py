"""Input integrity of the market-logic inputs: dominance, venue quotes, on-chain events.

The Binance codec's rule (adapters/wire/integrity.py) on each input's time lines — dominance
one, quotes per (venue, symbol), on-chain per (type, asset): a forged, future-dated,
duplicated or stale message is a counted Skip that moves no time line, so it can neither
trigger anything nor keep the real messages out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wire.integrity import IntegrityOptions
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.stats import Decoded, DecodeStats, Skip, SkipReason
from entrypoints.backtest_container import BacktestParts
from entrypoints.container import build_container
from entrypoints.settings import Settings

pytestmark = pytest.mark.unit

NOW_MS = 1_723_161_700_000
YEAR_2100_MS = 4_102_444_800_000
MINUTE_MS = 60_000

Fields = Callable[[int], dict[str, object]]
"""A message's fields for its n-th real occurrence (without timestamp and message id)."""

INPUTS: dict[str, tuple[InputKind, Fields]] = {
    "dominance": (InputKind.DOMINANCE, lambda n: {"btc_dominance": 50 + n % 7}),
    "quote": (
        InputKind.QUOTES,
        lambda n: {"venue": "Coinbase", "symbol": "btc-usdt", "bid": 100 + n, "ask": 101 + n},
    ),
    "whale_transfer": (
        InputKind.ONCHAIN,
        lambda n: {
            "type": "whale_transfer",
            "asset": "btc",
            "amount": 500 + n,
            "direction": "to_exchange",
        },
    ),
    "exchange_flow": (
        InputKind.ONCHAIN,
        lambda n: {
            "type": "exchange_flow",
            "asset": "ETH",
            "inflow": 10 + n,
            "outflow": 5,
            "period_seconds": 3600,
        },
    ),
}
NAMES = list(INPUTS)
stamp_forms = st.sampled_from(["ms", "iso", "float"])


def stamp(time_ms: int, form: str) -> object:
    if form == "iso":
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"
    return float(time_ms) if form == "float" else time_ms


def message(
    name: str, time_ms: int, n: int = 0, message_id: str | None = None, form: str = "ms"
) -> bytes:
    fields = {**INPUTS[name][1](n), "timestamp": stamp(time_ms, form)}
    if message_id is not None:
        fields["message_id"] = message_id
    return orjson.dumps(fields)


def decode(decoder: MarketInputDecoder, name: str, raw: bytes) -> Decoded | Skip:
    return decoder.decode_envelope(INPUTS[name][0], raw)


def outcome(result: Decoded | Skip) -> str:
    if isinstance(result, Skip):
        assert not result.detail.startswith("internal error"), result.detail
        return result.reason
    return "accepted"


def run(decoder: MarketInputDecoder, name: str, raws: list[bytes]) -> list[str]:
    return [outcome(decode(decoder, name, raw)) for raw in raws]


def live() -> MarketInputDecoder:
    return MarketInputDecoder(integrity=IntegrityOptions(clock_ms=lambda: NOW_MS))


# --- future-dated against the wall clock ----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES), stamp_forms, st.integers(5_001, YEAR_2100_MS - NOW_MS))
def test_with_a_wall_clock_a_future_message_is_rejected_and_blocks_nothing(
    name: str, form: str, ahead: int
) -> None:
    decoder = live()
    forged = message(name, NOW_MS + ahead, n=99, message_id="forged", form=form)
    real = [message(name, NOW_MS - 10_000 + i, i, f"real-{i}", form) for i in range(5)]
    assert run(decoder, name, [forged, *real, forged]) == [
        SkipReason.FUTURE_DATED,
        *["accepted"] * 5,
        SkipReason.FUTURE_DATED,
    ]
    # within the tolerance (5 s) it is accepted
    assert run(decoder, name, [message(name, NOW_MS + 5_000, 7, form=form)]) == ["accepted"]


def test_the_skip_is_counted_under_its_input_kind() -> None:
    decoder = live()
    stats = DecodeStats()
    for name, (kind, _) in INPUTS.items():
        result = decode(decoder, name, message(name, YEAR_2100_MS))
        assert isinstance(result, Skip)
        assert result.stream == kind
        stats.record(result)
    assert stats.by_reason == {SkipReason.FUTURE_DATED: 4}


# --- far-future first message in replay (no wall clock) --------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(NAMES), stamp_forms)
def test_in_replay_a_far_future_first_message_costs_at_most_one_re_anchoring_run(
    name: str, form: str
) -> None:
    """The forgery anchors the time line (nothing is known yet), the real messages re-anchor
    it after one run of 50, and every later forgery is far ahead of the real line."""
    decoder = MarketInputDecoder()
    forged = [message(name, YEAR_2100_MS + i, 99, f"forged-{i}", form) for i in range(3)]
    real = [message(name, NOW_MS + i * MINUTE_MS, i, f"real-{i}", form) for i in range(60)]
    outcomes = run(decoder, name, [forged[0], *real[:55], forged[1], *real[55:], forged[2]])
    assert outcomes == [
        "accepted",
        *[SkipReason.OUT_OF_ORDER] * 50,
        *["accepted"] * 5,
        SkipReason.FUTURE_DATED,
        *["accepted"] * 5,
        SkipReason.FUTURE_DATED,
    ]


def test_in_replay_a_real_jump_ahead_is_followed_after_a_run() -> None:
    decoder = MarketInputDecoder(integrity=IntegrityOptions(reanchor_after=3))
    later = NOW_MS + 3 * 86_400_000
    raws = [message("dominance", NOW_MS), *(message("dominance", later + i) for i in range(5))]
    assert run(decoder, "dominance", raws) == [
        "accepted",
        *[SkipReason.FUTURE_DATED] * 3,
        "accepted",
        "accepted",
    ]


# --- duplicates ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES), stamp_forms, st.booleans())
def test_a_repeated_message_id_is_a_duplicate(name: str, form: str, with_clock: bool) -> None:
    decoder = live() if with_clock else MarketInputDecoder()
    first = message(name, NOW_MS, 0, "m-1", form)
    later = message(name, NOW_MS + 1_000, 1, "m-1", form)  # another body, the same id
    assert run(decoder, name, [first, first, later]) == [
        "accepted",
        SkipReason.DUPLICATE,
        SkipReason.DUPLICATE,
    ]
    assert run(decoder, name, [message(name, NOW_MS + 2_000, 2, "m-2", form)]) == ["accepted"]


@pytest.mark.parametrize("name", NAMES)
def test_a_rejected_forgery_does_not_shadow_the_real_message_id(name: str) -> None:
    decoder = live()
    forged = message(name, YEAR_2100_MS, 9, "real-1")
    assert run(decoder, name, [forged, message(name, NOW_MS, 1, "real-1")]) == [
        SkipReason.FUTURE_DATED,
        "accepted",
    ]


def test_every_message_twice_is_every_message_once() -> None:
    decoder = MarketInputDecoder()
    for name in NAMES:
        raws = [message(name, NOW_MS + i, i, f"{name}-{i}") for i in range(20)]
        doubled = [raw for raw in raws for _ in range(2)]
        assert run(decoder, name, doubled) == ["accepted", SkipReason.DUPLICATE] * 20


def test_a_whale_transfer_is_the_same_transfer_under_another_message_id() -> None:
    """Its natural id: the tx_hash with asset, direction and amount."""
    decoder = MarketInputDecoder()

    def transfer(message_id: str, amount: int, tx_hash: str | None = "0xabc") -> bytes:
        fields = orjson.loads(message("whale_transfer", NOW_MS, message_id=message_id))
        fields["amount"] = amount
        if tx_hash is not None:
            fields["tx_hash"] = tx_hash
        return orjson.dumps(fields)

    raws = [
        transfer("a", 500),
        transfer("b", 500),  # the same transfer again
        transfer("c", 700),  # another output of the same transaction
        transfer("d", 500, None),  # no natural id: only the message id counts
        transfer("e", 500, None),
    ]
    assert run(decoder, "whale_transfer", raws) == [
        "accepted",
        SkipReason.DUPLICATE,
        "accepted",
        "accepted",
        "accepted",
    ]


# --- out of order, sparse forgeries, re-anchoring ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(NAMES), stamp_forms, st.integers(1, 10**9), st.booleans())
def test_an_older_message_is_out_of_order_and_moves_nothing(
    name: str, form: str, back: int, with_clock: bool
) -> None:
    decoder = live() if with_clock else MarketInputDecoder()
    newest = NOW_MS - 1_000
    raws = [
        message(name, newest - 5_000, 0, form=form),
        message(name, newest, 1, form=form),
        message(name, newest - back, 2, form=form),  # stale
        message(name, newest, 3, form=form),  # still in order: the stale one moved nothing
    ]
    assert run(decoder, name, raws) == ["accepted", "accepted", SkipReason.OUT_OF_ORDER, "accepted"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_clock", [True, False], ids=["live", "replay"])
def test_sparse_forged_messages_cannot_silence_the_input(name: str, with_clock: bool) -> None:
    """A forgery far in the future and a stale one before every 10th real message (one in
    six of the traffic, far more than the 50-in-a-row re-anchoring run): every forgery is
    rejected, every real message accepted."""
    decoder = live() if with_clock else MarketInputDecoder()
    start = NOW_MS - 400 * MINUTE_MS
    raws: list[bytes] = []
    expected: list[str] = []
    for i in range(300):
        if i % 10 == 1:
            raws += [message(name, YEAR_2100_MS + i, 99), message(name, start - MINUTE_MS, 98)]
            expected += [SkipReason.FUTURE_DATED, SkipReason.OUT_OF_ORDER]
        raws.append(message(name, start + i * MINUTE_MS, i))
        expected.append("accepted")
    assert run(decoder, name, raws) == expected


@pytest.mark.parametrize("name", NAMES)
def test_after_50_in_a_row_the_time_line_re_anchors(name: str) -> None:
    """A producer restarted with a clock an hour behind: 50 of its messages are out of order,
    then its time line is followed."""
    decoder = live()
    raws = [message(name, NOW_MS - 10_000, 0)]
    raws += [message(name, NOW_MS - 3_600_000 + i, i) for i in range(53)]
    assert run(decoder, name, raws) == [
        "accepted",
        *[SkipReason.OUT_OF_ORDER] * 50,
        "accepted",
        "accepted",
        "accepted",
    ]
    never = MarketInputDecoder(integrity=IntegrityOptions(reanchor_after=None))
    assert set(run(never, name, raws[:1] + raws[1:] * 2)[1:]) == {SkipReason.OUT_OF_ORDER}


def test_each_venue_symbol_asset_and_type_has_its_own_time_line() -> None:
    decoder = MarketInputDecoder()

    def quote(venue: str, symbol: str, time_ms: int) -> bytes:
        fields = {"venue": venue, "symbol": symbol, "bid": 1, "ask": 2, "timestamp": time_ms}
        return orjson.dumps(fields)

    assert run(
        decoder,
        "quote",
        [
            quote("kraken", "BTCUSDT", YEAR_2100_MS),  # anchors kraken/BTCUSDT only
            quote("coinbase", "BTCUSDT", NOW_MS),
            quote("kraken", "ETHUSDT", NOW_MS),
            quote("KRAKEN", "btc_usdt", NOW_MS),  # the same line as the first: normalised
        ],
    ) == ["accepted", "accepted", "accepted", SkipReason.OUT_OF_ORDER]
    flow = orjson.loads(message("exchange_flow", NOW_MS))
    assert run(
        decoder,
        "whale_transfer",
        [
            message("whale_transfer", NOW_MS + MINUTE_MS),
            orjson.dumps(flow),  # another type: its own line
            orjson.dumps({**flow, "asset": "BTC", "timestamp": NOW_MS - MINUTE_MS}),
            message("whale_transfer", NOW_MS),  # BTC transfers: back in time
        ],
    ) == ["accepted", "accepted", "accepted", SkipReason.OUT_OF_ORDER]


def test_reset_forgets_the_time_lines_and_ids() -> None:
    decoder = MarketInputDecoder()
    raw = message("dominance", NOW_MS, message_id="d-1")
    assert run(decoder, "dominance", [raw, raw]) == ["accepted", SkipReason.DUPLICATE]
    decoder.reset()
    assert run(decoder, "dominance", [raw]) == ["accepted"]


# --- the composition roots ---------------------------------------------------------------------


def test_the_service_decodes_the_inputs_against_the_wall_clock_the_backtest_does_not() -> None:
    service = build_container(Settings(config_store="memory")).input_decoder()
    forged = message("dominance", YEAR_2100_MS)
    assert outcome(decode(service, "dominance", forged)) == SkipReason.FUTURE_DATED
    backtest = BacktestParts().decoder().inputs
    assert outcome(decode(backtest, "dominance", forged)) == "accepted"
    assert outcome(decode(backtest, "dominance", message("dominance", NOW_MS))) == (
        SkipReason.OUT_OF_ORDER
    )


def test_skips_by_reason() -> None:
    decoder = live()
    stats = DecodeStats()
    for raw in (message("quote", NOW_MS, message_id="q"), message("quote", NOW_MS, message_id="q")):
        stats.record(decode(decoder, "quote", raw))
    stats.record(decode(decoder, "quote", message("quote", NOW_MS - 1)))
    assert Counter(stats.by_reason) == Counter({"duplicate": 1, "out_of_order": 1})
    assert stats.by_type == {"quote": 1}
