"""A worker's market feed: its partitions of the market-data stream, replayed, then live.

:class:`JetStreamPartitionFeed` is the ``MarketFeed`` of a partitioned worker
(docs/adr/0010-symbol-partitioning.md). At start, once NATS is connected:

1. it makes sure the market-data stream exists and reads its **last sequence** ``L0`` — the
   replay boundary;
2. with a signal stream configured, it reads the ids (``Nats-Msg-Id``) of the signals stored
   there over the replay horizon: what earlier owners of its partitions already published;
3. it opens one **ordered consumer** per owned partition (filter ``<prefix>.<p>.>``,
   ``DeliverPolicy.BY_START_TIME`` = now − ``replay_seconds``, or ``ALL``). An ordered
   consumer is ephemeral, unacknowledged and gap-free: the client checks every sequence and
   re-creates the consumer from the last one it saw on a gap or a missed heartbeat.

Every message goes through the same decoder as in single-process mode and comes out as a
:class:`PartitionFeedItem` with its stream sequence. Messages up to ``L0`` are the **replay**:
they rebuild the strategies' and metrics' state, and the signals they produce are held back by
:class:`ReplayGate` — unless they are missing from the signal stream and recent (the
predecessor died between computing and publishing them). Everything after ``L0`` is **live**,
from the very same consumers, so no message falls between replay and live.

Per partition the order is the stream's order, whoever consumes it and whenever: a takeover
replays exactly what the previous owner saw, in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from adapters.nats.checkpoints import PartitionCheckpoints
from adapters.nats.client_internals import (
    fast_path_supported,
    recreate_ordered_consumer,
    take_pending,
)
from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import StreamSpec, ensure_stream
from adapters.nats.market_feed import DECODER_ERROR, MarketSubscriber, message_context
from adapters.nats.partition_subjects import PartitionLayout
from adapters.nats.subscription import unsubscribe_all
from adapters.wire.decoders import BINANCE, Decoder
from adapters.wire.routing_keys import BINANCE_KINDS, RouteKind
from adapters.wire.stats import Decoded, DecodeStats, Skip
from application.ports import Admission, FeedItem
from domain.market import MarketEvent
from domain.signal import Signal

_log = structlog.get_logger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
UNKNOWN_KIND = "unknown_kind"
UNKNOWN_PARTITION = "unknown_partition"
"""Skip reason of a message on a subject of the stream that names no partition of this
worker's (a malformed or out-of-range partition token: anyone can publish on the stream's
subjects)."""
"""Skip reason of a partition message whose kind token has no decoder."""
_MAX_HEADER = 512
_YIELD_EVERY = 64


@dataclass(slots=True)
class PartitionFeedItem:
    """One decoded event of a partition, with its place in the stream (not frozen: built once
    per message, and a frozen dataclass pays for ``object.__setattr__`` per field)."""

    event: MarketEvent
    trace_context: Mapping[str, str] | None
    message_id: str | None
    received_at_ns: int
    subject: str
    partition: int
    stream_seq: int
    stored_at_ns: int
    """When JetStream stored the message (wall clock of the server)."""
    replay: bool
    """At or before the replay boundary: state rebuilding, signals gated."""


@dataclass(slots=True)
class PartitionProgress:
    """Per-partition progress (status endpoint, readiness, tests)."""

    delivered_seq: int = 0
    """Stream sequence of the last message handed to the feed by its consumer."""
    delivered: int = 0
    replayed: int = 0
    live: int = 0


@dataclass(slots=True)
class ReplayStats:
    boundary_seq: int = 0
    started_at: float = 0.0
    completed_at: float | None = None
    published_ids_loaded: int = 0
    signals_suppressed: int = 0
    """Replayed signals held back, whatever the reason (the next two and no signal stream)."""
    signals_suppressed_published: int = 0
    """... because the signal stream has them: already published."""
    signals_suppressed_stale: int = 0
    """... missing from the signal stream, but from a message older than the recovery window."""
    signals_recovered: int = 0

    @property
    def seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return round(self.completed_at - self.started_at, 3)


@dataclass(frozen=True, slots=True)
class _Meta:
    stream_seq: int
    stored_at_ns: int
    num_pending: int


def _meta(msg: Msg) -> _Meta:
    """Sequence, store time and pending count from the JetStream reply subject."""
    reply = msg.reply
    if (
        reply.count(".") == 8
    ):  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        _, sseq, _, ts, pending = reply.rsplit(".", 4)
        return _Meta(int(sseq), int(ts), int(pending))
    md = msg.metadata
    return _Meta(md.sequence.stream, int(md.timestamp.timestamp() * 1e9), md.num_pending)


def kind_decoders(decoders: Mapping[str, Decoder]) -> dict[str, Decoder]:
    """Kind token of a partition subject → the decoder of that input (``decoders``: input
    name → decoder, :func:`adapters.wire.decoders.market_decoders`) — the single-process
    service's decoders, so a worker decodes what the service would."""
    kinds: dict[str, Decoder] = dict.fromkeys(BINANCE_KINDS, decoders[BINANCE])
    for kind in (RouteKind.DOMINANCE, RouteKind.QUOTES, RouteKind.ONCHAIN):
        kinds[kind] = decoders[kind]
    return kinds


