"""What every ``TaskRunner`` shares: results handed back in task order, whatever order the
tasks complete in, with ``on_done`` called once per result as it completes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
# (task index, result) pairs, in completion order.
Completions = Generator[tuple[int, R], None, None]


class TaskOrderRunner(ABC):
    """A ``TaskRunner`` whose subclass only says how tasks complete (:meth:`_completed`)."""

    def map(
        self,
        function: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[R], None] | None = None,
    ) -> list[R]:
        if not tasks:
            return []
        results: dict[int, R] = {}
        with closing(self._completed(function, tasks)) as completed:
            for index, result in completed:
                results[index] = result
                if on_done is not None:
                    on_done(result)
        return [results[index] for index in range(len(tasks))]

    @abstractmethod
    def _completed(self, function: Callable[[T], R], tasks: Sequence[T]) -> Completions[R]:
        """(task index, result) of each task (at least one), as it completes; the first
        task that raises raises here."""
