"""Contract every :class:`application.ports.SignalBudget` adapter must pass.

Use it from an adapter's test module::

    class TestNatsSignalBudget(SignalBudgetContract):
        @pytest.fixture
        async def budgets(self) -> tuple[SignalBudget, SignalBudget]:
            return NatsSignalBudget(a, bucket=b), NatsSignalBudget(c, bucket=b)

The fixture gives two budgets of two "processes" that share one EMPTY window.
"""

from __future__ import annotations

import asyncio

from application.ports import SignalBudget
from domain.governance import Slot, take_slot

T0 = 1_723_161_600_000
SECOND = 1_000
MINUTE = 60 * SECOND

Budgets = tuple[SignalBudget, SignalBudget]


class SignalBudgetContract:
    async def test_no_cap_always_takes_and_leaves_the_others_slots_counted(
        self, budgets: Budgets
    ) -> None:
        first, second = budgets
        assert await first.take(T0, 1)
        assert all([await second.take(T0 + SECOND, 0) for _ in range(5)])
        assert not await first.take(T0 + 2 * SECOND, 1)

    async def test_a_signal_holding_a_slot_takes_it_again_from_any_process(
        self, budgets: Budgets
    ) -> None:
        first, second = budgets
        assert await first.take(T0, 2, "signal-a")
        assert await first.take(T0 + SECOND, 2, "signal-b")
        assert await second.take(T0, 2, "signal-a")  # a successor: no second slot taken
        assert not await second.take(T0 + 2 * SECOND, 2, "signal-c")
        assert not await second.take(T0 + 2 * SECOND, 2)

    async def test_takes_up_to_the_cap_then_refuses_within_the_minute(
        self, budgets: Budgets
    ) -> None:
        first, second = budgets
        assert await first.take(T0, 2)
        assert await second.take(T0 + SECOND, 2)
        assert not await first.take(T0 + 30 * SECOND, 2)
        assert not await second.take(T0 + 30 * SECOND, 2)

    async def test_a_slot_frees_a_minute_of_event_time_later(self, budgets: Budgets) -> None:
        first, second = budgets
        assert await first.take(T0, 2)
        assert await first.take(T0 + SECOND, 2)
        assert not await second.take(T0 + MINUTE - 1, 2)
        assert await second.take(T0 + MINUTE, 2)  # T0 is out; T0 + 1 s is still in
        assert not await first.take(T0 + MINUTE + 1, 2)

    async def test_an_emission_stamped_later_counts_too(self, budgets: Budgets) -> None:
        first, second = budgets
        assert await first.take(T0 + 30 * SECOND, 1)
        assert not await second.take(T0, 1)

    async def test_two_processes_racing_never_take_more_than_the_cap(
        self, budgets: Budgets
    ) -> None:
        first, second = budgets
        takes = [(first if i % 2 else second).take(T0 + i, 5) for i in range(16)]
        results = await asyncio.gather(*takes)
        assert sum(results) == 5

    async def test_decides_as_one_process_keeps_its_window(self, budgets: Budgets) -> None:
        """The shared window answers what :func:`take_slot` answers for the same takes in
        the same order, whichever process asks."""
        first, second = budgets
        times = [T0 + offset * SECOND for offset in (0, 5, 20, 59, 61, 62, 90, 119, 121, 180)]
        window: list[Slot] = []
        for i, time_ms in enumerate(times):
            taken = take_slot(window, time_ms, 3)
            expected = taken is not None
            if taken is not None:
                window = taken
            assert await (first if i % 2 else second).take(time_ms, 3) is expected, time_ms
