"""The one process lifecycle of ``serve``, ``run-local`` and ``route``: start, run, stop.

:func:`run_process` installs the SIGTERM/SIGINT handlers, runs the start-up hooks, starts the
HTTP server, the heartbeat and the other background tasks, runs the main job (the service's
run loop, or the router) until it ends or a termination signal arrives, then stops in order,
bounded by ``grace_seconds``: the job's own stop (drain the input, finish what was received,
flush the output), the HTTP server, the background tasks, the shut-down hooks (connections,
stores).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal as os_signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
import uvicorn

log = structlog.get_logger("realtime_strategies.lifecycle")

Hook = Callable[[], Awaitable[object]]

YOUNG_COLLECTION_THRESHOLD: Final = 100_000
"""Net new container objects (allocations minus deallocations) between two collections of the
garbage collector's young generation; CPython's default is 700."""


def settle_garbage_collector() -> None:
    """Tune the garbage collector for a long run (``serve``, ``route``, ``backtest``), once
    start-up is done and before the main job runs (ADR 24).

    Everything built so far (modules, the app, the container: ~125,000 in ``serve``) is collected
    once and frozen: a full collection traverses every tracked object and stops the event loop
    meanwhile (about 90 ms with them, next to nothing without); they live as long as the
    process anyway. Then the young generation is collected only after
    :data:`YOUNG_COLLECTION_THRESHOLD` net new objects instead of 700. The run loop's garbage
    has no cycles (reference counting frees a message's objects as soon as it is handled), so
    what trips the default threshold is the strategies' and metrics' state growing, and each
    collection traverses what is young, then middle-aged, then all of it again. Measured over
    100,000 messages of the 50-symbol fan-out (``bench/service_path.py --messages 100000
    --collections``, ``--collector default`` against ``service``): 1,520 young, 138 middle and
    5 full collections, 70–75 ms in all (the longest 0.3–0.6 ms on an idle machine), against
    none: 5 % fewer instructions per message (README Benchmarks); the backtest of the bundled
    capture (13,551 lines) saves less than 1 %. Cyclic garbage (an exception's traceback) now
    waits for at most that many objects, a few MB.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


class Job(Protocol):
    """The main job of a process (``ServiceRuntime``, the partition router)."""

    async def run(self) -> None:
        """Work until the input ends (or forever)."""
        ...

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Stop taking input, finish what was received, flush; within ``timeout`` seconds."""
        ...


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the lifecycle owns SIGTERM and drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


API_SHUTDOWN_SECONDS = 3
"""How long stopping waits for open requests: long-lived streams (the console's live
signals, MCP's event streams) are cut after it instead of holding the grace period."""


def api_server(app: Any, host: str, port: int) -> ApiServer:
    return ApiServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=API_SHUTDOWN_SECONDS,
        )
    )


@dataclass
class Process:
    """What :func:`run_process` runs (see the module doc)."""

    name: str
    """Prefix of the lifecycle log events: ``<name>_started``, ``_stopping``, ``_stopped``."""
    job: Job
    api: ApiServer | None = None
    startup: Sequence[Hook] = ()
    shutdown: Sequence[Hook] = ()
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    heartbeat: Callable[[], Mapping[str, object]] | None = None
    heartbeat_message: str = "HEARTBEAT"
    heartbeat_interval_seconds: float = 60.0
    grace_seconds: float = 20.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


async def _heartbeat_forever(process: Process) -> None:
    assert process.heartbeat is not None
    while True:
        await asyncio.sleep(process.heartbeat_interval_seconds)
        log.info(process.heartbeat_message, **process.heartbeat())


async def run_process(process: Process) -> None:
    """Run ``process`` until its job ends or SIGTERM/SIGINT, then stop it in order."""
    loop = asyncio.get_running_loop()
    for sig in (os_signal.SIGTERM, os_signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, process.stopping.set)
    for hook in process.startup:
        await hook()
    background = [
        asyncio.create_task(make(), name=getattr(make, "__name__", "background"))
        for make in process.background
    ]
    if process.heartbeat is not None:
        background.append(asyncio.create_task(_heartbeat_forever(process), name="heartbeat"))
    api_task = asyncio.create_task(process.api.serve(), name="api") if process.api else None
    main = asyncio.create_task(process.job.run(), name=f"{process.name}-main")
    stopper = asyncio.create_task(process.stopping.wait(), name="stop-signal")
    log.info(f"{process.name}_started")
    await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)

    log.info(f"{process.name}_stopping", grace_seconds=process.grace_seconds)
    deadline = time.monotonic() + process.grace_seconds
    await process.job.stop(process.grace_seconds)
    if not main.done():
        main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    if process.api is not None:
        process.api.should_exit = True
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    if api_task is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(api_task, max(deadline - time.monotonic(), 1.0))
    for hook in process.shutdown:
        with contextlib.suppress(Exception):
            await hook()
    stopper.cancel()
    final = process.heartbeat() if process.heartbeat is not None else {}
    log.info(f"{process.name}_stopped", **final)
