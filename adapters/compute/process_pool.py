"""``TaskRunner`` on a local process pool (all cores by default)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from adapters.compute.task_order import Completions, TaskOrderRunner

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ProcessPoolTaskRunner(TaskOrderRunner):
    """Runs tasks in ``jobs`` worker processes (``spawn``: a clean interpreter each, like a
    cluster worker, and safe whatever threads the parent runs). ``function`` must be a
    module-level callable and the tasks picklable. The first task that raises cancels the
    ones not started and is re-raised."""

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs or default_jobs()

    def _completed(self, function: Callable[[T], R], tasks: Sequence[T]) -> Completions[R]:
        context = multiprocessing.get_context("spawn")
        workers = min(self.jobs, len(tasks))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures: dict[Future[R], int] = {
                pool.submit(function, task): index for index, task in enumerate(tasks)
            }
            pending: set[Future[R]] = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise error
                    yield futures[future], future.result()
