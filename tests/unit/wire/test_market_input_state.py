"""The market-input decoder's order and duplicate memory in partition checkpoints.

``MarketInputDecoder.to_state(owns)`` / ``merge_state`` (docs/adr/0022): a worker that takes
a partition over rejects the duplicate and out-of-order dominance, quote and on-chain
messages its predecessor rejected — each entry saved with the partition its messages are
routed to (dominance with BTCUSDT, on-chain events of X with XUSDT, quotes with their
symbol) — and keeps what it holds of its other partitions.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import orjson
import pytest

from adapters.wire.integrity import IntegrityOptions
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.stats import Decoded, Skip, SkipReason
from application.partitioning import partition_of

pytestmark = pytest.mark.unit

NOW_MS = 1_723_161_700_000
PARTITIONS = 16

Fields = Callable[[int], dict[str, object]]
"""A message's fields for its n-th occurrence (without timestamp and message id)."""

INPUTS: dict[str, tuple[InputKind, str, Fields]] = {
    "dominance": (InputKind.DOMINANCE, "BTCUSDT", lambda n: {"btc_dominance": 50 + n}),
    "quote": (
        InputKind.QUOTES,
        "SOLUSDT",
        lambda n: {"venue": "kraken", "symbol": "sol-usdt", "bid": 100 + n, "ask": 101 + n},
    ),
    "whale_transfer": (
        InputKind.ONCHAIN,
        "ETHUSDT",
        lambda n: {
            "type": "whale_transfer",
            "asset": "eth",
            "amount": 500.0 + n,
            "direction": "to_exchange",
            "tx_hash": f"0xabc{n}",
        },
    ),
    "exchange_flow": (
        InputKind.ONCHAIN,
        "LINKUSDT",
        lambda n: {
            "type": "exchange_flow",
            "asset": "LINK",
            "inflow": 10 + n,
            "outflow": 5,
            "period_seconds": 3600,
        },
    ),
}
"""Input → its subject, the symbol its messages are routed by, its fields."""


def _message(fields: Fields, n: int, message_id: str) -> bytes:
    return orjson.dumps({**fields(n), "timestamp": NOW_MS + n * 1_000, "message_id": message_id})


def _owns_partition(partition: int) -> Callable[[str], bool]:
    """The ``owns`` of ``partition`` (as WorkerState.capture gives it)."""
    return lambda symbol: partition_of(symbol, PARTITIONS) == partition


def _owns(symbol: str) -> Callable[[str], bool]:
    """The ``owns`` of the partition ``symbol`` is in."""
    return _owns_partition(partition_of(symbol, PARTITIONS))


def _checkpointed(state: dict[str, object]) -> dict[str, object]:
    """``state`` through MessagePack, as the checkpoint store keeps it."""
    decoded: dict[str, object] = msgspec.msgpack.decode(msgspec.msgpack.encode(state))
    return decoded


def _fed(name: str, count: int = 3) -> MarketInputDecoder:
    """A decoder that accepted ``count`` messages of input ``name`` (ids ``<name>-<n>``)."""
    kind, _, fields = INPUTS[name]
    decoder = MarketInputDecoder()
    for n in range(count):
        assert isinstance(
            decoder.decode_envelope(kind, _message(fields, n, f"{name}-{n}")), Decoded
        )
    return decoder


def _reason(result: Decoded | Skip) -> str | None:
    return result.reason if isinstance(result, Skip) else None


@pytest.mark.parametrize("name", INPUTS)
def test_a_restored_decoder_rejects_the_duplicate_and_out_of_order_messages_it_had_rejected(
    name: str,
) -> None:
    kind, symbol, fields = INPUTS[name]
    before = _fed(name)
    state = _checkpointed(before.to_state(_owns(symbol)))
    replays = {
        "the last message again": _message(fields, 2, f"{name}-2"),
        "an earlier one under a new id": _message(fields, 1, f"{name}-new"),
    }
    # the old worker rejects both (a whale transfer's earlier one: its tx_hash is a duplicate)
    expected = [_reason(before.decode_envelope(kind, raw)) for raw in replays.values()]
    assert expected == [
        SkipReason.DUPLICATE,
        SkipReason.DUPLICATE if name == "whale_transfer" else SkipReason.OUT_OF_ORDER,
    ]

    restored = MarketInputDecoder()
    restored.merge_state(state)
    assert _checkpointed(restored.to_state(_owns(symbol))) == state  # the saved memory
    assert [_reason(restored.decode_envelope(kind, raw)) for raw in replays.values()] == expected
    # without the state each of them is accepted (what a takeover did before)
    for raw in replays.values():
        assert _reason(MarketInputDecoder().decode_envelope(kind, raw)) is None
    # and the restored decoder goes on: the next message is accepted
    assert isinstance(restored.decode_envelope(kind, _message(fields, 3, f"{name}-3")), Decoded)