def consumer_filters(
    layout: PartitionLayout, partitions: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """The consumers a worker opens: filter subject → partitions it carries.

    One consumer per owned partition (``<prefix>.<p>.>``), except a worker owning every
    partition, which reads the whole stream with one (``<prefix>.>``). Every consumer keeps up
    to one flow-control window in flight on the worker's connection, and the server cuts a
    connection off beyond its max_pending (64 MiB by default), so fewer consumers is safer
    (with NATS 2.10, one multi-filter consumer per worker would do).
    """
    owned = tuple(sorted(set(partitions)))
    if owned == tuple(range(layout.partitions)):
        return {layout.stream_subject: owned}
    return {layout.partition_filter(p): (p,) for p in owned}


class _End:
    pass


_END = _End()


async def start_sequence(
    js: JetStreamContext, stream: str, subject: str, since_epoch_seconds: float
) -> int:
    """The first stream sequence stored at or after ``since_epoch_seconds`` (last + 1 if none).

    Asks the server through a short-lived pull consumer by start time (its ``delivered``
    sequence is the one before the start), then deletes it.
    """
    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.fromtimestamp(since_epoch_seconds, UTC),
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=subject,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    try:
        delivered = info.delivered
        return (delivered.stream_seq if delivered is not None else 0) + 1
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)


async def load_published_signal_ids(
    js: JetStreamContext,
    stream: str,
    subject: str,
    since_seconds: float,
    *,
    max_wait: float = 30.0,
) -> set[str]:
    """``Nats-Msg-Id`` of every message on ``subject`` the stream stored in the last
    ``since_seconds``. Reads headers only, with an ordered consumer, up to the stream's last
    sequence at the call."""
    info = await js.stream_info(stream)
    last = info.state.last_seq
    ids: set[str] = set()
    if info.state.messages == 0:
        return ids
    first = await start_sequence(js, stream, subject, time.time() - since_seconds)
    if first > last:
        return ids
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        config=ConsumerConfig(opt_start_seq=first, headers_only=True),
        pending_msgs_limit=1_000_000,
    )
    try:
        # What the consumer has to hand over: what it already pushed into this client's
        # buffer plus what is still pending on the server (``num_pending`` alone is 0 once
        # the server has pushed everything, before one message has been read here).
        consumer = await sub.consumer_info()
        pushed = consumer.delivered.consumer_seq if consumer.delivered is not None else 0
        deadline = time.monotonic() + max_wait
        while (pushed or 0) + (consumer.num_pending or 0):
            msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
            meta = _meta(msg)
            if msg.headers and MSG_ID_HEADER in msg.headers:
                ids.add(msg.headers[MSG_ID_HEADER])
            if meta.stream_seq >= last or meta.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return ids


