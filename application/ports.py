"""Ports: what the application needs from the outside world, named by role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from domain.config import AuditRecord, ConfigDocument
from domain.market import MarketEvent
from domain.signal import Signal


class MarketFeed(Protocol):
    """A source of decoded market events (NATS subscription, replay file, ...).

    Bad input never comes out of ``events()``: a feed counts and skips it (see
    ``DecodeStats`` of the wire codec) and keeps going.
    """

    def events(self) -> AsyncIterator[MarketEvent]: ...


class SignalSink(Protocol):
    """Where emitted signals go (NATS, memory, stdout). ``publish`` never drops silently."""

    async def publish(self, signal: Signal) -> None: ...

    async def flush(self) -> None: ...


class StoreUnavailableError(Exception):
    """A configuration store could not be reached or did not answer in time."""


class VersionConflictError(Exception):
    """A write lost a compare-and-set race: the layer's version moved underneath it."""


class ConfigRepository(Protocol):
    """Persistence of configuration layers (global and per symbol) for all strategies.

    ``save`` is compare-and-set: it succeeds only if the stored version of that layer is
    ``expected_version`` (0 = no document yet), else raises :class:`VersionConflictError`.
    Failures to reach the store raise :class:`StoreUnavailableError`.
    """

    name: str

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None: ...

    async def list(self, strategy_id: str | None = None) -> list[ConfigDocument]:
        """Every layer (tombstones included) of one strategy, or of all strategies."""
        ...

    async def save(self, document: ConfigDocument, expected_version: int) -> None: ...

    async def ping(self) -> None: ...


class AuditLog(Protocol):
    """Append-only history of configuration changes."""

    async def append(self, record: AuditRecord) -> None: ...

    async def list(
        self, strategy_id: str, symbol: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Newest first; ``symbol`` None means every layer of the strategy."""
        ...


class ConfigChangeNotifier(Protocol):
    """Tells other replicas that a strategy's configuration changed."""

    async def notify(self, strategy_id: str, symbol: str | None, version: int) -> None: ...


class Clock(Protocol):
    """Wall time, for audit timestamps and lag; never used by strategies."""

    def now(self) -> datetime: ...


T = TypeVar("T")
R = TypeVar("R")


class TaskRunner(Protocol):
    """Runs independent CPU-bound tasks: in this process, a local pool or a cluster.

    ``function`` is a module-level callable and the tasks are picklable values, so that any
    runner can ship them to another process. Results come back in task order whatever the
    completion order; ``on_done`` is called here once per result as it completes (progress).
    The first task that raises makes ``map`` raise that error.
    """

    def map(
        self,
        function: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[R], None] | None = None,
    ) -> list[R]: ...
