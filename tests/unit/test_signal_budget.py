"""The shared per-minute signal budget (ADR 25): the window rule, the in-memory adapter
against its port's contract, and the run loop consulting it.

Workers of a partitioned deployment each run governance on their own symbols; the budget
is what makes ``max_signals_per_minute`` hold for the deployment instead of per worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.memory.signal_budget import InMemorySignalBudget
from adapters.nats.signal_budget import decode_window
from application.ports import StoreUnavailableError
from application.runtime import ServiceRuntime
from domain.engine import EngineStats, SignalEngine
from domain.governance import (
    SLOT_HORIZON_MS,
    Governance,
    GovernanceParams,
    Slot,
    Suppression,
    take_slot,
)
from domain.market import DepthSnapshot
from domain.signal import Action
from domain.strategies.orderbook_skew import OrderbookSkewStrategy
from tests.contract.signal_budget_contract import Budgets, SignalBudgetContract
from tests.unit.strategies.support import config_doc, engine_with

T0 = 1_723_161_600_000


class TestInMemorySignalBudget(SignalBudgetContract):
    @pytest.fixture
    def budgets(self) -> Budgets:
        shared = InMemorySignalBudget()
        return shared, shared


@given(
    st.lists(st.integers(min_value=0, max_value=300_000), max_size=40),
    st.integers(min_value=0, max_value=6),
)
def test_take_slot_decides_as_governance_does_in_one_process(offsets: list[int], cap: int) -> None:
    """The simple version: one Governance's per-minute cap (no per-symbol cap, each signal
    from another strategy, so no cooldown applies) over the same emissions in time order."""
    limits = GovernanceParams(max_signals_per_symbol_per_hour=0, max_signals_per_minute=cap)
    governance = Governance(limits)
    window: list[Slot] = []
    for i, offset in enumerate(sorted(offsets)):
        time_ms = T0 + offset
        admitted = governance.admit(f"s{i}", "BTCUSDT", Action.BUY, time_ms, None) is None
        taken = take_slot(window, time_ms, cap)
        assert (taken is not None) is admitted
        if taken is not None:
            window = taken


@given(
    st.lists(st.integers(min_value=0, max_value=SLOT_HORIZON_MS), max_size=60),
    st.integers(min_value=1, max_value=5),
)
def test_no_minute_holds_more_than_the_cap_whatever_the_order_within_the_horizon(
    offsets: list[int], cap: int
) -> None:
    """Workers are not in step in event time: takes arrive in any order. As long as none is
    stamped more than the horizon before the newest, no open minute holds more than
    ``cap`` of the signals taken, and the window stays bounded."""
    window: list[Slot] = []
    admitted: list[int] = []
    for offset in offsets:
        taken = take_slot(window, T0 + offset, cap)
        if taken is not None:
            window = taken
            admitted.append(T0 + offset)
        assert len(window) <= 4 * cap
    for start in admitted:
        assert sum(start <= t < start + 60_000 for t in admitted) <= cap


def test_a_far_future_time_in_the_window_does_not_switch_the_cap_off() -> None:
    """A forged or foreign far-future time is dropped by the next real take; at most the
    minute it was taken in is counted afresh."""
    future = T0 + 86_400_000
    window: list[Slot] = [(future, "")]
    for offset in range(2):
        taken = take_slot(window, T0 + offset, 2)
        assert taken is not None
        window = taken
    assert _times(window) == [T0, T0 + 1]
    assert take_slot(window, T0 + 2, 2) is None
    window = take_slot(window, future, 2) or []  # admitted: nothing near it
    assert _times(window) == [future]  # the real ones were out of its reach
    for offset in (2, 3):  # counted afresh once, and the forged time goes
        window = take_slot(window, T0 + offset, 2) or []
    assert _times(window) == [T0 + 2, T0 + 3]
    assert take_slot(window, T0 + 4, 2) is None  # capped again


def _times(window: Sequence[Slot]) -> list[int]:
    return [time_ms for time_ms, _ in window]


def test_a_signal_holding_a_slot_keeps_it_and_takes_no_second() -> None:
    window = take_slot([], T0, 2, signal_id="a") or []
    window = take_slot(window, T0 + 1, 2, signal_id="b") or []
    assert window == [(T0, "a"), (T0 + 1, "b")]
    assert take_slot(window, T0 + 1, 2, signal_id="b") == window  # full, yet b has its slot
    assert take_slot(window, T0 + 2, 2, signal_id="c") is None
    assert take_slot(window, T0 + 2, 2) is None  # an unknown signal is never one of them


@given(st.binary(max_size=200))
def test_any_value_in_the_budget_key_is_a_window_or_refused_never_an_error(raw: bytes) -> None:
    window = decode_window(raw)
    assert window is None or all(
        time_ms.__class__ is int and signal_id.__class__ is str for time_ms, signal_id in window
    )


@given(
    st.lists(
        st.tuples(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=40)),
        max_size=50,
    )
)
def test_a_window_written_is_the_window_read(window: list[Slot]) -> None:
    assert decode_window(orjson.dumps(window)) == window


def test_bare_times_of_the_first_version_read_as_slots_of_unknown_signals() -> None:
    assert decode_window(b"[1, 2]") == [(1, ""), (2, "")]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"a": 1}',
        b'[1, "x"]',
        b"[1.5]",
        b"[true]",
        b"[[1]]",
        b'[[1, "a", 2]]',
        b"[[1, 2]]",
        b'[[true, "a"]]',
        b"1" * 30,
    ],
)
def test_values_that_are_not_a_window(raw: bytes) -> None:
    assert decode_window(raw) is None


def test_count_held_adds_to_the_suppression_counts() -> None:
    stats = EngineStats()
    stats.count_held("orderbook_skew", Suppression.RATE_CAP)
    stats.count_held("orderbook_skew", Suppression.RATE_CAP)
    assert stats.suppressed()[Suppression.RATE_CAP] == 2
    assert stats.suppressed_by_strategy() == {("orderbook_skew", Suppression.RATE_CAP): 2}
    with pytest.raises(ValueError, match="suppression reason"):
        stats.count_held("orderbook_skew", "signal")


# --- the run loop ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    event: Any
    trace_context: None = None
    message_id: str | None = None
    received_at_ns: int = 0


class Feed:
    def __init__(self, events: Sequence[DepthSnapshot]) -> None:
        self._items = [Item(event) for event in events]

    async def batches(self) -> AsyncIterator[list[Item]]:
        for item in self._items:
            yield [item]

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        return None


@dataclass
class Sink:
    published: list[Any] = field(default_factory=list)

    async def publish(self, signal: Any, trace_context: Any = None) -> None:
        self.published.append(signal)

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        return None


def worker(
    symbols: Sequence[str], budget: InMemorySignalBudget | None, per_minute: int = 3
) -> tuple[ServiceRuntime, Sink]:
    """A worker's run loop over its own symbols: a buy-skewed book every 5 s of event time
    on each, every one a signal (no cooldown, no hysteresis, no per-symbol cap)."""
    layer = config_doc("orderbook_skew", None, 1, cooldown_seconds=0)
    loose = engine_with(OrderbookSkewStrategy(), global_doc=layer)
    governance = Governance(
        GovernanceParams(max_signals_per_symbol_per_hour=0, max_signals_per_minute=per_minute)
    )
    engine = SignalEngine(loose.strategies, loose.config, governance=governance)
    events = [
        DepthSnapshot(symbol, T0 + step * 5_000, ((100.0, 3.0),), ((100.01, 1.0),))
        for step in range(6)
        for symbol in symbols
    ]
    sink = Sink()
    return ServiceRuntime(Feed(events), engine, sink, budget=budget), sink


async def test_two_workers_sharing_a_budget_publish_at_most_the_cap_together() -> None:
    budget = InMemorySignalBudget()
    first, first_sink = worker(["BTCUSDT", "ETHUSDT"], budget)
    second, second_sink = worker(["SOLUSDT", "XRPUSDT"], budget)
    await first.run()
    await second.run()
    published = len(first_sink.published) + len(second_sink.published)
    assert published == 3  # all within one minute of event time
    first_stats, second_stats = first.engine.stats, second.engine.stats
    rate_capped = (
        first_stats.suppressed()[Suppression.RATE_CAP]
        + second_stats.suppressed()[Suppression.RATE_CAP]
    )
    assert rate_capped == 24 - 3  # every other signal, each counted once
    assert sum(second_stats.held_after.values()) == 3  # its own cap would have let them by
    assert first.counters.budget_errors == second.counters.budget_errors == 0


async def test_without_the_budget_each_worker_caps_alone() -> None:
    first, first_sink = worker(["BTCUSDT", "ETHUSDT"], None)
    second, second_sink = worker(["SOLUSDT", "XRPUSDT"], None)
    await first.run()
    await second.run()
    assert len(first_sink.published) + len(second_sink.published) == 6


async def test_an_unreachable_budget_publishes_on_the_local_cap_and_counts_it() -> None:
    budget = InMemorySignalBudget()
    budget.available = False
    runtime, sink = worker(["BTCUSDT"], budget)
    await runtime.run()
    assert len(sink.published) == 3  # governance's own cap
    assert runtime.counters.budget_errors == 3
    assert runtime.heartbeat()["signal_budget_errors"] == 3


async def test_a_cap_of_zero_does_not_ask_the_budget() -> None:
    budget = InMemorySignalBudget()
    budget.available = False
    runtime, sink = worker(["BTCUSDT"], budget, per_minute=0)
    await runtime.run()
    assert len(sink.published) == 6
    assert runtime.counters.budget_errors == 0


async def test_a_successor_publishes_the_signals_its_predecessor_took_slots_for() -> None:
    """A worker dies after taking the slots of its signals, before any reached the stream;
    the worker that takes its symbols over regenerates them (replay) and publishes them:
    they hold their slots already, so the full minute does not refuse them."""
    budget = InMemorySignalBudget()
    dead, dead_sink = worker(["BTCUSDT"], budget)
    await dead.run()
    lost = [signal.signal_id for signal in dead_sink.published]  # never reached the stream
    successor, sink = worker(["BTCUSDT"], budget)
    await successor.run()
    assert [signal.signal_id for signal in sink.published] == lost
    assert len(lost) == 3
    assert len(budget.window) == 3  # one slot each, not two


async def test_the_in_memory_budget_raises_when_unavailable() -> None:
    budget = InMemorySignalBudget()
    budget.available = False
    with pytest.raises(StoreUnavailableError):
        await budget.take(T0, 1)