class JetStreamPartitionFeed(MarketSubscriber):
    """``MarketFeed`` over ordered JetStream consumers of a worker's partitions (module doc)."""

    log_name = "partition_feed"

    def __init__(
        self,
        connection: NatsConnection,
        layout: PartitionLayout,
        partitions: Sequence[int],
        decoders: Mapping[str, Decoder],
        stream: StreamSpec,
        *,
        replay_seconds: float,
        create_stream: bool = True,
        signal_stream: StreamSpec | None = None,
        create_signal_stream: bool = True,
        recover_seconds: float = 300.0,
        stats: DecodeStats | None = None,
        dead_letter_subject: str = "",
        queue_size: int = 2_000,
        max_batch: int = 256,
        pending_msgs_limit: int = 500_000,
        pending_bytes_limit: int = 512 * 1024 * 1024,
        idle_heartbeat: float = 5.0,
        log_interval: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
        fast: bool | None = None,
        checkpoints: PartitionCheckpoints | None = None,
    ) -> None:
        if not partitions:
            raise ValueError("a worker feed needs at least one partition")
        self.layout = layout
        self.partitions = tuple(sorted(set(partitions)))
        for p in self.partitions:
            layout.partition_filter(p)  # validates the range
        self.consumer_filters = consumer_filters(layout, self.partitions)
        """Filter subject → the partitions its consumer carries."""
        super().__init__(
            connection,
            self.consumer_filters,
            decoders,
            stats=stats,
            dead_letter_subject=dead_letter_subject,
            log_interval=log_interval,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        self.stream = stream
        self.replay_seconds = replay_seconds
        self.create_stream = create_stream
        self.signal_stream = signal_stream
        self.create_signal_stream = create_signal_stream
        self.recover_seconds = recover_seconds
        self._idle_heartbeat = idle_heartbeat
        self._wall = wall_clock
        self._fast = fast_path_supported() if fast is None else fast
        self.checkpoints = checkpoints
        """Restores the partitions' state at start, snapshots it between batches."""
        self._restored_seq: dict[int, int] = {}
        """Partition → the sequence its restored snapshot covers (its messages up to that
        one are skipped)."""
        self._key_start: dict[str, int] = {}
        self.skipped_restored = 0
        self._draining = False

        self._queue: asyncio.Queue[PartitionFeedItem | _End] = asyncio.Queue(maxsize=queue_size)
        self._max_batch = max(1, max_batch)
        self._subs: dict[str, Any] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._replay_done: dict[str, bool] = dict.fromkeys(self.consumer_filters, False)
        self._start_seq: int | None = None
        self._setup_task: asyncio.Task[None] | None = None
        self._js: JetStreamContext | None = None

        self._in_process: list[PartitionFeedItem] | None = None
        """The batch being processed (while the consumer of ``batches()`` holds it)."""
        self.published_ids: set[str] = set()
        self.recover_after_ns = 0
        """Replayed messages stored after this (wall clock, ns) may have their signals
        recovered (published when the signal stream lacks them)."""
        self.replay = ReplayStats()
        self.progress: dict[int, PartitionProgress] = {
            p: PartitionProgress() for p in self.partitions
        }
        self.received = 0
        self.delivered = 0
        self.setup_errors = 0
        self.reader_errors = 0
        """Messages whose handling raised (logged; the reader goes on with the next)."""
        self._reading: set[str] = set()
        """Consumers whose reader holds a message it took from the buffer."""
        self._replay_watch: asyncio.Task[None] | None = None
        self._replay_items_queued = 0
        self._replay_items_done = 0
        self._in_handler = 0
        self._intake = asyncio.Event()
        """Set while the readers may decode: cleared by a due checkpoint (see
        :meth:`_checkpoint_if_due`)."""
        self._intake.set()

    # ------------------------------------------------------------------ status

    @property
    def is_subscribed(self) -> bool:
        """Consuming and done replaying (what readiness reports)."""
        return self._subscribed.is_set() and not self._closed and self.replay_complete

    @property
    def replay_complete(self) -> bool:
        return self.replay.completed_at is not None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """Nothing received but unprocessed: no message in a consumer's buffer or handler,
        nothing queued, nothing being processed."""
        return (
            self._in_process is None
            and self._queue.empty()
            and self._in_handler == 0
            and all(sub.pending_msgs == 0 for sub in self._subs.values())
        )

    def status(self) -> dict[str, Any]:
        return {
            "stream": self.stream.name,
            "partitions": list(self.partitions),
            "subscribed": self._subscribed.is_set(),
            "replay": {
                "boundary_seq": self.replay.boundary_seq,
                "complete": self.replay_complete,
                "seconds": self.replay.seconds,
                "messages": sum(p.replayed for p in self.progress.values()),
                "published_ids_loaded": self.replay.published_ids_loaded,
                "signals_suppressed": self.replay.signals_suppressed,
                "signals_suppressed_published": self.replay.signals_suppressed_published,
                "signals_suppressed_stale": self.replay.signals_suppressed_stale,
                "signals_recovered": self.replay.signals_recovered,
            },
            "live_messages": sum(p.live for p in self.progress.values()),
            "received": self.received,
            "delivered": self.delivered,
            "reader_errors": self.reader_errors,
            "skipped": dict(self.dead_letters.skipped),
            "queue_depth": self.queue_depth,
            "idle": self.idle,
            "delivered_seq": {str(p): s.delivered_seq for p, s in self.progress.items()},
            "checkpoints": (
                None
                if self.checkpoints is None
                else {
                    "interval_seconds": self.checkpoints.interval,
                    "skipped_restored": self.skipped_restored,
                    **self.checkpoints.stats.as_dict(),
                }
            ),
        }

    async def caught_up(self) -> dict[str, Any]:
        """Whether every message the stream holds for our partitions has been processed.

        The server has nothing pending for any of our consumers, and — since its answer
        arrives on the connection after every message it sent before — everything it sent is
        through the client: no consumer buffer, handler, queue or processing holds any.
        """
        behind: dict[str, int] = {}
        for key, sub in list(self._subs.items()):
            try:
                info = await sub.consumer_info()
            except NotFoundError:
                # Its replacement after an ordered-consumer reset failed: re-create it.
                await recreate_ordered_consumer(sub)
                behind[key] = 1
                continue
            if info.num_pending:
                behind[key] = info.num_pending
        complete = bool(self._subs) and not behind and self.idle and self.replay_complete
        return {"caught_up": complete, "behind": behind, "queue_depth": self.queue_depth}

    async def batches(self) -> AsyncIterator[list[PartitionFeedItem]]:
        """Items in arrival order (per partition: stream order), what has arrived at a time
        (up to ``max_batch``), until drained or closed. Asking for the next batch marks the
        previous one processed (replay progress counts processed items)."""
        await self.start()
        queue = self._queue
        limit = self._max_batch
        while True:
            if self._closed and queue.empty():
                await self._final_checkpoint()
                return
            checkpoints = self.checkpoints
            if queue.empty() and checkpoints is not None and checkpoints.enabled:
                # Gone quiet: a checkpoint falls due while waiting for the next item.
                try:
                    item = await asyncio.wait_for(queue.get(), checkpoints.seconds_until_due())
                except TimeoutError:
                    self._checkpoint_if_due()
                    continue
            else:
                item = await queue.get()
            if isinstance(item, _End):
                await self._final_checkpoint()
                return
            batch = [item]
            while len(batch) < limit and not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, _End):
                    break
                batch.append(item)
            self._in_process = batch
            yield batch
            self._batch_done(batch)
            self._checkpoint_if_due()
            # A full queue never suspends ``get()``: let the socket reader and the other
            # tasks run, or the server sees a reader that stopped reading.
            await asyncio.sleep(0)

    def _checkpoint_if_due(self) -> None:
        """Checkpoint when one is due and the state is exactly that of the messages
        delivered (:meth:`_quiescent`). A queue that never empties under load would never
        be quiescent: a due checkpoint then holds the readers (the consumers' flow control
        keeps the rest on the server) until what was decoded is processed."""
        checkpoints = self.checkpoints
        if checkpoints is None or not checkpoints.due():
            return
        if self._quiescent():
            checkpoints.capture(self.applied_sequences(), self.coverage)
            self._intake.set()
        elif self._intake.is_set():
            checkpoints.stats.intake_holds += 1
            self._intake.clear()

    def _quiescent(self) -> bool:
        """Everything decoded has been processed: the state (decoders included) is exactly
        the result of the messages delivered so far."""
        return self._queue.empty() and self._in_handler == 0

    def applied_sequences(self) -> dict[int, int]:
        """Partition → the last stream sequence delivered (exactly what the state covers
        when :meth:`_quiescent`)."""
        return {p: progress.delivered_seq for p, progress in self.progress.items()}

    async def coverage(self, applied: Mapping[int, int]) -> dict[int, int]:
        """Partition → a stream sequence up to which it holds nothing beyond ``applied``
        (what a checkpoint captured): a consumer that has been sent nothing past its
        partitions' captured sequences and has nothing pending, as the server says after
        the stream's last sequence was read, had nothing of them up to that sequence."""
        if self._js is None:
            return {}
        last = (await self._js.stream_info(self.stream.name)).state.last_seq
        covers = dict(applied)
        for key, carried in self.consumer_filters.items():
            sub = self._subs.get(key)
            if sub is None:
                continue
            position = max(applied[p] for p in carried)
            info = await sub.consumer_info()
            delivered = info.delivered.stream_seq if info.delivered is not None else -1
            if info.num_pending == 0 and delivered <= position:
                for p in carried:
                    covers[p] = max(covers[p], last)
        return covers

    async def _final_checkpoint(self) -> None:
        """At the end of a drain (a graceful stop): checkpoint what was processed, so that
        the next owner replays nothing it does not need."""
        checkpoints = self.checkpoints
        if checkpoints is None or not checkpoints.enabled or not self._draining:
            return
        if not self.replay_complete or not self._quiescent():
            return
        with contextlib.suppress(Exception):
            await checkpoints.flush()
            checkpoints.capture(self.applied_sequences(), self.coverage)
            await checkpoints.flush()

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop the consumers, let what was received through ``batches()``, then end it.

        The consumer of ``batches()`` must keep consuming meanwhile.
        """
        self._draining = True
        self._intake.set()  # what is buffered goes through; the drain ends with a checkpoint
        await self._cancel_setup()
        subs = list(self._subs.values())
        await unsubscribe_all(subs)  # no new deliveries; what was received stays buffered
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - nats-py's buffers, no event
            self._in_handler or any(sub.pending_msgs for sub in subs)
        ):
            await asyncio.sleep(0.01)
        await self._stop_readers()
        self._finish()

    async def close(self) -> None:
        """Stop at once (buffered messages are discarded) and end ``batches()``."""
        await self._cancel_setup()
        await unsubscribe_all(list(self._subs.values()))
        await self._stop_readers()
        self._finish()

    # --------------------------------------------------------------- internals

    async def _cancel_setup(self) -> None:
        task = self._setup_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _stop_readers(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        if self._replay_watch is not None:
            readers.append(self._replay_watch)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    def _batch_done(self, batch: list[PartitionFeedItem]) -> None:
        self._in_process = None
        replayed = sum(1 for item in batch if item.replay)
        if replayed:
            self._replay_items_done += replayed
            self._check_replay_complete()

    def _finish(self) -> None:
        self._stop_listening()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def _subscribe(self) -> bool:
        # Ordered consumers survive reconnects by themselves (they re-create the consumer
        # from the last sequence seen); the setup runs in the background, retrying, and
        # sets ``_subscribed`` when the consumers are in place.
        self._ensure_setup()
        return False

    def _ensure_setup(self) -> None:
        if self._subscribed.is_set() or self._closed:
            return
        if self._setup_task is None or self._setup_task.done():
            self._setup_task = asyncio.create_task(self._setup_forever(), name="partition-setup")

    async def _setup_forever(self) -> None:
        """Set up, retrying what failed. Consumers already created are kept (never replayed
        twice); the boundary is fixed by the first attempt that read it."""
        delay = 0.5
        while not self._closed and not self._subscribed.is_set():
            try:
                await self._setup()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.setup_errors += 1
                _log.warning("partition_feed_setup_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _setup(self) -> None:
        js = self._js or self._connection.jetstream()
        self._js = js
        if self._start_seq is None:
            started = self._wall()
            self.replay = ReplayStats(started_at=time.monotonic())
            info = await ensure_stream(js, self.stream, create=self.create_stream)
            boundary = info.state.last_seq
            if self.signal_stream is not None:
                signals = self.signal_stream
                await ensure_stream(js, signals, create=self.create_signal_stream)
                self.published_ids = await load_published_signal_ids(
                    js,
                    signals.name,
                    signals.subjects[0],
                    self.replay_seconds + self.recover_seconds,
                )
                self.replay.published_ids_loaded = len(self.published_ids)
            if self.replay_seconds > 0:
                start_seq = await start_sequence(
                    js, self.stream.name, self.layout.stream_subject, started - self.replay_seconds
                )
            else:
                start_seq = boundary + 1
            self.recover_after_ns = int((started - self.recover_seconds) * 1e9)
            self.replay.boundary_seq = boundary
            if self.checkpoints is not None:
                # A partition restored from its snapshot replays only what follows it.
                self._restored_seq = await self.checkpoints.restore(
                    js,
                    self.partitions,
                    stream=self.stream.name,
                    stream_created=info.created.isoformat() if info.created else "",
                    first_seq=info.state.first_seq,
                    last_seq=boundary,
                )
                for partition, seq in self._restored_seq.items():
                    self.progress[partition].delivered_seq = seq
            self._start_seq = start_seq
            for key, carried in self.consumer_filters.items():
                self._key_start[key] = min(
                    self._restored_seq[p] + 1 if p in self._restored_seq else start_seq
                    for p in carried
                )
                self._replay_done[key] = boundary < self._key_start[key]
        boundary, start_seq = self.replay.boundary_seq, self._start_seq
        for key, carried in self.consumer_filters.items():
            if key in self._subs:
                continue
            # Without a callback (read by our own task, so that flow control reflects what we
            # have processed), by start sequence (nats-py re-creates an ordered consumer by
            # sequence and would keep a start time too, which the server rejects).
            sub = await js.subscribe(
                key,
                stream=self.stream.name,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                idle_heartbeat=self._idle_heartbeat,
                config=ConsumerConfig(opt_start_seq=self._key_start.get(key, start_seq)),
                pending_msgs_limit=self._pending_msgs_limit,
                pending_bytes_limit=self._pending_bytes_limit,
            )
            self._subs[key] = sub
            only = carried[0] if len(carried) == 1 else None
            self._readers[key] = asyncio.create_task(
                self._read(key, only, sub, boundary), name=f"partition-reader-{key}"
            )
        self._subscribed.set()
        _log.info(
            "partition_feed_subscribed",
            stream=self.stream.name,
            partitions=list(self.partitions),
            boundary_seq=boundary,
            start_seq=start_seq,
            replay_seconds=self.replay_seconds,
            published_ids=len(self.published_ids),
        )
        self._check_replay_complete()
        if self._replay_watch is None or self._replay_watch.done():
            self._replay_watch = asyncio.create_task(
                self._watch_replay(), name="partition-replay-watch"
            )

    REPLAY_WATCH_SECONDS = 0.25

    async def _watch_replay(self) -> None:
        """Mark done the consumers with nothing (more) to replay, until replay is complete.

        A consumer's last replayed message marks it done (its ``num_pending`` is 0), but a
        consumer whose partitions have no message to replay gets none: it is done once the
        server has nothing pending for it and nothing it sent is in the client (its answer
        arrives after every message sent before it) — not in the buffer, not held by the
        reader."""
        task = asyncio.current_task()
        while not self._closed and not self._draining and not self.replay_complete:
            for key, sub in list(self._subs.items()):
                if self._replay_done[key]:
                    continue
                try:
                    info = await sub.consumer_info()
                except Exception:
                    if task is not None and task.cancelling():
                        raise  # nats-py turns a cancelled request into its own error
                    continue  # a reset or NATS away: looked at again next turn
                if info.num_pending == 0 and sub.pending_msgs == 0 and key not in self._reading:
                    self._replay_done[key] = True
            self._check_replay_complete()
            await asyncio.sleep(self.REPLAY_WATCH_SECONDS)

    async def _read(self, key: str, partition: int | None, sub: Any, boundary: int) -> None:
        """Hand every message of one partition's consumer to the feed, in order.

        Flow control: nats-py answers the server's flow-control requests of a subscription
        with a callback as soon as they arrive, whatever the callback's backlog, so a worker
        replaying slower than the server sends would be flooded (and cut off as a slow
        consumer). Read by this task instead, a request is answered as soon as every message
        received before it has been taken from the buffer, so the server has at most one
        flow-control window (≤ 1 MiB) in flight per consumer.
        """
        publish = self._connection.client.publish
        reading = self._reading

        def taken() -> None:
            reading.add(key)

        if self._fast:
            while True:
                await self._handle(
                    key, partition, boundary, await take_pending(sub, publish, taken)
                )
        while True:  # another nats-py: its own (slower) per-message API
            await self._handle(key, partition, boundary, await sub.next_msg(timeout=None))

    def _check_replay_complete(self) -> None:
        if self.replay.completed_at is not None or not self._subscribed.is_set():
            return
        if not all(self._replay_done.values()):
            return
        if self._replay_items_done < self._replay_items_queued:
            return
        self.replay.completed_at = time.monotonic()
        _log.info(
            "partition_replay_complete",
            seconds=self.replay.seconds,
            messages=sum(p.replayed for p in self.progress.values()),
            boundary_seq=self.replay.boundary_seq,
            signals_suppressed=self.replay.signals_suppressed,
            signals_recovered=self.replay.signals_recovered,
            signals_suppressed_stale=self.replay.signals_suppressed_stale,
        )

    async def _handle(self, key: str, partition: int | None, boundary: int, msg: Msg) -> None:
        self._reading.add(key)
        try:
            if not self._intake.is_set():
                await self._intake.wait()
            self._in_handler += 1
            try:
                await self._handle_one(key, partition, boundary, msg)
            finally:
                self._in_handler -= 1
        except Exception:  # one message never stops its partitions' reader
            self.reader_errors += 1
            _log.exception("partition_message_failed", consumer=key, subject=msg.subject)
        finally:
            self._reading.discard(key)

    async def _handle_one(self, key: str, partition: int | None, boundary: int, msg: Msg) -> None:
        received_at_ns = time.time_ns()
        self.received += 1
        meta = _meta(msg)
        replay = meta.stream_seq <= boundary
        subject = msg.subject
        if partition is None:  # a consumer carrying several partitions: from the subject
            try:
                partition = self.layout.partition_in(subject)
            except ValueError:
                partition = -1
            if partition not in self.progress:
                await self._stray(key, meta, msg)
                return
        if self._restored_seq and meta.stream_seq <= self._restored_seq.get(partition, 0):
            # Already in the restored snapshot (a consumer carrying several partitions
            # starts at the earliest of theirs).
            self.skipped_restored += 1
            if not self._replay_done[key] and meta.num_pending == 0:
                self._replay_done[key] = True
                self._check_replay_complete()
            return
        progress = self.progress[partition]
        kind = self.layout.kind_in(subject)
        decoder = self._decoders.get(kind)
        result: Decoded | Skip
        if decoder is None:
            result = Skip(UNKNOWN_KIND, f"no decoder for kind {kind!r}")
        else:
            try:
                result = decoder(msg.data)
            except Exception as exc:
                result = Skip(DECODER_ERROR, f"{type(exc).__name__}: {exc}")
        try:
            self.decode_stats.record(result)
        except Exception as exc:  # pragma: no cover - counters must not cost the message
            _log.error("partition_feed_stats_failed", error=repr(exc))
        if result.__class__ is Skip:
            assert isinstance(result, Skip)
            self._mark_delivered(key, progress, meta, replay)
            await self.dead_letters.skip(result.reason, result.detail, msg.data, subject)
            return
        assert isinstance(result, Decoded)
        trace_context, message_id = message_context(result, msg)
        item = PartitionFeedItem(
            result.event,
            trace_context,
            message_id,
            received_at_ns,
            subject,
            partition,
            meta.stream_seq,
            meta.stored_at_ns,
            replay,
        )
        if replay:
            self._replay_items_queued += 1
        queue = self._queue
        if queue.full():  # backpressure: the consumer's flow control holds the rest
            await queue.put(item)
        else:
            queue.put_nowait(item)
        self.delivered += 1
        self._mark_delivered(key, progress, meta, replay)

    async def _stray(self, key: str, meta: _Meta, msg: Msg) -> None:
        """A message of a consumer carrying several partitions whose subject names none of
        ours: counted, dead-lettered, and it still counts towards the consumer's replay."""
        skip = Skip(UNKNOWN_PARTITION, f"subject {msg.subject!r} names no partition of ours")
        self.decode_stats.record(skip)
        await self.dead_letters.skip(skip.reason, skip.detail, msg.data, msg.subject)
        if not self._replay_done[key] and meta.num_pending == 0:
            self._replay_done[key] = True
            self._check_replay_complete()

    def _mark_delivered(
        self, key: str, progress: PartitionProgress, meta: _Meta, replay: bool
    ) -> None:
        progress.delivered_seq = meta.stream_seq
        progress.delivered += 1
        if replay:
            progress.replayed += 1
        else:
            progress.live += 1
        if not self._replay_done[key] and (not replay or meta.num_pending == 0):
            self._replay_done[key] = True
            self._check_replay_complete()


