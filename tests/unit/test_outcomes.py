"""Live outcomes in the application: the recorder (scoring, buffering, saving, retention),
the failover store on in-memory stores, and the performance report."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory.outcome_store import InMemoryOutcomeStore
from adapters.outcome_failover import FailoverOutcomeStore
from adapters.wire.signals import signal_to_wire
from application.outcomes import (
    BUILD_SLICE,
    SAVE_BATCH,
    OutcomeQuery,
    OutcomeRecorder,
    performance_block,
)
from application.ports import StoreUnavailableError
from domain.live_outcomes import LiveOutcome, LiveScorer, OutcomeChange
from domain.signal import Action
from tests.contract.outcome_store_contract import make_outcome
from tests.unit.test_trade_model import make_signal, trade

pytestmark = pytest.mark.unit

DAY_MS = 86_400_000


class Observed:
    def __init__(self) -> None:
        self.changes: list[OutcomeChange] = []

    def outcome_scored(self, outcome: LiveOutcome) -> None:
        self.changes.append(outcome.change)


def recorder(store: InMemoryOutcomeStore, now_ms: list[int], **options: object) -> OutcomeRecorder:
    return OutcomeRecorder(
        LiveScorer(),
        store,
        signal_to_wire,
        wall_ms=lambda: now_ms[0],
        **options,  # type: ignore[arg-type]
    )


async def test_published_signals_are_saved_with_their_payload_and_grow_in_place() -> None:
    store = InMemoryOutcomeStore()
    observed = Observed()
    now = [10 * DAY_MS]
    outcomes = recorder(store, now, observer=observed)
    signal = make_signal(Action.BUY, 1_000, 100.0, strategy_id="orderbook_skew")
    outcomes.on_event(trade(900, 100.0))
    outcomes.on_published(signal)
    assert await outcomes.flush()
    (saved,) = await store.recent(None, None, 10)
    assert saved.signal_id == signal.signal_id
    assert saved.payload == signal_to_wire(signal)
    assert saved.recorded_at_ms == now[0]
    outcomes.on_event(trade(2_000, 101.0))
    outcomes.on_event(trade(70_000, 101.2))  # 1m reached (no stop, no target)
    assert await outcomes.flush()
    (grown,) = await store.recent(None, None, 10)
    assert set(grown.horizons) == {"1m"}
    assert observed.changes == [OutcomeChange.HORIZON]
    assert outcomes.saved == 2
    assert outcomes.unsaved == 0


async def test_a_flush_lets_the_run_loop_in_every_build_slice() -> None:
    """Building a whole save batch at once held the event loop for ~10 ms (the publish →
    signal p99 at 2,000 msg/s); the records of a batch are built a slice at a time."""
    store = InMemoryOutcomeStore()
    outcomes = recorder(store, [0])
    for t in range(SAVE_BATCH):
        outcomes.on_published(make_signal(Action.BUY, 1_000 + t, 100.0, strategy_id=f"s{t}"))
    turns = 0
    flushing = asyncio.create_task(outcomes.flush())
    while not flushing.done():
        turns += 1
        await asyncio.sleep(0)
    assert await flushing
    assert len(await store.recent(None, None, SAVE_BATCH)) == SAVE_BATCH
    assert turns >= SAVE_BATCH // BUILD_SLICE


async def test_a_store_that_is_down_keeps_the_records_for_the_next_attempt() -> None:
    store = InMemoryOutcomeStore()
    outcomes = recorder(store, [0])
    store.available = False
    outcomes.on_published(make_signal(Action.SELL, 1_000, 100.0))
    assert not await outcomes.flush()
    assert outcomes.unsaved == 1
    assert outcomes.save_failures == 1
    store.available = True
    assert await outcomes.flush()
    assert len(await store.recent(None, None, 10)) == 1


async def test_the_unsaved_buffer_is_bounded_oldest_dropped_and_counted() -> None:
    store = InMemoryOutcomeStore()
    outcomes = recorder(store, [0], max_unsaved=2)
    for t in (1, 2, 3):
        outcomes.on_published(make_signal(Action.BUY, t, 100.0))
    assert outcomes.unsaved == 2
    assert outcomes.dropped_unsaved == 1


async def test_retention_purges_by_first_recording_time() -> None:
    store = InMemoryOutcomeStore()
    now = [40 * DAY_MS]
    await store.save(
        [make_outcome(1, recorded_at_ms=5 * DAY_MS), make_outcome(2, recorded_at_ms=39 * DAY_MS)]
    )
    outcomes = recorder(store, now, retention_days=30.0)
    assert await outcomes.purge_once() == 1
    assert [r.signal_id for r in await store.recent(None, None, 10)] == [make_outcome(2).signal_id]


def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        recorder(InMemoryOutcomeStore(), [0], retention_days=0.0)


async def test_failover_writes_to_the_fallback_while_the_primary_is_down_and_catches_up() -> None:
    primary, fallback = InMemoryOutcomeStore(), InMemoryOutcomeStore()
    clock = [0.0]
    store = FailoverOutcomeStore(
        primary, fallback, retry_interval_s=5.0, monotonic=lambda: clock[0]
    )
    await store.save([make_outcome(1)])
    assert len(await fallback.recent(None, None, 10)) == 1  # mirrored
    primary.available = False
    await store.save([make_outcome(2)])
    assert store.name == "memory"
    assert store.queued["for_primary"] == 1
    assert len(await store.recent(None, None, 10)) == 2  # read from the fallback
    primary.available = True
    clock[0] = 10.0
    await store.save([make_outcome(3)])
    assert len(await primary.recent(None, None, 10)) == 3
    assert store.queued == {"for_primary": 0, "for_fallback": 0}
    fallback.available = False
    await store.save([make_outcome(4)])  # the mirror waits
    assert store.queued["for_fallback"] == 1
    fallback.available = True
    clock[0] = 20.0
    await store.save([make_outcome(5)])  # the next save replays what the fallback missed
    assert len(await fallback.recent(None, None, 10)) == 5
    primary.available = fallback.available = False
    clock[0] = 30.0
    with pytest.raises(StoreUnavailableError):
        await store.save([make_outcome(6)])


def test_performance_block_of_nothing_has_no_rates() -> None:
    block = performance_block([])
    assert block["signals"] == 0
    horizons = block["horizons"]
    assert isinstance(horizons, dict)
    assert horizons["1m"] == {
        "count": 0,
        "hits": 0,
        "hit_rate": None,
        "mean_net_bps": None,
        "total_net_bps": 0.0,
        "mean_gross_bps": None,
    }


async def test_query_refuses_unknown_strategies() -> None:
    from application.errors import UnknownStrategyError

    query = OutcomeQuery(InMemoryOutcomeStore(), lambda: ("a",))
    with pytest.raises(UnknownStrategyError):
        await query.recent("b", None, 1)


async def test_the_memory_store_keeps_the_newest_records_within_its_bound() -> None:
    store = InMemoryOutcomeStore(max_records=3)
    records = [make_outcome(i) for i in range(5)]
    await store.save(records[:3])
    await store.save([records[0]])  # an update keeps its place: still the oldest
    await store.save(records[3:])
    kept = await store.recent(None, None, 10)
    assert {r.signal_id for r in kept} == {records[i].signal_id for i in (2, 3, 4)}
    assert store.evicted == 2
