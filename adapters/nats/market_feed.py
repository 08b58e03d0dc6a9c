"""Market data from NATS: decoded events in, bad messages counted and dead-lettered.

``NatsMarketFeed`` subscribes to a set of subjects, each with its own decoder (a callable
``raw bytes → Decoded | Skip`` from ``adapters.wire``), in a queue group, and hands out the
decoded events through ``batches()`` (the ``MarketFeed`` port):

- **One hop**: the subscriptions deliver into one buffer that the consumer of ``batches()``
  reads in its own task — everything that has arrived (up to ``max_batch``) at a time,
  decoded there and handed over as one list (``adapters.nats.client_internals``; with
  ``fast=False`` or another nats-py, through subscription callbacks: one more task and queue
  hop per message, same messages in the same order).
- **Backpressure**: nats-py buffers what the consumer has not taken yet (limits set
  generously) and, past those limits, drops messages and reports a slow-consumer error —
  counted in ``slow_consumer_drops``.
- **Bad input**: a ``Skip`` (or a decoder that raises) costs that one message, never the
  subscription: it is counted by reason, logged rate-limited and, when a dead-letter subject
  is configured, republished there with the reason (``adapters.nats.dead_letter``).
- Items are :class:`FeedItem` (event + trace context + message id + receive time).
- ``drain()`` stops interest, lets every message already received through, then ends the
  iteration.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from adapters.nats.client_internals import CallbackBuffer, SharedBuffer, fast_path_supported
from adapters.nats.connection import NatsConnection
from adapters.nats.dead_letter import DeadLetters
from adapters.nats.subscription import NatsSubscriber, unsubscribe_all
from adapters.wire.decoders import Decoder
from adapters.wire.stats import Decoded, DecodeStats, Skip
from domain.market import MarketEvent

_log = structlog.get_logger(__name__)

DECODER_ERROR: Final = "decoder_error"
"""Skip reason used when a decoder raises instead of returning a Skip."""
MSG_ID_HEADER: Final = "Nats-Msg-Id"

_Tag = tuple[str, Decoder]
"""What a message's subscription stands for: (subscribed subject, its decoder)."""


@dataclass(slots=True)
class FeedItem:
    """One decoded event with what the service needs besides it (not frozen: built once per
    message, and a frozen dataclass pays for ``object.__setattr__`` per field)."""

    event: MarketEvent
    trace_context: Mapping[str, str] | None
    message_id: str | None
    received_at_ns: int
    """Wall-clock time (``time.time_ns()``) the feed took the message from NATS."""
    subject: str


def message_context(decoded: Decoded, msg: Msg) -> tuple[Mapping[str, str] | None, str | None]:
    """(trace context, message id) of a decoded message: the envelope's, else the
    ``traceparent``/``tracestate`` and ``Nats-Msg-Id`` headers."""
    trace_context = decoded.trace_context
    message_id = decoded.message_id
    headers = msg.headers
    if headers:
        if trace_context is None and "traceparent" in headers:
            trace_context = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        if message_id is None:
            message_id = headers.get(MSG_ID_HEADER)
    return trace_context, message_id


class MarketSubscriber(NatsSubscriber):
    """What both NATS market feeds keep (this module's feed and a worker's partition feed):
    the subjects they subscribe, their decoders, the decode statistics, the dead letters of
    what they skip and the limits of what nats-py buffers for them."""

    def __init__(
        self,
        connection: NatsConnection,
        subjects: Iterable[str],
        decoders: Mapping[str, Decoder],
        *,
        stats: DecodeStats | None,
        dead_letter_subject: str,
        log_interval: float,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
    ) -> None:
        super().__init__(connection)
        self._subject_names = list(subjects)
        self._decoders = dict(decoders)
        self.decode_stats = stats if stats is not None else DecodeStats()
        self.dead_letters = DeadLetters(
            connection,
            dead_letter_subject,
            event="market_message_skipped",
            log_interval=log_interval,
        )
        self._pending_msgs_limit = pending_msgs_limit
        self._pending_bytes_limit = pending_bytes_limit

    @property
    def subjects(self) -> list[str]:
        """The subjects subscribed (consumer filter subjects for the partition feed)."""
        return list(self._subject_names)

    @property
    def decoders(self) -> Mapping[str, Decoder]:
        """Subject (kind token of a partition subject for the partition feed) → its decoder."""
        return MappingProxyType(self._decoders)


