"""Ports: what the application needs from the outside world, named by role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, TypeVar

from domain.config import AuditQuery, AuditRecord, ConfigDocument
from domain.governance import PauseRecord
from domain.live_outcomes import OutcomeRecord
from domain.market import MarketEvent
from domain.signal import Signal


class FeedItem(Protocol):
    """One decoded market message with what the run loop needs besides the event."""

    @property
    def event(self) -> MarketEvent: ...

    @property
    def trace_context(self) -> Mapping[str, str] | None:
        """The producer's trace context (W3C ``traceparent``/``tracestate``), if any."""
        ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def received_at_ns(self) -> int:
        """Wall-clock receive time (``time.time_ns()``)."""
        ...


class MarketFeed(Protocol):
    """A source of decoded market messages (NATS subscription, JetStream partitions, replay).

    ``batches()`` hands out the items in arrival order, as lists of what has arrived since
    the previous batch (one item when the feed is quiet, many under load): the consumer
    processes a batch completely before asking for the next, and asking for the next one
    tells the feed the previous one is done. Bad input never comes out: a feed counts and
    skips it (``DecodeStats`` of the wire codec) and keeps going.

    ``drain()`` stops taking new messages, lets everything already received come out of
    ``batches()`` (the consumer must keep consuming meanwhile), then ends the iteration.
    """

    def batches(self) -> AsyncIterator[Sequence[FeedItem]]: ...

    async def drain(self, timeout: float = 10.0) -> None: ...  # noqa: ASYNC109


class SignalSink(Protocol):
    """Where emitted signals go (NATS, memory, stdout). ``publish`` never drops silently.

    ``trace_context`` (the message's, continued by the run loop's span) travels with the
    signal.
    """

    async def publish(
        self, signal: Signal, trace_context: Mapping[str, str] | None = None
    ) -> None: ...

    async def flush(self) -> None: ...


class Admission(Enum):
    """What a :class:`SignalGate` decides for a signal."""

    PUBLISH = "publish"
    """Publish it (then the taps see it)."""
    PUBLISHED_BEFORE = "published_before"
    """Not again: it was published already (a takeover replay regenerated it); the taps see
    it, so that its outcome is scored on."""
    HOLD = "hold"
    """Neither published nor seen by the taps."""


class SignalGate(Protocol):
    """Decides whether a signal computed from ``item`` is published (a partitioned worker
    holds back the signals of its takeover replay); consulted before every publish."""

    def admit(self, item: FeedItem, signal: Signal) -> Admission:
        """The decision; an admitted signal may still be held after it (the shared budget),
        so what counts a signal as published belongs in :meth:`published`."""
        ...

    def published(self, item: FeedItem, signal: Signal) -> None:
        """A signal :meth:`admit` let through was handed to the sink."""
        ...


class SignalBudget(Protocol):
    """The service-wide per-minute signal budget that every process of a partitioned
    deployment shares, so that ``max_signals_per_minute`` holds for the deployment and not
    per worker. Consulted after governance admitted a signal, before it is published.

    The window is kept by :func:`domain.governance.take_slot` (the rule one process applies
    on its own); a take is atomic across processes (two never get the same last slot).
    """

    async def take(self, time_ms: int, cap: int, signal_id: str = "") -> bool:
        """Take a slot for the signal ``signal_id`` stamped ``time_ms``: False when ``cap``
        signals already lie within a minute of it; True without a second slot when that
        signal holds one already (a successor publishing it again). Raises
        ``StoreUnavailableError`` when the budget cannot be reached (the caller decides; the
        process-local cap still holds)."""
        ...


class MarketTap(Protocol):
    """Sees what the run loop sees, in order: every market event before the strategies do,
    then every signal once it is published (live outcome scoring, the preview buffer).
    Called on the hot path: constant work per call, never I/O."""

    def on_event(self, event: MarketEvent) -> None: ...

    def on_published(self, signal: Signal) -> None: ...


class RunObserver(Protocol):
    """Where the run loop reports consumer lag, processing time and published signals
    (Prometheus)."""

    def message_consumed(self, lag_seconds: float) -> None: ...

    def message_processed(self, seconds: float) -> None:
        """One message processed (its signals handed to the sink) in ``seconds``."""
        ...

    def signal_emitted(self, signal: Signal) -> None: ...


class ProcessingObserver(Protocol):
    """Where the latency of each strategy evaluation is reported (Prometheus; see
    :func:`application.processing.timed`). Outcomes and failures are the engine's own counts
    (:class:`~domain.engine.EngineStats`), read from there: they are counted once."""

    def strategy_evaluated(self, strategy_id: str, seconds: float) -> None: ...


class TraceSpan(Protocol):
    """The span of one message being processed."""

    def signals_emitted(self, count: int) -> None: ...

    def outgoing_context(self) -> Mapping[str, str] | None:
        """The trace context to pass on with the message's signals (the current span as
        parent)."""
        ...

    def stage(self, name: str) -> AbstractContextManager[None]:
        """A child span for one stage of the message: ``evaluate`` (the strategies) or
        ``publish`` (the signals handed to the sink; their trace context points to it)."""
        ...