def _replayed(signal: Signal, item: PartitionFeedItem) -> dict[str, object]:
    """The log fields of a signal computed from a replayed item."""
    return {
        "signal_id": signal.signal_id,
        "strategy_id": signal.strategy_id,
        "symbol": signal.symbol,
        "stream_seq": item.stream_seq,
    }


class ReplayGate:
    """The ``SignalGate`` of a worker: holds back signals computed from replayed messages.

    A replayed item's signal is admitted only if the signal stream does not have its id and
    the item was stored within the recovery window (its previous owner died between
    computing and publishing it); otherwise it is counted as suppressed. One the stream has
    is :attr:`~application.ports.Admission.PUBLISHED_BEFORE`: not sent again, but scored on
    (its live outcome continues with the replayed market). Live signals pass.
    """

    def __init__(self, feed: JetStreamPartitionFeed) -> None:
        self.feed = feed

    def admit(self, item: FeedItem, signal: Signal) -> Admission:
        if not isinstance(item, PartitionFeedItem) or not item.replay:
            return Admission.PUBLISH
        feed = self.feed
        replay = feed.replay
        if feed.signal_stream is None:
            replay.signals_suppressed += 1
            return Admission.HOLD
        if signal.signal_id in feed.published_ids:
            replay.signals_suppressed += 1
            replay.signals_suppressed_published += 1
            return Admission.PUBLISHED_BEFORE
        if item.stored_at_ns < feed.recover_after_ns:
            replay.signals_suppressed += 1
            replay.signals_suppressed_stale += 1
            _log.warning(
                "replayed_signal_not_recovered_stale",
                **_replayed(signal, item),
                stored_seconds_before_window=round(
                    (feed.recover_after_ns - item.stored_at_ns) / 1e9, 3
                ),
            )
            return Admission.HOLD
        return Admission.PUBLISH

    def published(self, item: FeedItem, signal: Signal) -> None:
        """A replayed signal published now is recovered: its previous owner computed it but
        never published it (a live one needs no record)."""
        if not isinstance(item, PartitionFeedItem) or not item.replay:
            return
        self.feed.replay.signals_recovered += 1
        self.feed.published_ids.add(signal.signal_id)
        _log.info("replayed_signal_recovered", **_replayed(signal, item))
