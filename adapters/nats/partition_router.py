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

**Failover** (``input_stream`` set, ADR 0015): the raw subjects are captured by an *input
stream*, and each shard runs a leader and standbys. Leadership is a TTL'd key in a JetStream
KV bucket (:class:`~adapters.nats.router_lease.KvLease`); the leader reads the input stream
with an ordered consumer, routes as above with ``Nats-Msg-Id`` = ``<input stream>-<input
sequence>`` (the producer's id if it sent one), and records in a second bucket the input
sequence up to which everything is routed and acknowledged. A standby that gets the lease
resumes after that sequence: what its predecessor had routed since is sent again with the
same ids and stored once, in the input order, so a symbol's messages stay in producer order.
The failover bound is the lease TTL plus one acquisition attempt (``lease_ttl / 4``).

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
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from adapters.nats.client_internals import fast_path_supported, take_pending
from adapters.nats.connection import NatsConnection, RateLimiter
from adapters.nats.dead_letter import DeadLetters
from adapters.nats.jetstream_streams import StreamSpec, ensure_bucket, ensure_stream
from adapters.nats.partition_subjects import PartitionLayout
from adapters.nats.router_lease import KvLease, KvPosition, open_lease_bucket
from adapters.nats.subscription import NatsSubscriber, drain_all, unsubscribe_all
from adapters.wire.decoders import BINANCE
from adapters.wire.market_inputs import InputKind
from adapters.wire.routing_keys import (
    BinanceRouteKeys,
    RouteKey,
    RouteKind,
    RouteResult,
    Unroutable,
    dominance_route,
    onchain_route,
    quote_route,
)
from adapters.wire.stats import SkipReason

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
_YIELD_EVERY = 64
_FRONTIER_LOOKBACK = 256
_SUBJECT_CACHE_MAX = 50_000


def _forwarded_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    """The producer's headers minus JetStream control headers (``Nats-*`` except the id)."""
    if not headers:
        return None
    kept = {k: v for k, v in headers.items() if not k.startswith("Nats-") or k == MSG_ID_HEADER}
    return kept or None


def _stream_seq(msg: Msg) -> int:
    """The stream sequence of a JetStream message, from its reply subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``)."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    return int(msg.metadata.sequence.stream)


@dataclass(slots=True)
class _Outstanding:
    """A publish awaiting the stream's ack: what to send again if the ack does not come."""

    sent_at: float
    subject: str
    data: bytes
    headers: dict[str, str]
    attempts: int = 1
    source_seq: int = 0
    """Input-stream sequence of the message (failover mode; 0 otherwise)."""


class Role:
    CORE = "core"
    """Plain subscription to the raw subjects, no failover."""
    LEADER = "leader"
    STANDBY = "standby"


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
        input_stream: StreamSpec | None = None,
        create_input_stream: bool = True,
        lease_bucket: str = "router_leases",
        position_bucket: str = "router_positions",
        lease_ttl: float = 6.0,
        holder: str = "",
        bucket_replicas: int = 1,
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

        self.input_stream = input_stream
        self.create_input_stream = create_input_stream
        self.lease_bucket = lease_bucket
        self.position_bucket = position_bucket
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be > 0, got {lease_ttl}")
        self.lease_ttl = lease_ttl
        self.holder = holder or f"router-{uuid.uuid4().hex[:12]}"
        self._bucket_replicas = bucket_replicas
        self.role = Role.CORE if input_stream is None else Role.STANDBY
        self.terms = 0
        self.first_led_at: float | None = None
        """Wall clock (unix s) of this router's first term as leader."""
        self.last_takeover: dict[str, Any] | None = None
        self._lease: KvLease | None = None
        self._position: KvPosition | None = None
        self._input_sub: Any = None
        self._input_reader: asyncio.Task[None] | None = None
        self._source_seq = 0
        """Input-stream sequence of the message being routed (failover mode)."""
        self._handled_seq = 0
        """Last input-stream sequence handled (published, skipped or dead-lettered)."""
        self.input_gaps = 0
        self.fenced = 0
        self.skipped_stored = 0
        """Input messages a new leader found already routed by its predecessor (not re-sent)."""
        self._skip_until = 0
        """Renewals that came too late: routing paused until the next successful one."""
        self._fast = fast_path_supported()
        self._run_done = asyncio.Event()

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
        body: dict[str, Any] = {
            "nats": self.connected(),
            "stream": self.stream_ready.is_set(),
            "subscribed": self.is_subscribed,
        }
        if self.input_stream is not None:  # a standby is ready too: it is what failover needs
            body["role"] = self.role
        ok = all(v for k, v in body.items() if k != "role")
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
            "role": self.role,
            "holder": self.holder,
            "input_stream": self.input_stream.name if self.input_stream is not None else None,
            "terms": self.terms,
            "first_led_at_unix": self.first_led_at,
            "last_takeover": self.last_takeover,
            "committed_input_seq": self._position.committed if self._position else None,
            "input_gaps": self.input_gaps,
            "fenced": self.fenced,
            "skipped_stored": self.skipped_stored,
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
            if self.input_stream is None:
                self.stream_ready.set()
        if self.input_stream is None:
            await self.start()
            await self._stopped.wait()
            return
        await self._retrying("input_stream_not_ready", self._ensure_input)
        self.stream_ready.set()
        await self.start()  # the ack inbox
        try:
            await self._lead_or_stand_by()
        finally:
            self._run_done.set()

    async def _retrying(self, event: str, setup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        delay = 0.5
        while not self._stopped.is_set():
            try:
                await setup()
                return
            except Exception as exc:
                _log.warning(event, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _ensure_input(self) -> None:
        assert self.input_stream is not None
        js = self._connection.jetstream()
        await ensure_stream(js, self.input_stream, create=self.create_input_stream)
        key = f"shard-{self.shard_index}"
        leases, self.lease_ttl = await open_lease_bucket(
            js, self.lease_bucket, self.lease_ttl, replicas=self._bucket_replicas
        )
        positions = await ensure_bucket(js, self.position_bucket, replicas=self._bucket_replicas)
        self._lease = KvLease(leases, key, self.holder, self.lease_ttl)
        self._position = KvPosition(positions, key)

    # ----------------------------------------------------------- failover mode

    async def _lead_or_stand_by(self) -> None:
        """Try the lease every ``lease_ttl / 4`` seconds; lead while it is held."""
        lease = self._lease
        assert lease is not None
        interval = self.lease_ttl / 4
        while not self._stopped.is_set():
            try:
                if self._connection.is_connected and await lease.try_acquire():
                    await self._lead(lease)
            except Exception as exc:
                _log.warning("router_lease_attempt_failed", error=repr(exc))
            self.role = Role.STANDBY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), interval)

    async def _lead(self, lease: KvLease) -> None:
        """One leadership term: resume after the committed input sequence, route, renew and
        commit every ``lease_ttl / 4`` seconds; end when the lease is lost or cannot be
        renewed in time (self-fencing) or the router stops."""
        position = self._position
        assert position is not None
        assert self.input_stream is not None
        started = time.monotonic()
        committed = await position.load()
        js = self._connection.jetstream()
        stored = committed
        with contextlib.suppress(Exception):  # an optimisation: without it, dedup does it
            stored = max(committed, await self._stored_frontier(js))
        self._skip_until = stored
        self.role = Role.LEADER
        self.terms += 1
        self._handled_seq = committed
        sub = await js.subscribe(
            "",
            stream=self.input_stream.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            idle_heartbeat=5.0,
            config=ConsumerConfig(opt_start_seq=committed + 1),
            pending_msgs_limit=self._pending_msgs_limit,
            pending_bytes_limit=self._pending_bytes_limit,
        )
        self._input_sub = sub
        self._input_reader = asyncio.create_task(self._read_input(sub, lease), name="router-input")
        if self.first_led_at is None:
            self.first_led_at = round(time.time(), 3)
        self.last_takeover = {
            "at_unix": round(time.time(), 3),
            "term": self.terms,
            "resumed_after_seq": committed,
            "already_stored_until_seq": stored,
            "setup_seconds": round(time.monotonic() - started, 3),
        }
        _log.info("router_leader", holder=self.holder, shard=self.shard_index, **self.last_takeover)
        interval = self.lease_ttl / 4
        try:
            while not self._stopped.is_set() and not self._input_reader.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), interval)
                try:
                    if not await lease.renew():
                        _log.error("router_lease_lost", holder=self.holder, shard=self.shard_index)
                        return
                except Exception as exc:
                    # Not renewed in time: the reader pauses itself once the lease is no longer
                    # held (self-fencing). A later renewal that succeeds proves the key stayed
                    # ours (compare-and-set on our revision): nobody else led, routing resumes
                    # where it paused. A lost one ends the term.
                    if not lease.held:
                        self.fenced += 1
                    _log.warning(
                        "router_lease_renew_failed", error=repr(exc), fenced=not lease.held
                    )
                    continue
                with contextlib.suppress(Exception):
                    await position.commit(self.committed_frontier())
        finally:
            await self._end_term(lease)

    async def _end_term(self, lease: KvLease) -> None:
        reader, self._input_reader = self._input_reader, None
        sub, self._input_sub = self._input_sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if reader is not None:
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                _log.error("router_input_reader_failed", error=repr(reader.exception()))
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if self._stopped.is_set():
            # graceful: what was published gets its acks, the position is committed, the
            # lease released so that a standby takes over at its next attempt
            if self._pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks_done.wait(), self.ack_timeout)
            if lease.held and self._position is not None:
                with contextlib.suppress(Exception):
                    await self._position.commit(self.committed_frontier())
            await lease.release()
        else:
            lease.drop()
            self._pending.clear()  # the next leader re-sends them (same ids)
            self._released()

    async def _stored_frontier(self, js: Any) -> int:
        """The highest input sequence of this shard the market-data stream already holds,
        from its last messages (0 if none found among them).

        A leader publishes in input order on one connection and the stream processes one
        connection's publishes in order: everything this shard routed before that message
        was stored (or refused with an error ack, counted by its router). A new leader
        therefore re-sends nothing up to it — the committed position lags by the acks in
        flight, and re-sends older than the duplicate window would be stored twice."""
        assert self.stream is not None
        assert self.input_stream is not None
        info = await js.stream_info(self.stream.name)
        prefix = f"{self.input_stream.name}-"
        seq, first, looked = info.state.last_seq, max(info.state.first_seq, 1), 0
        while seq >= first and looked < _FRONTIER_LOOKBACK:
            looked += 1
            try:
                msg = await js.get_msg(self.stream.name, seq)
            except NotFoundError:
                seq -= 1
                continue
            seq -= 1
            msg_id = (msg.headers or {}).get(MSG_ID_HEADER, "")
            if not msg_id.startswith(prefix):
                continue
            subject = msg.subject or ""
            partition = self.layout.partition_in(subject)
            if self.shards and partition % self.shards != self.shard_index:
                continue
            return int(msg_id[len(prefix) :])
        return 0

    def committed_frontier(self) -> int:
        """The input sequence up to which every message is routed and acknowledged."""
        for outstanding in self._pending.values():  # insertion order: the oldest first
            return outstanding.source_seq - 1
        return self._handled_seq

    async def _read_input(self, sub: Any, lease: KvLease) -> None:
        routes = self._routes
        publish = self._connection.client.publish
        expected = self._handled_seq + 1
        while True:
            if self._fast:
                msg = await take_pending(sub, publish)
            else:
                msg = await sub.next_msg(timeout=None)
            seq = _stream_seq(msg)
            if seq > expected:  # aged out of the input stream before it was routed
                self.input_gaps += seq - expected
                _log.error("router_input_gap", missing_from=expected, missing_to=seq - 1)
            expected = seq + 1
            self._source_seq = seq
            if seq <= self._skip_until:  # the predecessor's, already in the stream
                self.skipped_stored += 1
                self._handled_seq = seq
                continue
            route = routes.get(msg.subject)
            if route is None:
                await self._unroutable(
                    Unroutable("unknown_input_subject", msg.subject), msg.data, msg.subject
                )
            else:
                await self.route(msg.subject, route, msg.data, msg.headers, msg.subject)
            self._handled_seq = seq
            if not seq % _YIELD_EVERY:
                # With a backlog nothing above suspends (the buffer is never empty, a publish
                # only buffers): let the socket reader (acks), the lease renewal and the API in.
                await asyncio.sleep(0)
                while not lease.held:  # noqa: ASYNC110 - a clock, no event: self-fencing
                    await asyncio.sleep(0.05)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Drain within half of ``timeout`` (the rest is the process's to close)."""
        if self.input_stream is not None:  # the term ends: acks, position, lease released
            self._stopped.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._run_done.wait(), timeout / 2)
        with contextlib.suppress(Exception):
            # drain's own deadlines come before the guard's, so its close() always runs
            await asyncio.wait_for(self.drain(0.4 * timeout), timeout / 2)
        self._stopped.set()

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop taking input, route what was received, wait for the outstanding acks (at most
        ``ack_timeout``), then close; within ``timeout`` for all but the close."""
        deadline = time.monotonic() + timeout
        subs, self._subs = self._subs, []
        if subs and self._connection.is_connected:
            with contextlib.suppress(Exception):
                await drain_all(subs, timeout)
        if self._pending:
            wait = min(self.ack_timeout, max(deadline - time.monotonic(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks_done.wait(), wait)
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
        core_routes = self._routes if self.input_stream is None else {}
        # Kept across a failed attempt (the retry makes only the missing ones).
        subscribed = {sub.subject for sub in self._subs}
        for subject, route in core_routes.items():
            if subject in subscribed:
                continue
            self._subs.append(
                await nc.subscribe(
                    subject,
                    queue=self.queue_group,
                    cb=self._handler(subject, route),
                    pending_msgs_limit=self._pending_msgs_limit,
                    pending_bytes_limit=self._pending_bytes_limit,
                )
            )
        await nc.flush()
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
                source = self._source_seq
                if headers is None or MSG_ID_HEADER not in headers:
                    msg_id = (
                        f"{self.input_stream.name}-{source}"
                        if self.input_stream is not None
                        else f"{self._msg_id_prefix}{seq}"
                    )
                    headers = {**(headers or {}), MSG_ID_HEADER: msg_id}
                self._pending[seq] = _Outstanding(
                    time.monotonic(), subject, data, headers, source_seq=source
                )
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
        elif b'"duplicate"' in msg.data:  # the key is there only when true
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
