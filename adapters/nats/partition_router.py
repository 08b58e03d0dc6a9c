"""The partition router: raw market-data subjects → ``<prefix>.<partition>.<SYMBOL>.<kind>``.

Stateless, so any number of replicas share the input in one queue group
(``realtime-strategies-router``). Per message: find the routing key
(:mod:`adapters.wire.routing_keys` — a ``bytes.find`` for Binance envelopes), compute the
partition (:mod:`application.partitioning`, CRC-32) and republish the **unchanged** payload
(headers too, except JetStream control headers) to the partition subject, which the
market-data stream stores.

Publishing is acknowledged by JetStream when ``acks`` is on (the default): each message is
sent with a reply subject of a private inbox and the stream's ack is counted there, without a
future per message. At most ``max_pending_acks`` publishes are outstanding (backpressure: the
router slows down rather than lose data when the stream is slow). Every acknowledged publish
carries a ``Nats-Msg-Id`` (the producer's, else one unique to this router and message), so a
publish whose ack has not come within ``ack_timeout`` seconds is **sent again, unchanged**, up
to ``ack_retries`` times: the stream's ``duplicate_window`` stores it once whether the first
copy was stored late or lost (``retried`` counts the re-sends, ``duplicates`` the acks of
copies the stream already had; a slow server costs time, not data). An error ack, or no ack
after the last retry, is counted (``publish_errors`` by reason) and logged rate-limited. With
``acks`` off the router fire-and-forgets (faster; losses then show only in the stream).

**Never silent**: a message that cannot be routed (malformed, no symbol, unsupported stream,
symbol outside ``TRADING_SYMBOLS``, too large) is counted by reason in ``unroutable``, logged
rate-limited and, with a dead-letter subject, republished there with the reason headers of the
market feed (``Rs-Skip-Reason``, ``Rs-Skip-Detail``, ``Rs-Original-Subject``).

**Two ways to run several routers** (docs/adr/0010-symbol-partitioning.md):

- *queue group* (``shards=0``, the default): replicas share the input in one queue group, each
  message goes to one of them. Stateless and elastic, but NATS orders messages per publishing
  connection only: two routers store a symbol's messages in the order they finish them, not
  the producer's — fine with one replica, reordering with more;
- *sharded* (``shards=R``): every replica receives the whole input (a queue group of its own
  per shard) and republishes only the partitions ``p`` with ``p mod R == shard_index``, so each
  symbol passes through exactly one router connection and keeps its producer order. Each
  replica still pays for receiving everything (cheap next to publishing); ``R`` is fixed per
  deployment (StatefulSet ordinals). Unroutable messages are counted by shard 0 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.nats.connection import NatsConnection, RateLimiter
from adapters.nats.dead_letter import DeadLetters
from adapters.nats.jetstream_streams import StreamSpec, ensure_stream
from adapters.nats.subscription import NatsSubscriber, drain_all, unsubscribe_all
from adapters.wire.decoders import BINANCE
from adapters.wire.market_inputs import InputKind
from adapters.wire.routing_keys import (
    BinanceRouteKeys,
    RouteKey,
    RouteResult,
    Unroutable,
    dominance_route,
    onchain_route,
    quote_route,
)
from adapters.wire.stats import SkipReason
from application.partitioning import PartitionLayout, RouteKind

_log = structlog.get_logger(__name__)

RouteFn = Callable[[bytes], RouteResult]


def router_routes(topics: Mapping[str, str]) -> dict[str, RouteFn]:
    """Input subject → routing-key function, from input name → subject (``topics``: the
    Binance subject and the three market-logic input subjects); empty subjects are off."""
    by_input: dict[str, RouteFn] = {
        BINANCE: BinanceRouteKeys(),
        InputKind.DOMINANCE: dominance_route,
        InputKind.QUOTES: quote_route,
        InputKind.ONCHAIN: onchain_route,
    }
    return {subject.strip(): by_input[name] for name, subject in topics.items() if subject.strip()}


DEFAULT_QUEUE_GROUP = "realtime-strategies-router"
MSG_ID_HEADER = "Nats-Msg-Id"
_MAX_HEADER = 512
_SUBJECT_CACHE_MAX = 50_000


def _forwarded_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    """The producer's headers minus JetStream control headers (``Nats-*`` except the id)."""
    if not headers:
        return None
    kept = {k: v for k, v in headers.items() if not k.startswith("Nats-") or k == MSG_ID_HEADER}
    return kept or None


