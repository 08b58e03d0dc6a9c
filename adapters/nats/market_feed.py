"""Market data from NATS: decoded events in, bad messages counted and dead-lettered.

``NatsMarketFeed`` subscribes to a set of subjects, each with its own decoder (a callable
``raw bytes → Decoded | Skip`` from ``adapters.wire``), and hands out the decoded events through
a bounded :class:`asyncio.Queue`:

- **Backpressure**: when the queue is full the subscription callback awaits; nats-py then
  buffers in the subscription's pending queue (limits set generously) and, past those limits,
  drops messages and reports a slow-consumer error — counted in ``slow_consumer_drops``.
- **Bad input**: a ``Skip`` (or a decoder that raises) costs that one message, never the
  subscription: it is counted by reason, logged rate-limited and, when a dead-letter subject is
  configured, republished there with headers ``Rs-Skip-Reason``, ``Rs-Skip-Detail`` and
  ``Rs-Original-Subject`` and the original payload.
- ``batches()`` (the ``MarketFeed`` port) yields lists of :class:`FeedItem` (event + trace
  context + message id + receive time).
- ``drain()`` stops interest, lets every message already received through, then ends the
  iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from adapters.nats.connection import ConnectionEvent, NatsConnection, RateLimiter, wait_for_event
from adapters.wire.decoders import Decoder
from adapters.wire.stats import Decoded, DecodeStats, Skip
from domain.market import MarketEvent

_log = structlog.get_logger(__name__)

SKIP_REASON_HEADER = "Rs-Skip-Reason"
SKIP_DETAIL_HEADER = "Rs-Skip-Detail"
ORIGINAL_SUBJECT_HEADER = "Rs-Original-Subject"
DECODER_ERROR = "decoder_error"
"""Skip reason used when a decoder raises instead of returning a Skip."""

_MAX_HEADER_VALUE = 512


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One decoded event with what the service needs besides it."""

    event: MarketEvent
    trace_context: Mapping[str, str] | None
    message_id: str | None
    received_at_ns: int
    """Wall-clock receive time (``time.time_ns()``), for consumer lag."""
    subject: str


class _End:
    """Queue sentinel: no more items."""


_END = _End()


def _header_value(text: str) -> str:
    """Header-safe (no CR/LF, bounded) version of ``text``."""
    cleaned = " ".join(text.split())
    if len(cleaned) > _MAX_HEADER_VALUE:
        cleaned = cleaned[: _MAX_HEADER_VALUE - 3] + "..."
    return cleaned


async def _drain_subscription(sub: Subscription) -> None:
    drain: Callable[[], Awaitable[None]] = sub.drain  # nats-py leaves it unannotated
    await drain()


