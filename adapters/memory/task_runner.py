"""``TaskRunner`` in this process, one task after the other (unit tests, one-off runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InProcessTaskRunner:
    """Calls ``function`` on each task in order, here."""

    def map(
        self,
        function: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[R], None] | None = None,
    ) -> list[R]:
        results = []
        for task in tasks:
            result = function(task)
            results.append(result)
            if on_done is not None:
                on_done(result)
        return results
