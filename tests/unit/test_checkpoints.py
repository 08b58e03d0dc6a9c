"""Partition state checkpoints: restoring a snapshot and continuing gives exactly the signals
(and market metrics) of never stopping; an unreadable or incompatible snapshot is refused
with its reason and leaves the live state untouched (docs/adr/0022-partition-state-checkpoints.md).

The workload is the composition root's own path (decoders → engine with the metrics book) on
the bundled capture fanned out to four symbols, with a day and a half of BTC dominance
before it and quotes, whale transfers and exchange flows in the middle, so every strategy,
the governance gate, the book and the decoder hold state at the split.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.nats.checkpoints import decode_snapshot, encode_snapshot
from adapters.wire.signals import encode_signal
from adapters.wire.stats import Skip
from application.checkpoints import (
    FORMAT_VERSION,
    PartitionSnapshot,
    RestoreResult,
    SnapshotRejectedError,
    WorkerState,
)
from bench import dominance_history
from bench.fanout import capture_lines, fan_out
from bench.market_inputs import exchange_flow, venue_quote, whale_transfer
from domain.live_outcomes import LiveOutcome
from domain.metrics import Timeframe
from domain.strategies.registry import STRATEGIES
from entrypoints.container import Container, build_container, worker_state
from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings
from tests.environment import NO_CONFIDENCE_FLOOR

pytestmark = pytest.mark.unit

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "LINKUSDT")
PARTITIONS = 16
# ticker_velocity signals on the capture too (its windows are state worth checking)
UNGOVERNED = NO_CONFIDENCE_FLOOR | {
    "TICKER_VELOCITY_BUY_THRESHOLD": "0.1",
    "TICKER_VELOCITY_SELL_THRESHOLD": "-0.1",
    "TICKER_VELOCITY_MIN_PRICE_CHANGE": "0.01",
    "TICKER_VELOCITY_VOLUME_CONFIRMATION": "false",
    "TICKER_VELOCITY_TIME_WINDOW": "30",
}
SETTINGS = Settings(
    config_store="memory",
    trading_symbols="*",
    max_signals_per_minute=0,
    max_signals_per_symbol_per_hour=0,
)

Message = tuple[str, bytes]


def _first_time_ms(lines: list[bytes]) -> int:
    for line in lines:
        data = orjson.loads(line)["data"]
        if "E" in data:
            return int(data["E"])
    raise AssertionError("no event time in the capture")


def _workload() -> list[Message]:
    lines = capture_lines()
    start = _first_time_ms(lines)
    half = len(lines) // 2
    middle = _first_time_ms(lines[half:])
    ask = next(
        float(orjson.loads(line)["data"]["asks"][0][0])
        for line in reversed(lines[:half])
        if b'"asks"' in line
    )
    bid = round(ask * 1.01, 2)
    inputs: list[Message] = [
        ("dominance", dominance_history.jump(middle)),
        ("onchain", whale_transfer("BTC", 250, "to_exchange", middle)),
        ("onchain", exchange_flow("SOL", 900, 100, middle)),
        *(
            ("quotes", venue_quote(symbol, bid, round(bid * 1.0002, 2), middle))
            for symbol in ("SOLUSDT", "LINKUSDT")
        ),
    ]
    history = [("dominance", raw) for raw in dominance_history.history(start - 60_000)]
    return [
        *history,
        *(("binance", raw) for raw in fan_out(lines[:half], SYMBOLS)),
        *inputs,
        *(("binance", raw) for raw in fan_out(lines[half:], SYMBOLS)),
    ]


WORKLOAD = _workload()


def _container() -> Container:
    container = build_container(SETTINGS)
    container.environ.override(UNGOVERNED)
    asyncio.run(container.config_cache().refresh())
    return container


def _state(container: Container) -> WorkerState:
    return worker_state(
        container.engine(),
        container.metrics_book(),
        container.decoder(),
        container.input_decoder(),
        container.live_scorer(),
        PartitionSettings(worker_count=1, partition_count=PARTITIONS),
        SETTINGS,
    )


def _run(
    container: Container, messages: Iterable[Message]
) -> tuple[dict[str, Any], list[LiveOutcome]]:
    """The signals, and the live scorer's outcome updates, of ``messages``."""
    decoders = container.decoders()
    engine = container.engine()
    scorer = container.live_scorer()
    signals: dict[str, Any] = {}
    outcomes: list[LiveOutcome] = []
    for kind, raw in messages:
        result = decoders[kind](raw)
        if isinstance(result, Skip):
            continue
        outcomes += scorer.on_event(result.event)  # the event first, as the run loop does
        for signal in engine.process(result.event):
            signals[signal.signal_id] = orjson.loads(encode_signal(signal, "test"))
            outcomes += scorer.on_signal(signal)
    return signals, outcomes


