"""Contract every :class:`application.ports.TaskRunner` adapter must pass.

Use it from an adapter's test module::

    class TestProcessPoolTaskRunner(TaskRunnerContract):
        @pytest.fixture
        def runner(self) -> Iterator[TaskRunner]:
            yield ProcessPoolTaskRunner(jobs=2)

The task functions are module-level (a process pool or a cluster imports them by name).
"""

from __future__ import annotations

import time

import pytest

from application.ports import TaskRunner


class TaskFailedError(Exception):
    """Raised by :func:`fail_on_three`."""


def square_slowly(value: int) -> tuple[int, int]:
    """(value, value²), the early tasks taking longest, so completion order != task order."""
    time.sleep(max(0, 5 - value) * 0.02)
    return value, value * value


def fail_on_three(value: int) -> int:
    if value == 3:
        raise TaskFailedError(f"task {value} failed")
    return value


class TaskRunnerContract:
    """Results in task order, progress once per task, failures surface."""

    @pytest.fixture
    def runner(self) -> TaskRunner:
        raise NotImplementedError

    def test_results_come_back_in_task_order(self, runner: TaskRunner) -> None:
        done: list[tuple[int, int]] = []
        results = runner.map(square_slowly, list(range(8)), done.append)
        assert results == [(v, v * v) for v in range(8)]
        assert sorted(done) == results  # each result reported once, as it finished

    def test_no_tasks_no_results(self, runner: TaskRunner) -> None:
        assert runner.map(square_slowly, [], None) == []

    def test_a_failing_task_raises_its_error(self, runner: TaskRunner) -> None:
        with pytest.raises(TaskFailedError, match="task 3 failed"):
            runner.map(fail_on_three, [1, 2, 3, 4], None)

    def test_the_runner_can_be_used_again(self, runner: TaskRunner) -> None:
        assert runner.map(square_slowly, [2], None) == [(2, 4)]
        assert runner.map(square_slowly, [3, 4], None) == [(3, 9), (4, 16)]
