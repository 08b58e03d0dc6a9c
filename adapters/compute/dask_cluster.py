"""``TaskRunner`` on an existing Dask distributed cluster (``tcp://scheduler:8786``).

The scheduler and workers are Dask's own (``dask scheduler``, ``dask worker``); this adapter
only connects a client, submits one Dask task per task, follows completions for progress and
returns the results in task order. Workers must have this package installed (the same
version) and read the capture files at the same paths as the client (a shared volume).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from adapters.compute.task_order import Completions, TaskOrderRunner

T = TypeVar("T")
R = TypeVar("R")


class DaskTaskRunner(TaskOrderRunner):
    """Runs tasks on the Dask cluster at ``address``; the first failing task is re-raised."""

    def __init__(self, address: str, *, connect_timeout: float = 30.0) -> None:
        if not address.strip():
            raise ValueError("a Dask scheduler address is required, e.g. tcp://127.0.0.1:8786")
        self.address = address.strip()
        self.connect_timeout = connect_timeout

    def _completed(self, function: Callable[[T], R], tasks: Sequence[T]) -> Completions[R]:
        # Imported here: the service and the local sweep never load Dask.
        from distributed import Client, as_completed

        client: Any = Client(  # type: ignore[no-untyped-call]
            self.address, timeout=self.connect_timeout, set_as_default=False
        )
        try:
            # pure=False: every task is its own Dask task, even if two are equal.
            futures: list[Any] = client.map(function, list(tasks), pure=False)
            index = {future.key: i for i, future in enumerate(futures)}
            for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                result: R = future.result()  # re-raises a task's exception here
                yield index[future.key], result
        finally:
            client.close()