def _metrics(container: Container) -> dict[str, Any]:
    book = container.metrics_book()
    out: dict[str, Any] = {"summary": book.summary().as_dict()}
    for symbol in SYMBOLS:
        depth = book.depth(symbol)
        pressure = book.pressure(symbol, Timeframe.H1)
        out[symbol] = (
            depth.as_dict() if depth else None,
            pressure.as_dict() if pressure else None,
        )
    return out


def _snapshots(state: WorkerState, seq: int) -> list[bytes]:
    return [
        encode_snapshot(
            PartitionSnapshot(
                partition=p,
                partition_count=PARTITIONS,
                stream="MARKETDATA",
                stream_created="2026-12-07T00:00:00+00:00",
                stream_seq=seq,
                taken_at_ms=0,
                covers_seq=0,
                fingerprint=state.fingerprint,
                state=state.capture(p),
            )
        )
        for p in range(PARTITIONS)
    ]


Uninterrupted = tuple[dict[str, Any], dict[str, Any], list[LiveOutcome]]


@pytest.fixture(scope="module")
def uninterrupted() -> Uninterrupted:
    container = _container()
    signals, outcomes = _run(container, WORKLOAD)
    strategies = {s["strategy_id"] for s in signals.values()}
    assert strategies == set(STRATEGIES), strategies  # every strategy signals
    # the capture spans ~6 minutes of event time: 1m and 5m are reached, trades close
    assert {o.changed_horizon for o in outcomes} >= {"1m", "5m"}
    assert any(o.trade is not None for o in outcomes)
    return signals, _metrics(container), outcomes


HISTORY = 31
HALF = HISTORY + len(WORKLOAD) // 2


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(split=st.integers(min_value=1, max_value=len(WORKLOAD) - 1))
@example(split=HISTORY)  # the dominance history only
@example(split=HALF + 5)  # right after the quotes, flows and whale transfers
def test_restoring_every_partition_and_continuing_equals_never_stopping(
    split: int, uninterrupted: Uninterrupted
) -> None:
    expected_signals, expected_metrics, expected_outcomes = uninterrupted
    before = _container()
    signals, outcomes = _run(before, WORKLOAD[:split])
    blobs = _snapshots(_state(before), split)
    del before

    after = _container()
    state = _state(after)
    for blob in blobs:
        state.restore(decode_snapshot(blob))
    later_signals, later_outcomes = _run(after, WORKLOAD[split:])
    signals.update(later_signals)

    assert set(signals) == set(expected_signals)
    assert signals == expected_signals
    assert _metrics(after) == expected_metrics
    # signals pending at the split are scored on by the restored scorer, as if never stopped
    assert outcomes + later_outcomes == expected_outcomes


def test_a_partition_snapshot_holds_only_its_symbols_and_dominance_goes_with_btcusdt() -> None:
    container = _container()
    _run(container, WORKLOAD[: HALF + 5])
    state = _state(container)
    partition_of = state.partition_of
    pending = 0
    for p in range(PARTITIONS):
        captured = state.capture(p)
        engine = captured["engine"]
        assert isinstance(engine, dict)
        dominance = engine["strategies"]["btc_dominance"]
        assert bool(dominance) == (p == partition_of("BTCUSDT"))
        book = captured["metrics"]
        assert isinstance(book, dict)
        assert {entry["symbol"] for entry in book["symbols"]} == {
            s for s in SYMBOLS if partition_of(s) == p
        }
        # the market-input decoder's time lines go where the router sends their messages:
        # dominance with BTCUSDT, on-chain events of X with XUSDT, quotes with their symbol
        inputs = captured["market_inputs"]
        assert isinstance(inputs, dict)
        lines = {(kind, key if isinstance(key, str) else key[1]) for kind, key, _ in inputs["last"]}
        assert lines == {
            (kind, key)
            for kind, key, symbol in [
                ("dominance", "BTC", "BTCUSDT"),
                ("whale_transfer", "BTC", "BTCUSDT"),
                ("exchange_flow", "SOL", "SOLUSDT"),
                ("quotes", "SOLUSDT", "SOLUSDT"),
                ("quotes", "LINKUSDT", "LINKUSDT"),
            ]
            if partition_of(symbol) == p
        }
        # the live scorer's pending signals and trade model: the partition's symbols only
        scored = captured["live_outcomes"]
        assert isinstance(scored, dict)
        owned = {s for s in SYMBOLS if partition_of(s) == p}
        assert {entry["symbol"] for entry in scored["symbols"]} <= owned
        assert {entry["symbol"] for entry in scored["simulator"]["symbols"]} <= owned
        pending += sum(len(entry["pending"]) for entry in scored["symbols"])
    assert pending == container.live_scorer().pending > 0