class NatsMarketFeed:
    """``MarketFeed`` over NATS core subscriptions (one per subject, each with its decoder)."""

    def __init__(
        self,
        connection: NatsConnection,
        subjects: Mapping[str, Decoder],
        queue_group: str | None = "realtime-strategies-group",
        *,
        stats: DecodeStats | None = None,
        dead_letter_subject: str = "",
        ungrouped_subjects: frozenset[str] = frozenset(),
        queue_size: int = 10_000,
        max_batch: int = 256,
        pending_msgs_limit: int = 500_000,
        pending_bytes_limit: int = 256 * 1024 * 1024,
        log_interval: float = 10.0,
    ) -> None:
        if not subjects:
            raise ValueError("NatsMarketFeed needs at least one subject")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._connection = connection
        self._subjects = dict(subjects)
        self._queue_group = queue_group or ""
        self._ungrouped = ungrouped_subjects
        self.decode_stats = stats if stats is not None else DecodeStats()
        self.dead_letter_subject = dead_letter_subject.strip()
        self._pending_msgs_limit = pending_msgs_limit
        self._pending_bytes_limit = pending_bytes_limit
        self._queue: asyncio.Queue[FeedItem | _End] = asyncio.Queue(maxsize=queue_size)
        self._max_batch = max(1, max_batch)
        self._subs: list[Subscription] = []
        self._subscribed = asyncio.Event()
        self._subscribe_lock = asyncio.Lock()
        self._started = False
        self._done = False
        self._limiter = RateLimiter(interval=log_interval)

        self.received = 0
        self.delivered = 0
        self.skipped: Counter[str] = Counter()
        self.received_by_subject: Counter[str] = Counter()
        self.dead_lettered = 0
        self.dead_letter_errors = 0
        self.decoder_errors = 0
        self.slow_consumer_drops = 0

    # ------------------------------------------------------------------ status

    @property
    def is_subscribed(self) -> bool:
        return self._subscribed.is_set() and not self._done

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def subjects(self) -> list[str]:
        return list(self._subjects)

    @property
    def decoders(self) -> Mapping[str, Decoder]:
        """Subject → its decoder."""
        return MappingProxyType(self._subjects)

    def stats(self) -> dict[str, int]:
        out = {
            "received": self.received,
            "delivered": self.delivered,
            "skipped": sum(self.skipped.values()),
            "dead_lettered": self.dead_lettered,
            "dead_letter_errors": self.dead_letter_errors,
            "decoder_errors": self.decoder_errors,
            "slow_consumer_drops": self.slow_consumer_drops,
            "queue_depth": self.queue_depth,
        }
        for reason, count in self.skipped.items():
            out[f"skipped.{reason}"] = count
        return out

    async def wait_subscribed(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every subscription is registered with the server."""
        return await wait_for_event(self._subscribed, timeout)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe now if connected, else as soon as the connection comes up. Never blocks."""
        if self._started:
            return
        self._started = True
        self._connection.add_error_listener(self._on_nats_error)
        self._connection.add_listener(self._on_connection_event)
        if self._connection.is_connected:
            await self._subscribe_all()

    async def batches(self) -> AsyncIterator[list[FeedItem]]:
        """Decoded items in arrival order, what has arrived at a time (up to ``max_batch``),
        until the feed is drained or closed."""
        await self.start()
        queue = self._queue
        limit = self._max_batch
        while True:
            if self._done and queue.empty():
                return
            item = await queue.get()
            if isinstance(item, _End):
                return
            batch = [item]
            while len(batch) < limit and not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, _End):
                    yield batch
                    return
                batch.append(item)
            yield batch

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop receiving, let the messages already received reach ``batches()``, then end it.

        The consumer of ``batches()`` must keep consuming meanwhile (else the subscriptions cannot
        drain and this gives up after ``timeout``, discarding what nats-py still holds).
        """
        subs, self._subs = self._subs, []
        if subs and self._connection.is_connected:
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(
                        *(_drain_subscription(sub) for sub in subs), return_exceptions=True
                    ),
                    timeout,
                )
            except TimeoutError:
                _log.error("nats_feed_drain_timeout", timeout=timeout, queue_depth=self.queue_depth)
                await self._unsubscribe(subs)
            else:
                for result in results:
                    if isinstance(result, BaseException):
                        _log.warning("nats_feed_drain_error", error=repr(result))
        else:
            await self._unsubscribe(subs)
        self._finish()

    async def close(self) -> None:
        """Stop receiving at once (messages not yet handled are discarded) and end ``batches()``."""
        subs, self._subs = self._subs, []
        await self._unsubscribe(subs)
        self._finish()

    # --------------------------------------------------------------- internals

    def _finish(self) -> None:
        self._done = True
        self._subscribed.clear()
        self._connection.remove_listener(self._on_connection_event)
        self._connection.remove_error_listener(self._on_nats_error)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def _unsubscribe(self, subs: list[Subscription]) -> None:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_connection_event(self, event: ConnectionEvent) -> None:
        # nats-py re-subscribes by itself after a reconnect: only the first connection matters.
        if event is ConnectionEvent.CONNECTED and not self._done:
            await self._subscribe_all()

    async def _subscribe_all(self) -> None:
        async with self._subscribe_lock:
            if self._subs or self._done:
                return
            nc = self._connection.client
            subs: list[Subscription] = []
            try:
                for subject, decoder in self._subjects.items():
                    queue = "" if subject in self._ungrouped else self._queue_group
                    sub = await nc.subscribe(
                        subject,
                        queue=queue,
                        cb=self._make_handler(subject, decoder),
                        pending_msgs_limit=self._pending_msgs_limit,
                        pending_bytes_limit=self._pending_bytes_limit,
                    )
                    subs.append(sub)
                await nc.flush()
            except Exception as exc:
                # Lost the connection while subscribing: nats-py replays the subscriptions made
                # so far on reconnect; the rest are retried on the next connection event.
                _log.warning("nats_feed_subscribe_failed", error=repr(exc))
                self._subs = subs
                return
            self._subs = subs
            self._subscribed.set()
            _log.info(
                "nats_feed_subscribed",
                subjects=list(self._subjects),
                queue_group=self._queue_group or None,
                dead_letter_subject=self.dead_letter_subject or None,
            )

    def _make_handler(
        self, subject: str, decoder: Decoder
    ) -> Callable[[Msg], Coroutine[None, None, None]]:
        async def handle(msg: Msg) -> None:
            await self._handle(subject, decoder, msg)

        return handle

    async def _handle(self, subject: str, decoder: Decoder, msg: Msg) -> None:
        received_at_ns = time.time_ns()
        self.received += 1
        self.received_by_subject[subject] += 1
        data = msg.data
        result: Decoded | Skip
        try:
            result = decoder(data)
        except Exception as exc:
            self.decoder_errors += 1
            result = Skip(DECODER_ERROR, f"{type(exc).__name__}: {exc}")
        try:
            self.decode_stats.record(result)
        except Exception as exc:
            _log.error("nats_feed_stats_failed", error=repr(exc))
        if isinstance(result, Skip):
            await self._skip(subject, msg, result)
            return
        trace_context = result.trace_context
        headers = msg.headers
        if trace_context is None and headers and "traceparent" in headers:
            trace_context = {
                key: headers[key] for key in ("traceparent", "tracestate") if key in headers
            }
        message_id = result.message_id
        if message_id is None and headers:
            message_id = headers.get("Nats-Msg-Id")
        item = FeedItem(
            event=result.event,
            trace_context=trace_context,
            message_id=message_id,
            received_at_ns=received_at_ns,
            subject=msg.subject,
        )
        # Backpressure: wait for room (nats-py buffers in the subscription meanwhile).
        await self._queue.put(item)
        self.delivered += 1

    async def _skip(self, subject: str, msg: Msg, skip: Skip) -> None:
        self.skipped[skip.reason] += 1
        suppressed = self._limiter.allow(f"skip:{skip.reason}")
        if suppressed is not None:
            _log.warning(
                "market_message_skipped",
                reason=skip.reason,
                detail=skip.detail[:_MAX_HEADER_VALUE],
                subject=msg.subject,
                stream=skip.stream,
                size=len(msg.data),
                suppressed_since_last=suppressed,
            )
        if not self.dead_letter_subject:
            return
        headers = {
            SKIP_REASON_HEADER: _header_value(skip.reason),
            SKIP_DETAIL_HEADER: _header_value(skip.detail),
            ORIGINAL_SUBJECT_HEADER: msg.subject,
        }
        try:
            await self._connection.client.publish(
                self.dead_letter_subject, msg.data, headers=headers
            )
            self.dead_lettered += 1
        except Exception as exc:
            self.dead_letter_errors += 1
            if self._limiter.allow("dead_letter_error") is not None:
                _log.error(
                    "dead_letter_publish_failed",
                    subject=self.dead_letter_subject,
                    reason=skip.reason,
                    error=repr(exc),
                )

    async def _on_nats_error(self, error: Exception) -> None:
        if isinstance(error, SlowConsumerError) and any(error.sub is sub for sub in self._subs):
            self.slow_consumer_drops += 1