@dataclass(slots=True)
class _Outstanding:
    """A publish awaiting the stream's ack: what to send again if the ack does not come."""

    sent_at: float
    subject: str
    data: bytes
    headers: dict[str, str]
    attempts: int = 1


class NatsPartitionRouter(NatsSubscriber):
    """Consumes the raw subjects in a queue group and republishes by symbol partition.

    Counters: ``received``, ``routed`` (by kind), ``unroutable`` (by reason), ``published``,
    ``acked``, ``publish_errors`` (by reason), ``dead_lettered``; gauge ``pending_acks``.
    """

    log_name = "partition_router"

    def __init__(
        self,
        connection: NatsConnection,
        layout: PartitionLayout,
        routes: Mapping[str, RouteFn],
        queue_group: str = DEFAULT_QUEUE_GROUP,
        *,
        allowed_symbols: frozenset[str] | None = None,
        max_bytes: int = 1 << 20,
        shards: int = 0,
        shard_index: int = 0,
        dead_letter_subject: str = "",
        stream: StreamSpec | None = None,
        create_stream: bool = True,
        acks: bool = True,
        ack_timeout: float = 5.0,
        ack_retries: int = 5,
        max_pending_acks: int = 20_000,
        pending_msgs_limit: int = 500_000,
        pending_bytes_limit: int = 512 * 1024 * 1024,
        log_interval: float = 10.0,
    ) -> None:
        if not routes:
            raise ValueError("the router needs at least one input subject")
        super().__init__(connection)
        self.layout = layout
        self._routes = {s.strip(): fn for s, fn in routes.items() if s.strip()}
        if shards < 0 or (shards and not 0 <= shard_index < shards):
            raise ValueError(f"shard index {shard_index} not in 0..{shards - 1}")
        if shards > layout.partitions:
            raise ValueError(f"{shards} router shards for {layout.partitions} partitions")
        self.shards = shards
        self.shard_index = shard_index
        self.queue_group = f"{queue_group}-shard-{shard_index}" if shards else queue_group
        self._allowed = allowed_symbols
        self._max_bytes = max_bytes
        self.dead_letters = DeadLetters(
            connection,
            dead_letter_subject,
            event="market_message_unroutable",
            log_interval=log_interval,
        )
        self.stream = stream
        self.create_stream = create_stream
        self.stream_ready = asyncio.Event()
        """Set once the market-data stream is known to exist (readiness)."""
        if stream is None:
            self.stream_ready.set()
        self.acks = acks
        self.ack_timeout = ack_timeout
        if ack_retries < 0:
            raise ValueError(f"ack_retries must be >= 0, got {ack_retries}")
        self.ack_retries = ack_retries
        self._msg_id_prefix = f"rt-{uuid.uuid4().hex[:16]}-"
        """Message ids of publishes without a producer id: unique to this process."""
        self.max_pending_acks = max_pending_acks
        self._pending_msgs_limit = pending_msgs_limit
        self._pending_bytes_limit = pending_bytes_limit
        self._limiter = RateLimiter(interval=log_interval)

        self._subjects: dict[tuple[str, str], str | None] = {}
        """(symbol, kind) → partition subject, or None when another shard routes it."""
        self._subs: list[Subscription] = []
        self._ack_sub: Subscription | None = None
        self._ack_prefix = ""
        self._ack_seq = itertools.count(1)
        self._pending: dict[int, _Outstanding] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._acks_done = asyncio.Event()
        self._acks_done.set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

        self.received = 0
        self.other_shards = 0
        self.published = 0
        self.acked = 0
        self.duplicates = 0
        """Acks of re-sent messages the stream already had (stored once)."""
        self.retried = 0
        self.routed: Counter[str] = Counter()
        self.publish_errors: Counter[str] = Counter()

    # ------------------------------------------------------------------ status

    @property
    def pending_acks(self) -> int:
        return len(self._pending)

    @property
    def subjects(self) -> list[str]:
        return list(self._routes)

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "other_shards": self.other_shards,
            "published": self.published,
            "acked": self.acked,
            "duplicates": self.duplicates,
            "retried": self.retried,
            "pending_acks": self.pending_acks,
            "dead_lettered": self.dead_letters.dead_lettered,
            "routed": dict(self.routed),
            "unroutable": dict(self.dead_letters.skipped),
            "publish_errors": dict(self.publish_errors, **self._dead_letter_errors()),
        }

    def _dead_letter_errors(self) -> dict[str, int]:
        errors = self.dead_letters.dead_letter_errors
        return {"dead_letter_failed": errors} if errors else {}

    def connected(self) -> bool:
        return self._connection.is_connected

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when connected, the market-data stream exists and the input is subscribed."""
        body = {
            "nats": self.connected(),
            "stream": self.stream_ready.is_set(),
            "subscribed": self.is_subscribed,
        }
        ok = all(body.values())
        return ok, {"status": "ready" if ok else "not_ready", **body}

    def status(self) -> dict[str, Any]:
        """``/api/v1/router``: layout, queue group or shard, counters."""
        return {
            "prefix": self.layout.prefix,
            "partitions": self.layout.partitions,
            "stream": self.stream.name if self.stream is not None else None,
            "queue_group": self.queue_group,
            "shard": self.shard_index if self.shards else None,
            "shards": self.shards,
            **self.stats(),
        }

    # -------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """The router's job (``realtime-strategies route``): once NATS is connected, make sure
        the market-data stream exists (retrying while it or JetStream is not there), start
        routing, and keep routing until :meth:`stop`."""
        await self._connection.wait_connected()
        if self.stream is not None:
            delay = 0.5
            while True:
                try:
                    await ensure_stream(
                        self._connection.jetstream(), self.stream, create=self.create_stream
                    )
                    break
                except Exception as exc:  # the stream (or JetStream) may come later
                    _log.warning(
                        "market_stream_not_ready", stream=self.stream.name, error=repr(exc)
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self.stream_ready.set()
        await self.start()
        await self._stopped.wait()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Drain within half of ``timeout`` (the rest is the process's to close)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout / 2)
        self._stopped.set()

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop taking input, route what was received, wait for the outstanding acks."""
        subs, self._subs = self._subs, []
        if subs and self._connection.is_connected:
            with contextlib.suppress(Exception):
                await drain_all(subs, timeout)
        if self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks_done.wait(), self.ack_timeout)
        await self.close()

    async def close(self) -> None:
        self._stop_listening()
        await unsubscribe_all([*self._subs, self._ack_sub])
        self._subs = []
        self._ack_sub = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._pending:
            self._expire(force=True)

    # --------------------------------------------------------------- internals

    async def _subscribe(self) -> bool:
        nc = self._connection.client
        if self.acks and self._ack_sub is None:
            self._ack_prefix = nc.new_inbox()
            self._ack_sub = await nc.subscribe(
                f"{self._ack_prefix}.*",
                cb=self._on_ack,
                pending_msgs_limit=self._pending_msgs_limit,
                pending_bytes_limit=64 * 1024 * 1024,
            )
            self._sweeper = asyncio.create_task(self._sweep(), name="router-ack-sweeper")
        subs = []
        for subject, route in self._routes.items():
            subs.append(
                await nc.subscribe(
                    subject,
                    queue=self.queue_group,
                    cb=self._handler(subject, route),
                    pending_msgs_limit=self._pending_msgs_limit,
                    pending_bytes_limit=self._pending_bytes_limit,
                )
            )
        await nc.flush()
        self._subs = subs
        _log.info(
            "partition_router_subscribed",
            subjects=list(self._routes),
            queue_group=self.queue_group,
            shard=f"{self.shard_index}/{self.shards}" if self.shards else None,
            prefix=self.layout.prefix,
            partitions=self.layout.partitions,
            acks=self.acks,
        )
        return True

    def _handler(
        self, subject: str, route: RouteFn
    ) -> Callable[[Msg], Coroutine[None, None, None]]:
        async def handle(msg: Msg) -> None:
            await self.route(subject, route, msg.data, msg.headers, msg.subject)

        return handle

    async def route(
        self,
        input_subject: str,
        route: RouteFn,
        data: bytes,
        headers: dict[str, str] | None = None,
        original_subject: str | None = None,
    ) -> None:
        """Route one message (the subscription callback; public for tests and the bench)."""
        self.received += 1
        if len(data) > self._max_bytes:
            key: RouteResult = Unroutable(
                SkipReason.TOO_LARGE, f"{len(data)} bytes > {self._max_bytes}"
            )
        else:
            try:
                key = route(data)
            except Exception as exc:  # a routing bug costs one message, never the router
                key = Unroutable("router_error", f"{type(exc).__name__}: {exc}")
        if not isinstance(key, RouteKey):
            await self._unroutable(key, data, original_subject or input_subject)
            return
        symbol = key.symbol
        kind = key.kind
        allowed = self._allowed
        if allowed is not None and kind is not RouteKind.DOMINANCE and symbol not in allowed:
            await self._unroutable(
                Unroutable(SkipReason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not traded"),
                data,
                original_subject or input_subject,
            )
            return
        cache_key = (symbol, kind)
        subject = self._subjects.get(cache_key, "")
        if subject == "":
            if len(self._subjects) >= _SUBJECT_CACHE_MAX:
                self._subjects.clear()
            shards = self.shards
            if shards and self.layout.partition(symbol) % shards != self.shard_index:
                subject = None
            else:
                subject = self.layout.subject(symbol, kind)
            self._subjects[cache_key] = subject
        if subject is None:
            self.other_shards += 1
            return
        self.routed[kind] += 1
        await self._publish(subject, data, _forwarded_headers(headers))

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        nc = self._connection.client
        try:
            if self.acks:
                if len(self._pending) >= self.max_pending_acks:
                    self._room.clear()
                    await self._room.wait()
                seq = next(self._ack_seq)
                if headers is None or MSG_ID_HEADER not in headers:
                    headers = {**(headers or {}), MSG_ID_HEADER: f"{self._msg_id_prefix}{seq}"}
                self._pending[seq] = _Outstanding(time.monotonic(), subject, data, headers)
                self._acks_done.clear()
                await nc.publish(subject, data, reply=f"{self._ack_prefix}.{seq}", headers=headers)
            else:
                await nc.publish(subject, data, headers=headers)
        except Exception as exc:
            self._publish_failed("publish_failed", repr(exc), subject)
            return
        self.published += 1

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject.rpartition(".")[2]
        try:
            seq = int(token)
        except ValueError:
            return
        if self._pending.pop(seq, None) is None:
            return  # already expired (counted as ack_timeout)
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            self._publish_failed("no_stream", "no JetStream stream stores the partition subject")
        elif b'"error"' in msg.data:
            self._publish_failed("stream_error", msg.data[:300].decode("utf-8", "replace"))
        elif b'"duplicate":true' in msg.data:
            self.duplicates += 1
        else:
            self.acked += 1
        self._released()

    def _released(self) -> None:
        if len(self._pending) < self.max_pending_acks:
            self._room.set()
        if not self._pending:
            self._acks_done.set()

    def _publish_failed(self, reason: str, detail: str, subject: str | None = None) -> None:
        self.publish_errors[reason] += 1
        suppressed = self._limiter.allow(f"publish:{reason}")
        if suppressed is not None:
            _log.error(
                "partition_publish_failed",
                reason=reason,
                detail=detail[:_MAX_HEADER],
                subject=subject,
                errors_total=sum(self.publish_errors.values()),
                suppressed_since_last=suppressed,
            )

    def _expire(self, *, force: bool = False) -> list[tuple[int, _Outstanding]]:
        """Drop the publishes out of retries (or all, ``force``), counted as ``ack_timeout``;
        return the overdue ones to send again, oldest first."""
        now = time.monotonic()
        deadline = now - self.ack_timeout
        overdue = [(s, o) for s, o in self._pending.items() if force or o.sent_at <= deadline]
        given_up = [s for s, o in overdue if force or o.attempts > self.ack_retries]
        for seq in given_up:
            del self._pending[seq]
        if given_up:
            self.publish_errors["ack_timeout"] += len(given_up) - 1
            self._publish_failed("ack_timeout", f"{len(given_up)} publishes not acknowledged")
            self._released()
        return [(s, o) for s, o in overdue if s in self._pending]

    async def _retry(self, overdue: list[tuple[int, _Outstanding]]) -> None:
        """Send overdue publishes again, unchanged (same message id and reply token)."""
        nc = self._connection.client
        for seq, outstanding in overdue:
            if seq not in self._pending:
                continue  # acknowledged meanwhile
            outstanding.attempts += 1
            outstanding.sent_at = time.monotonic()
            try:
                await nc.publish(
                    outstanding.subject,
                    outstanding.data,
                    reply=f"{self._ack_prefix}.{seq}",
                    headers=outstanding.headers,
                )
            except Exception as exc:
                self._publish_failed("publish_failed", repr(exc), outstanding.subject)
                continue
            self.retried += 1
        if overdue and self._limiter.allow("retry") is not None:
            _log.warning(
                "partition_publish_retried",
                count=len(overdue),
                retried_total=self.retried,
                ack_timeout=self.ack_timeout,
            )

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.ack_timeout / 2))
            overdue = self._expire()
            if overdue and self._connection.is_connected:
                await self._retry(overdue)

    async def _unroutable(self, why: Unroutable, data: bytes, subject: str) -> None:
        if self.shards and self.shard_index != 0:
            self.other_shards += 1  # every shard sees it: shard 0 counts and dead-letters it
            return
        await self.dead_letters.skip(why.reason, why.detail, data, subject)
