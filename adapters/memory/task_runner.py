"""``TaskRunner`` in this process, one task after the other (unit tests, one-off runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from adapters.compute.task_order import Completions, TaskOrderRunner

T = TypeVar("T")
R = TypeVar("R")


class InProcessTaskRunner(TaskOrderRunner):
    """Calls ``function`` on each task in order, here."""

    def _completed(self, function: Callable[[T], R], tasks: Sequence[T]) -> Completions[R]:
        for index, task in enumerate(tasks):
            yield index, function(task)