def _one_snapshot(**changes: Any) -> tuple[WorkerState, PartitionSnapshot]:
    container = _container()
    _run(container, WORKLOAD[: HISTORY + 2_000])
    state = _state(container)
    p = state.partition_of("BTCUSDT")
    snapshot = PartitionSnapshot(
        partition=p,
        partition_count=PARTITIONS,
        stream="MARKETDATA",
        stream_created="c",
        stream_seq=7,
        taken_at_ms=0,
        covers_seq=0,
        fingerprint=state.fingerprint,
        state=state.capture(p),
    )
    return state, dataclasses.replace(snapshot, **changes)


@pytest.mark.parametrize(
    ("mangle", "result"),
    [
        (lambda b: b[:-10], RestoreResult.CORRUPT),  # truncated
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], RestoreResult.CORRUPT),  # a bit flip
        (lambda b: b"XXXX" + b[4:], RestoreResult.CORRUPT),  # not ours
        (lambda b: b"", RestoreResult.CORRUPT),
        (lambda b: b[:4] + bytes([99]) + b[5:], RestoreResult.INCOMPATIBLE),  # codec v99
    ],
)
def test_an_unreadable_snapshot_is_refused_with_its_reason(
    mangle: Any, result: RestoreResult
) -> None:
    _, snapshot = _one_snapshot()
    blob = encode_snapshot(snapshot)
    assert decode_snapshot(blob).state == snapshot.state
    with pytest.raises(SnapshotRejectedError) as refused:
        decode_snapshot(mangle(blob))
    assert refused.value.result is result


@pytest.mark.parametrize(
    "changes",
    [{"version": FORMAT_VERSION + 1}, {"fingerprint": "0123456789abcdef"}, {"state": {}}],
)
def test_a_snapshot_of_another_layout_is_refused_as_incompatible(changes: dict[str, Any]) -> None:
    _, snapshot = _one_snapshot(**changes)
    _refused_as_incompatible(snapshot)


LAYOUT_1 = {"engine", "metrics", "decoder"}
LAYOUT_2 = LAYOUT_1 | {"market_inputs"}


@pytest.mark.parametrize(
    ("version", "holders"),
    [(1, LAYOUT_1), (2, LAYOUT_2), (FORMAT_VERSION, LAYOUT_1), (FORMAT_VERSION, LAYOUT_2)],
)
def test_a_snapshot_of_an_older_layout_is_refused(version: int, holders: set[str]) -> None:
    """Layout 2 added the market-input decoder's memory, layout 3 the live scorer's pending
    signals: a snapshot written by a worker of an older layout is refused as incompatible —
    the worker replays that partition instead of restoring it without that state — and so
    would one of this layout that lacked it, whatever its fingerprint says."""
    assert FORMAT_VERSION == 3
    _, snapshot = _one_snapshot(version=version)
    assert set(snapshot.state) == LAYOUT_2 | {"live_outcomes"}
    older = {name: part for name, part in snapshot.state.items() if name in holders}
    _refused_as_incompatible(dataclasses.replace(snapshot, state=older))


def _refused_as_incompatible(snapshot: PartitionSnapshot) -> None:
    fresh = _state(_container())
    with pytest.raises(SnapshotRejectedError) as refused:
        fresh.restore(decode_snapshot(encode_snapshot(snapshot)))
    assert refused.value.result is RestoreResult.INCOMPATIBLE
    assert fresh.capture(snapshot.partition) == _state(_container()).capture(snapshot.partition)


def test_a_snapshot_that_fails_half_way_leaves_the_live_state_untouched() -> None:
    _, snapshot = _one_snapshot()
    broken: dict[str, Any] = dict(snapshot.state)
    metrics = dict(broken["metrics"])
    metrics["symbols"] = [{"symbol": "BTCUSDT", "event_time_ms": "soon"}]
    broken["metrics"] = metrics  # the engine's part is fine and would be merged first
    container = _container()
    fresh = _state(container)
    empty = fresh.capture(snapshot.partition)
    with pytest.raises(SnapshotRejectedError) as refused:
        fresh.restore(dataclasses.replace(snapshot, state=broken))
    assert refused.value.result is RestoreResult.ERROR
    assert fresh.capture(snapshot.partition) == empty