class MessageTracing(Protocol):
    """A span per processed message, continuing the producer's trace context.

    ``recording``: spans are recorded and exported (a real tracer is installed), so every
    message gets one; otherwise only messages that carry a trace context get a span, which
    keeps the no-op tracer's cost off the hot path.
    """

    @property
    def recording(self) -> bool: ...

    def message_span(
        self, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[TraceSpan]: ...


class StoreUnavailableError(Exception):
    """A configuration store could not be reached or did not answer in time."""


class VersionConflictError(Exception):
    """A write lost a compare-and-set race: the layer's version moved underneath it."""


def check_pause_version(record: PauseRecord, held: int, expected_version: int) -> None:
    """The pause compare-and-set rule of a store that reads the stored version ``held``
    itself: ``record`` may replace it only when ``held`` is ``expected_version`` and
    ``record`` is newer; else :class:`VersionConflictError`."""
    if held != expected_version or record.version <= held:
        raise VersionConflictError(
            f"pause {record.key} is at version {held}, not {expected_version}"
        )


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
    """Append-only history of configuration changes, one record per (strategy, version)."""

    async def append(self, record: AuditRecord) -> None:
        """Store ``record``; a record of the same (strategy, version) already stored wins."""
        ...

    async def list(self, query: AuditQuery) -> list[AuditRecord]:
        """The records ``query`` selects, newest first (:class:`~domain.config.AuditPosition`
        order), at most ``query.limit``."""
        ...


class ConfigTransaction(Protocol):
    """One write to a strategy's configuration, in progress (see :class:`ConfigUnitOfWork`)."""

    @property
    def store_name(self) -> str:
        """The store the write goes to (``source`` of the written document)."""
        ...

    async def layers(self) -> list[ConfigDocument]:
        """Every stored layer of the strategy (tombstones included), as the write sees them."""
        ...

    async def next_version(self) -> int:
        """The next number of the strategy's version sequence (one for all its layers)."""
        ...

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        """Store the layer (compare-and-set on the layer's ``expected_version``, 0 = none)."""
        ...

    async def save_pause(self, record: PauseRecord, expected_version: int) -> None:
        """Store a pause switch, stored together with the audit record: compare-and-set on
        the version of its key's stored record, like a layer (``expected_version`` 0 = no
        record for the key). Raises :class:`VersionConflictError` if the key's record is
        not at ``expected_version`` (or ``record`` is not newer than it)."""
        ...

    async def append(self, record: AuditRecord) -> None:
        """Record the change; stored together with the layer (or pause) it describes."""
        ...


class ConfigUnitOfWork(Protocol):
    """The seam through which a layer write and its audit record are stored together.

    ``async with uow.write(strategy_id) as tx:`` reads the strategy's layers, saves one
    layer and appends its audit record; leaving the block without an error stores both,
    an error stores neither (where the store can undo). Raises
    :class:`VersionConflictError` when another write to the strategy won a race and
    :class:`StoreUnavailableError` when the store cannot be reached.
    """

    def write(self, strategy_id: str) -> AbstractAsyncContextManager[ConfigTransaction]: ...


class PauseStore(Protocol):
    """Persistence of the signal pause switches (:class:`~domain.governance.PauseRecord`),
    next to the configuration layers in the same store.

    Writes that users make go through :meth:`ConfigTransaction.save_pause` (with their audit
    record); :meth:`apply` is the idempotent copy that mirroring and reconciliation use.
    Failures to reach the store raise :class:`StoreUnavailableError`.
    """

    name: str

    async def list(self) -> list[PauseRecord]:
        """Every stored record, one per pause key, lifted ones included, in key order."""
        ...

    async def apply(self, record: PauseRecord) -> bool:
        """Store ``record`` unless its key is held at that version or a newer one; True if
        stored."""
        ...


@dataclass(frozen=True, slots=True)
class OutcomeSelection:
    """Which records :meth:`OutcomeStore.query` reads: one strategy's, and of those (where
    given) one symbol's, signalled at or after ``since_ms``, under ``config_version``."""

    strategy_id: str
    symbol: str | None = None
    since_ms: int | None = None
    config_version: int | None = None

    def matches(self, record: OutcomeRecord) -> bool:
        return (
            record.strategy_id == self.strategy_id
            and (self.symbol is None or record.symbol == self.symbol)
            and (self.since_ms is None or record.signal_time_ms >= self.since_ms)
            and (self.config_version is None or record.config_version == self.config_version)
        )


class OutcomeStore(Protocol):
    """Persistence of published signals and their outcomes: one record per ``signal_id``,
    replaced by every newer snapshot of it (``save`` is an idempotent upsert).

    Reads are newest first (``signal_time_ms`` descending). Failures to reach the store
    raise :class:`StoreUnavailableError`.
    """

    name: str

    async def save(self, records: Sequence[OutcomeRecord]) -> None: ...

    async def recent(
        self, strategy_id: str | None, symbol: str | None, limit: int
    ) -> list[OutcomeRecord]: ...

    async def query(self, selection: OutcomeSelection, limit: int) -> list[OutcomeRecord]:
        """The records ``selection`` matches, newest first."""
        ...

    async def purge(self, recorded_before_ms: int) -> int:
        """Delete the records first recorded before ``recorded_before_ms`` (wall time)."""
        ...

    async def ping(self) -> None: ...


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
