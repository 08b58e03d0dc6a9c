"""Signals to NATS: ``<prefix>.<strategy_id>``, deduplicable, buffered while NATS is away.

Delivery path of :meth:`NatsSignalSink.publish`:

1. The signal is encoded (``adapters.wire.signals.encode_signal``; a trace context goes into
   the payload as ``_otel_trace_context``) and addressed to ``<subject_prefix>.<strategy_id>``
   (never the bare prefix) with header ``Nats-Msg-Id`` = ``signal_id`` (a JetStream stream on
   the subject deduplicates replays) and, when a trace context is given, the
   ``traceparent``/``tracestate`` headers.
2. If nothing is waiting, NATS is connected and the circuit breaker lets calls through, it is
   published at once (core NATS, or JetStream with an ack when ``use_jetstream``).
3. Otherwise — or if that attempt fails — it joins a bounded FIFO buffer. A background task
   delivers the buffer in order, retrying with exponential, jittered backoff behind the circuit
   breaker; a reconnect lets a trial call through at once. When the buffer is full the oldest
   signal is evicted, counted in ``dropped_buffer_full`` and logged: never silently.
4. A signal the server refuses for good (larger than its ``max_payload`` or than the
   stream's ``max_msg_size``: a 400 from JetStream) is not retried — it would hold every
   signal behind it for ever — but counted in ``rejected`` and logged as an error.

Ordering: signals published one after the other are delivered in that order (core NATS is
at-most-once per connection: a signal written just before the socket dies can still be lost in
the kernel; ``use_jetstream=True`` makes every delivery acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import APIError

from adapters.nats.circuit_breaker import BreakerState, CircuitBreaker
from adapters.nats.connection import ConnectionEvent, NatsConnection, RateLimiter
from adapters.wire.signals import encode_signal
from domain.signal import Signal

_log = structlog.get_logger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
TRACE_HEADERS = ("traceparent", "tracestate")


class SignalEncoder(Protocol):
    """``adapters.wire.signals.encode_signal``: signal → trade-engine JSON bytes."""

    def __call__(
        self, signal: Signal, source: str, trace_context: Mapping[str, str] | None = None, /
    ) -> bytes: ...


_FORBIDDEN_TOKEN_CHARS = frozenset(" \t\r\n.*>")


def _check_subject_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    tokens = prefix.split(".")
    if not prefix or any(not t or _FORBIDDEN_TOKEN_CHARS & set(t) for t in tokens):
        raise ValueError(f"invalid NATS subject prefix {prefix!r}")
    return prefix


def signal_subject(prefix: str, strategy_id: str) -> str:
    """``<prefix>.<strategy_id>``; the strategy id must be one non-empty subject token."""
    if not strategy_id or _FORBIDDEN_TOKEN_CHARS & set(strategy_id):
        raise ValueError(f"strategy id {strategy_id!r} is not a valid NATS subject token")
    return f"{prefix}.{strategy_id}"


@dataclass(frozen=True, slots=True)
class OutgoingSignal:
    """An encoded signal ready to publish."""

    subject: str
    payload: bytes
    headers: Mapping[str, str]
    signal_id: str
    strategy_id: str
    symbol: str

    def names(self) -> dict[str, str]:
        """The log fields that name the signal."""
        return {"signal_id": self.signal_id, "strategy_id": self.strategy_id, "symbol": self.symbol}


BAD_REQUEST = 400
"""JetStream's answer to a publish it will never accept (e.g. over the stream's
``max_msg_size``)."""


class NatsSignalSink:
    """``SignalSink`` publishing to NATS with retries, a circuit breaker and a bounded buffer.

    Counters: ``published``, ``publish_errors`` (failed delivery attempts of any cause),
    ``dropped_buffer_full``, ``duplicates`` (JetStream acks flagged duplicate); gauges:
    ``buffered``, ``circuit_state`` (0 closed, 1 open, 2 half-open).
    """

    def __init__(
        self,
        connection: NatsConnection,
        subject_prefix: str = "signals.trading",
        source: str = "realtime-strategies",
        buffer_size: int = 10_000,
        *,
        encoder: SignalEncoder | None = None,
        use_jetstream: bool = False,
        jetstream_timeout: float = 2.0,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        log_interval: float = 1.0,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if not 0 < retry_initial <= retry_max:
            raise ValueError("need 0 < retry_initial <= retry_max")
        self._connection = connection
        self.subject_prefix = _check_subject_prefix(subject_prefix)
        self.source = source
        self.buffer_size = buffer_size
        self.use_jetstream = use_jetstream
        self.jetstream_timeout = jetstream_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._encode: SignalEncoder = encoder if encoder is not None else encode_signal
        self._breaker = breaker or CircuitBreaker(
            failure_threshold=failure_threshold, reset_timeout=reset_timeout
        )
        self._rng = rng or random.Random()
        self._limiter = RateLimiter(interval=log_interval)

        self._buffer: deque[OutgoingSignal] = deque()
        self._inflight: OutgoingSignal | None = None
        self._empty = asyncio.Event()
        self._empty.set()
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._js: JetStreamContext | None = None

        self.published = 0
        self.publish_errors = 0
        self.dropped_buffer_full = 0
        self.rejected = 0
        self.duplicates = 0
        self.undelivered_at_close = 0
        self.last_error: str | None = None

        connection.add_listener(self._on_connection_event)

    # ------------------------------------------------------------------ status

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def circuit_state(self) -> int:
        return int(self._breaker.state)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def stats(self) -> dict[str, int]:
        return {
            "published": self.published,
            "publish_errors": self.publish_errors,
            "buffered": self.buffered,
            "dropped_buffer_full": self.dropped_buffer_full,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "circuit_state": self.circuit_state,
        }

    # -------------------------------------------------------------------- port

    async def publish(self, signal: Signal, trace_context: Mapping[str, str] | None = None) -> None:
        """Deliver now if possible, else buffer (bounded; overflow evicts the oldest, counted).

        With JetStream the signal always goes through the buffer: its acknowledgement is awaited
        by the drain task, never by the caller, so a server that dies mid-publish (ack wait up to
        ``jetstream_timeout``) cannot stall the run loop — signals keep being computed and
        buffered meanwhile."""
        if self._closed:
            raise RuntimeError("NatsSignalSink is closed")
        out = self.prepare(signal, trace_context)
        if (
            self.use_jetstream
            or self._buffer
            or not self._connection.is_connected
            or not self._breaker.allow_request()
        ):
            self._enqueue(out)
            return
        if not await self._attempt(out):
            self._enqueue(out)

    def prepare(
        self, signal: Signal, trace_context: Mapping[str, str] | None = None
    ) -> OutgoingSignal:
        """Encode and address ``signal`` (raises ValueError on an invalid strategy id)."""
        headers = {MSG_ID_HEADER: signal.signal_id}
        if trace_context:
            for key in TRACE_HEADERS:
                value = trace_context.get(key)
                if value:
                    headers[key] = value
        return OutgoingSignal(
            subject=signal_subject(self.subject_prefix, signal.strategy_id),
            payload=self._encode(signal, self.source, trace_context or None),
            headers=headers,
            signal_id=signal.signal_id,
            strategy_id=signal.strategy_id,
            symbol=signal.symbol,
        )

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Deliver the buffer (waiting up to ``timeout``) and flush the connection.

        Whatever is still buffered afterwards is logged (it stays buffered for a later flush).
        """
        deadline = time.monotonic() + timeout
        if self._buffer:
            self._breaker.probe_now()
            self._ensure_drainer()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), timeout)
        remaining = deadline - time.monotonic()
        if self._connection.is_connected and remaining > 0:
            try:
                await asyncio.wait_for(self._connection.flush(remaining), remaining)
            except Exception as exc:
                _log.warning("signal_sink_flush_failed", error=repr(exc))
        if self._buffer:
            _log.error(
                "signal_sink_flush_incomplete",
                buffered=len(self._buffer),
                timeout=timeout,
                connection=self._connection.state.value,
                circuit_state=self.circuit_state,
            )

    async def close(self) -> None:
        """Stop the background delivery; buffered signals are logged as undelivered."""
        self._closed = True
        self._connection.remove_listener(self._on_connection_event)
        task = self._drainer
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._buffer:
            self.undelivered_at_close += len(self._buffer)
            _log.error(
                "signals_undelivered_at_close",
                count=len(self._buffer),
                signal_ids=[out.signal_id for out in list(self._buffer)[:50]],
            )
            self._buffer.clear()
            self._empty.set()

    # --------------------------------------------------------------- internals

    def _enqueue(self, out: OutgoingSignal) -> None:
        if len(self._buffer) >= self.buffer_size:
            # Never evict the signal being published right now (it may still be delivered):
            # the next one, or the new one when it is alone.
            if self._buffer[0] is not self._inflight:
                self._dropped(self._buffer.popleft())
            elif len(self._buffer) > 1:
                self._dropped(self._buffer[1])
                del self._buffer[1]
            else:
                self._dropped(out)
                return
        self._buffer.append(out)
        self._empty.clear()
        self._ensure_drainer()

    def _dropped(self, victim: OutgoingSignal) -> None:
        self.dropped_buffer_full += 1
        suppressed = self._limiter.allow("dropped")
        if suppressed is not None:
            _log.error(
                "signal_dropped_buffer_full",
                **victim.names(),
                buffer_size=self.buffer_size,
                dropped_total=self.dropped_buffer_full,
                dropped_since_last_log=suppressed,
            )

    def _ensure_drainer(self) -> None:
        if self._closed:
            return
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain_loop(), name="signal-sink-drain")

    async def _attempt(self, out: OutgoingSignal) -> bool:
        """One delivery attempt (the breaker must have allowed it); records the outcome. True
        when the signal is settled: delivered, or refused for good (module doc, 4)."""
        if not self._connection.is_connected:
            self._record_failure(out, "not connected")
            return False
        try:
            if self.use_jetstream:
                if self._js is None:
                    self._js = self._connection.jetstream(self.jetstream_timeout)
                ack = await self._js.publish(
                    out.subject,
                    out.payload,
                    timeout=self.jetstream_timeout,
                    headers=dict(out.headers),
                )
                if ack.duplicate:
                    self.duplicates += 1
            else:
                await self._connection.client.publish(
                    out.subject, out.payload, headers=dict(out.headers)
                )
        except asyncio.CancelledError:
            self._breaker.record_failure()  # a half-open breaker's trial slot is given back
            raise
        except Exception as exc:
            if isinstance(exc, MaxPayloadError) or (
                isinstance(exc, APIError) and exc.code == BAD_REQUEST
            ):
                self._reject(out, exc)
                return True
            self._record_failure(out, repr(exc))
            return False
        self._breaker.record_success()
        self.published += 1
        return True

    def _reject(self, out: OutgoingSignal, error: Exception) -> None:
        self._breaker.record_success()  # the server answered: NATS itself is fine
        self.rejected += 1
        _log.error(
            "signal_rejected",
            **out.names(),
            subject=out.subject,
            size=len(out.payload),
            error=repr(error),
            rejected_total=self.rejected,
        )

    def _record_failure(self, out: OutgoingSignal, error: str) -> None:
        self._breaker.record_failure()
        self.publish_errors += 1
        self.last_error = error
        suppressed = self._limiter.allow("publish_error")
        if suppressed is not None:
            _log.warning(
                "signal_publish_failed",
                signal_id=out.signal_id,
                subject=out.subject,
                error=error,
                buffered=len(self._buffer),
                circuit_state=self.circuit_state,
                errors_since_last_log=suppressed,
            )

    async def _drain_loop(self) -> None:
        delay = self.retry_initial
        while self._buffer and not self._closed:
            if not self._breaker.allow_request():
                await self._sleep_or_wake(max(self._breaker.retry_after(), self.retry_initial))
                continue
            out = self._buffer[0]
            self._inflight = out
            try:
                ok = await self._attempt(out)
            finally:
                self._inflight = None
            if ok:
                if self._buffer and self._buffer[0] is out:
                    self._buffer.popleft()
                delay = self.retry_initial
                continue
            await self._sleep_or_wake(delay * (0.5 + 0.5 * self._rng.random()))
            delay = min(delay * 2.0, self.retry_max)
        if not self._buffer:
            self._empty.set()
            if self.published and self._breaker.state is BreakerState.CLOSED:
                _log.info("signal_buffer_delivered", published_total=self.published)

    async def _sleep_or_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _on_connection_event(self, event: ConnectionEvent) -> None:
        if event in (ConnectionEvent.CONNECTED, ConnectionEvent.RECONNECTED):
            # The dependency is back: let a trial call through without waiting out the timeout.
            self._breaker.probe_now()
            if self._buffer:
                self._ensure_drainer()
                self._wake.set()