def test_a_whale_transfer_seen_before_the_takeover_stays_a_duplicate_under_a_new_id() -> None:
    kind, symbol, fields = INPUTS["whale_transfer"]
    restored = MarketInputDecoder()
    restored.merge_state(_checkpointed(_fed("whale_transfer").to_state(_owns(symbol))))
    again = orjson.dumps({**fields(1), "timestamp": NOW_MS + 60_000, "message_id": "other"})
    rejected = restored.decode_envelope(kind, again)
    assert isinstance(rejected, Skip)
    assert (rejected.reason, rejected.detail) == (SkipReason.DUPLICATE, "transfer '0xabc1' seen")


@pytest.mark.parametrize("name", INPUTS)
def test_each_entry_is_saved_with_the_partition_its_messages_are_routed_to(name: str) -> None:
    _, symbol, _ = INPUTS[name]
    decoder = _fed(name)
    owner = partition_of(symbol, PARTITIONS)
    for partition in range(PARTITIONS):
        state = decoder.to_state(_owns_partition(partition))
        entries = [state["last"], state["message_ids"], state["transfers"]]
        assert any(entries) == (partition == owner), (partition, state)
    saved = decoder.to_state(_owns(symbol))
    assert saved["message_ids"] == [[symbol, f"{name}-{n}"] for n in range(3)]


def test_merging_keeps_the_other_partitions_entries() -> None:
    restored = _fed("quote")  # SOLUSDT's partition, held before the takeover
    held = restored.to_state(_owns("SOLUSDT"))
    kind, _, fields = INPUTS["dominance"]
    restored.merge_state(_checkpointed(_fed("dominance").to_state(_owns("BTCUSDT"))))
    assert partition_of("SOLUSDT", PARTITIONS) != partition_of("BTCUSDT", PARTITIONS)
    quote_kind, _, quote = INPUTS["quote"]
    assert _reason(restored.decode_envelope(quote_kind, _message(quote, 2, "quote-2"))) == (
        SkipReason.DUPLICATE
    )
    assert _reason(restored.decode_envelope(quote_kind, _message(quote, 0, "q"))) == (
        SkipReason.OUT_OF_ORDER
    )
    assert _reason(restored.decode_envelope(kind, _message(fields, 2, "dominance-2"))) == (
        SkipReason.DUPLICATE
    )
    assert restored.to_state(_owns("BTCUSDT"))["last"]  # the restored partition's
    assert restored.to_state(_owns("SOLUSDT"))["last"] == held["last"]  # unchanged


def test_the_saved_ids_are_bounded_by_the_window() -> None:
    kind, symbol, fields = INPUTS["dominance"]
    decoder = MarketInputDecoder(integrity=IntegrityOptions(dedup_window=4))
    for n in range(50):
        assert isinstance(decoder.decode_envelope(kind, _message(fields, n, f"d-{n}")), Decoded)
    saved = decoder.to_state(_owns(symbol))
    assert saved["message_ids"] == [[symbol, f"d-{n}"] for n in range(46, 50)]


@pytest.mark.parametrize(
    "change",
    [
        {"message_ids": [["BTCUSDT"]]},
        {"message_ids": [["BTCUSDT", 7]]},
        {"transfers": [["0x1", "ETH", "to_exchange", "lots"]]},
        {"last": [["binance", "BTC", 1]]},
        {"last": [["quotes", ["kraken", 3], 1]]},
        {"last": [["whale_transfer", "ETH", 1.9]]},
        {"last": [["whale_transfer", "ETH", True]]},
        {"last": [["whale_transfer", "ETH", "7"]]},
        {"last": [["whale_transfer", "ETH", None]]},
        {"rejects": None},
    ],
)
def test_a_malformed_state_is_refused(change: dict[str, object]) -> None:
    state = {**_fed("whale_transfer").to_state(_owns("ETHUSDT")), **change}
    with pytest.raises(ValueError, match="state"):
        MarketInputDecoder().merge_state(state)


def _plain_types(value: object) -> set[type]:
    """The exact types of every value in ``value``, containers included."""
    if isinstance(value, dict):
        return {dict} | {t for item in value.items() for part in item for t in _plain_types(part)}
    if isinstance(value, list):
        return {list} | {t for item in value for t in _plain_types(item)}
    return {type(value)}


@pytest.mark.parametrize("name", INPUTS)
def test_the_state_is_plain_data_and_merges_back_as_it_is(name: str) -> None:
    """``to_state`` gives plain data (no enum members: StateHolder's contract) and
    ``merge_state`` restores exactly what it gave, not only after MessagePack."""
    kind, symbol, fields = INPUTS[name]
    state = _fed(name).to_state(_owns(symbol))
    assert _plain_types(state) <= {dict, list, str, int, float}
    restored = MarketInputDecoder()
    restored.merge_state(state)
    assert restored.to_state(_owns(symbol)) == state
    again = restored.decode_envelope(kind, _message(fields, 2, f"{name}-2"))
    assert _reason(again) == SkipReason.DUPLICATE