class NatsMarketFeed(MarketSubscriber):
    """``MarketFeed`` over NATS core subscriptions (one per subject, each with its decoder)."""

    log_name = "nats_feed"

    def __init__(
        self,
        connection: NatsConnection,
        subjects: Mapping[str, Decoder],
        queue_group: str | None = "realtime-strategies-group",
        *,
        stats: DecodeStats | None = None,
        dead_letter_subject: str = "",
        ungrouped_subjects: frozenset[str] = frozenset(),
        max_batch: int = 512,
        pending_msgs_limit: int = 500_000,
        pending_bytes_limit: int = 256 * 1024 * 1024,
        fast: bool | None = None,
        log_interval: float = 10.0,
    ) -> None:
        if not subjects:
            raise ValueError("NatsMarketFeed needs at least one subject")
        super().__init__(
            connection,
            subjects,
            subjects,
            stats=stats,
            dead_letter_subject=dead_letter_subject,
            log_interval=log_interval,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        self._queue_group = queue_group or ""
        self._ungrouped = ungrouped_subjects
        self._max_batch = max(1, max_batch)
        self.fast = fast_path_supported() if fast is None else fast
        """Whether the subscriptions deliver into one buffer read in the consumer's task
        (``adapters.nats.client_internals.SharedBuffer``) or through callbacks."""
        self._buffer: SharedBuffer[_Tag] | CallbackBuffer[_Tag] = (
            SharedBuffer(pending_msgs_limit) if self.fast else CallbackBuffer(10_000)
        )
        self._subs: list[Subscription] = []

        self.received = 0
        self.delivered = 0
        self.received_by_subject: dict[str, int] = dict.fromkeys(self._decoders, 0)
        self.decoder_errors = 0
        self.slow_consumer_drops = 0

    # ------------------------------------------------------------------ status

    @property
    def queue_depth(self) -> int:
        """Messages received but not yet taken by the consumer."""
        return self._buffer.qsize()

    def stats(self) -> dict[str, int]:
        skipped = self.dead_letters.skipped
        out = {
            "received": self.received,
            "delivered": self.delivered,
            "skipped": sum(skipped.values()),
            "dead_lettered": self.dead_letters.dead_lettered,
            "dead_letter_errors": self.dead_letters.dead_letter_errors,
            "decoder_errors": self.decoder_errors,
            "slow_consumer_drops": self.slow_consumer_drops,
            "queue_depth": self.queue_depth,
        }
        for reason, count in skipped.items():
            out[f"skipped.{reason}"] = count
        return out

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe now if connected, else as soon as the connection comes up. Never blocks."""
        if not self._started:
            self._connection.add_error_listener(self._on_nats_error)
        await super().start()

    async def batches(self) -> AsyncIterator[list[FeedItem]]:
        """Decoded items in arrival order, what has arrived at a time (up to ``max_batch``),
        until the feed is drained or closed."""
        await self.start()
        take = self._buffer.take
        limit = self._max_batch
        record = self.decode_stats.record
        by_subject = self.received_by_subject
        while True:
            taken = await take(limit)
            if taken is None:
                return
            received_at_ns = time.time_ns()
            self.received += len(taken)
            batch: list[FeedItem] = []
            for (subject, decoder), msg in taken:
                by_subject[subject] += 1
                try:
                    result = decoder(msg.data)
                except Exception as exc:
                    self.decoder_errors += 1
                    result = Skip(DECODER_ERROR, f"{type(exc).__name__}: {exc}")
                try:
                    record(result)
                except Exception as exc:  # counters must not cost the message
                    _log.error("nats_feed_stats_failed", error=repr(exc))
                if result.__class__ is Skip:
                    skip: Skip = result
                    await self.dead_letters.skip(
                        skip.reason, skip.detail, msg.data, msg.subject, stream=skip.stream
                    )
                    continue
                decoded: Decoded = result  # type: ignore[assignment]
                if msg.headers:
                    trace_context, message_id = message_context(decoded, msg)
                else:  # the usual case, without a call
                    trace_context, message_id = decoded.trace_context, decoded.message_id
                batch.append(
                    FeedItem(decoded.event, trace_context, message_id, received_at_ns, msg.subject)
                )
            if batch:
                self.delivered += len(batch)
                yield batch

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop receiving, let the messages already received reach ``batches()``, then end it.

        The consumer of ``batches()`` must keep consuming meanwhile (else the subscriptions
        cannot drain and this gives up after ``timeout``, discarding what nats-py still holds).
        """
        subs, self._subs = self._subs, []
        await self._drain(subs, timeout, queue_depth=self.queue_depth)
        self._finish()

    async def close(self) -> None:
        """Stop receiving at once (messages not yet handled are discarded) and end
        ``batches()``."""
        subs, self._subs = self._subs, []
        await unsubscribe_all(subs)
        self._finish()

    # --------------------------------------------------------------- internals

    def _finish(self) -> None:
        self._stop_listening()
        self._connection.remove_error_listener(self._on_nats_error)
        self._buffer.close()

    async def _subscribe(self) -> bool:
        # Losing the connection midway raises: nats-py replays the subscriptions made so
        # far on reconnect, the rest are made on the next connection event.
        nc = self._connection.client
        subscribed = {sub.subject for sub in self._subs}
        for subject, decoder in self._decoders.items():
            if subject in subscribed:
                continue
            self._subs.append(
                await self._buffer.subscribe(
                    nc,
                    subject,
                    (subject, decoder),
                    queue="" if subject in self._ungrouped else self._queue_group,
                    pending_msgs_limit=self._pending_msgs_limit,
                    pending_bytes_limit=self._pending_bytes_limit,
                )
            )
        await nc.flush()
        _log.info(
            "nats_feed_subscribed",
            subjects=self.subjects,
            queue_group=self._queue_group or None,
            dead_letter_subject=self.dead_letters.subject or None,
            fast_path=self.fast,
        )
        return True

    async def _on_nats_error(self, error: Exception) -> None:
        if isinstance(error, SlowConsumerError) and any(error.sub is sub for sub in self._subs):
            self.slow_consumer_drops += 1
