"""One shared NATS connection for the service: connects in the background, reconnects forever.

The service must start (and report not-ready) while NATS is away, so :meth:`NatsConnection.start`
never blocks and never raises: a background task keeps trying until the server answers. Once
connected, nats-py reconnects forever (``max_reconnect_attempts=-1``) with an exponential,
jittered backoff (:func:`reconnect_delay`), re-subscribes every subscription and replays what
was published while reconnecting.

Everything that depends on the connection (feed, sink, config broadcast) registers a listener
(:meth:`NatsConnection.add_listener`) or waits with :meth:`NatsConnection.wait_connected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.client import Server as NatsServer
from nats.errors import SlowConsumerError
from nats.js import JetStreamContext

from adapters.redaction import redact

_log = structlog.get_logger(__name__)


class ConnectionState(StrEnum):
    IDLE = "idle"
    """Not started yet."""
    CONNECTING = "connecting"
    """Never connected yet; retrying in the background."""
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    DRAINING = "draining"
    CLOSED = "closed"


class ConnectionEvent(StrEnum):
    CONNECTED = "connected"
    """First successful connection."""
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    CLOSED = "closed"


Listener = Callable[[ConnectionEvent], Awaitable[None]]
ErrorListener = Callable[[Exception], Awaitable[None]]


class RateLimiter:
    """Lets one event per ``interval`` seconds through per key and counts what it held back.

    ``allow(key)`` returns None while suppressed, else the number of suppressed events since the
    last one let through (to log along, so that nothing disappears silently).
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


def reconnect_delay(
    attempt: int, base: float, maximum: float, jitter: float, rng: random.Random
) -> float:
    """Exponential backoff ``base * 2**attempt`` capped at ``maximum``, minus up to ``jitter``
    (a fraction, 0..1) of it at random so that replicas do not reconnect in lockstep."""
    delay = min(maximum, base * (2.0 ** min(attempt, 32)))
    return delay * (1.0 - jitter * rng.random())


async def wait_for_event(event: asyncio.Event, timeout: float | None) -> bool:  # noqa: ASYNC109
    """Wait until ``event`` is set; False if ``timeout`` (seconds, None = forever) ran out."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def parse_servers(servers: str | Sequence[str]) -> list[str]:
    """``"nats://a:4222,nats://b:4222"`` or a list → list of URLs."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    urls = [item.strip() for item in items if item.strip()]
    if not urls:
        raise ValueError("at least one NATS server URL is required")
    return urls


class NatsConnection:
    """A nats-py client that connects in the background, reconnects forever and tracks state.

    Counters: ``disconnects``, ``reconnects``, ``errors``, ``slow_consumers``.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        name: str = "realtime-strategies",
        reconnect_time_wait: float = 0.5,
        max_reconnect_wait: float = 10.0,
        reconnect_jitter: float = 0.5,
        connect_timeout: float = 2.0,
        ping_interval: float = 20.0,
        max_outstanding_pings: int = 3,
        drain_timeout: float = 10.0,
        pending_size: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= reconnect_jitter <= 1.0:
            raise ValueError(f"reconnect_jitter must be within [0, 1], got {reconnect_jitter}")
        if reconnect_time_wait <= 0 or max_reconnect_wait < reconnect_time_wait:
            raise ValueError("need 0 < reconnect_time_wait <= max_reconnect_wait")
        self.servers = parse_servers(servers)
        self.name = name
        self.reconnect_time_wait = reconnect_time_wait
        self.max_reconnect_wait = max_reconnect_wait
        self.reconnect_jitter = reconnect_jitter
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.max_outstanding_pings = max_outstanding_pings
        self.drain_timeout = drain_timeout
        self.pending_size = pending_size
        self._rng = rng or random.Random()

        self._nc: Client | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._state = ConnectionState.IDLE
        self._ever_connected = False
        self._closing = False
        self._listeners: list[Listener] = []
        self._error_listeners: list[ErrorListener] = []
        self._log_limiter = RateLimiter(interval=10.0)

        self.disconnects = 0
        self.reconnects = 0
        self.errors = 0
        self.slow_consumers = 0
        self.connect_attempts_failed = 0

    # ------------------------------------------------------------------ state

    @property
    def client(self) -> Client:
        """The underlying nats-py client (only meaningful once connected)."""
        if self._nc is None:
            raise RuntimeError("NatsConnection.start() has not been called")
        return self._nc

    @property
    def is_connected(self) -> bool:
        """Connected and accepting publishes (not draining, not reconnecting)."""
        nc = self._nc
        return (
            nc is not None
            and self._ever_connected
            and nc.is_connected
            and not nc.is_draining
            and not self._closing
        )

    @property
    def state(self) -> ConnectionState:
        nc = self._nc
        if self._state in (ConnectionState.IDLE, ConnectionState.CLOSED) or nc is None:
            return self._state
        if nc.is_closed:
            return ConnectionState.CLOSED
        if not self._ever_connected:
            return ConnectionState.CONNECTING
        if nc.is_draining:
            return ConnectionState.DRAINING
        if nc.is_connected:
            return ConnectionState.CONNECTED
        if nc.is_reconnecting:
            return ConnectionState.RECONNECTING
        return ConnectionState.DISCONNECTED

    @property
    def connected_url(self) -> str | None:
        """The server this connection is on, without credentials (it is logged and shown)."""
        nc = self._nc
        if nc is None or not self.is_connected or nc.connected_url is None:
            return None
        return redact(nc.connected_url.geturl())

    def stats(self) -> dict[str, int | str]:
        return {
            "state": self.state.value,
            "connected": int(self.is_connected),
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "slow_consumers": self.slow_consumers,
            "connect_attempts_failed": self.connect_attempts_failed,
        }

    def add_listener(self, listener: Listener) -> None:
        """``await listener(event)`` on connected / disconnected / reconnected / closed."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def add_error_listener(self, listener: ErrorListener) -> None:
        """``await listener(error)`` for every asynchronous error nats-py reports."""
        self._error_listeners.append(listener)

    def remove_error_listener(self, listener: ErrorListener) -> None:
        with contextlib.suppress(ValueError):
            self._error_listeners.remove(listener)

    async def wait_connected(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until connected; False if ``timeout`` elapsed first."""
        if self.is_connected:
            return True
        return await wait_for_event(self._connected, timeout) and self.is_connected

    def jetstream(self, timeout: float = 5.0) -> JetStreamContext:
        return self.client.jetstream(timeout=timeout)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Begin connecting in the background; returns at once, never raises on NATS being down."""
        if self._connect_task is not None:
            return
        self._closing = False
        self._state = ConnectionState.CONNECTING
        self._connect_task = asyncio.create_task(self._connect_forever(), name="nats-connect")

    async def connect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Start and wait for the first connection; ``TimeoutError`` if it takes longer."""
        await self.start()
        if not await self.wait_connected(timeout):
            raise TimeoutError(f"NATS not reachable at {self.servers} within {timeout}s")

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Round-trip to the server so that everything published so far has reached it."""
        await self.client.flush(timeout=max(1, math.ceil(timeout)))

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Drain every subscription (pending messages are still handled), flush, close."""
        nc = self._nc
        if nc is None:
            self._state = ConnectionState.CLOSED
            return
        if not self.is_connected:
            await self.close()
            return
        self._closing = True
        try:
            await asyncio.wait_for(nc.drain(), timeout or self.drain_timeout + 5.0)
        except Exception as exc:
            _log.warning("nats_drain_failed", error=repr(exc))
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop connecting/reconnecting and close the connection (idempotent)."""
        self._closing = True
        task = self._connect_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        nc = self._nc
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:
                _log.warning("nats_close_failed", error=repr(exc))
        was_closed = self._state is ConnectionState.CLOSED
        self._state = ConnectionState.CLOSED
        self._connected.clear()
        if not was_closed:
            await self._emit(ConnectionEvent.CLOSED)

    async def __aenter__(self) -> NatsConnection:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --------------------------------------------------------------- internals

    async def _connect_forever(self) -> None:
        attempt = 0
        while not self._closing:
            nc = Client()
            self._nc = nc
            try:
                # nats-py retries the initial connection itself when max_reconnect_attempts < 0
                # (every reconnect_time_wait); the wait is jittered per client so that replicas
                # booting together do not hammer the server in lockstep.
                initial_wait = reconnect_delay(
                    0,
                    self.reconnect_time_wait,
                    self.max_reconnect_wait,
                    self.reconnect_jitter,
                    self._rng,
                )
                options: dict[str, Any] = {
                    "servers": self.servers,
                    "name": self.name,
                    "allow_reconnect": True,
                    "max_reconnect_attempts": -1,
                    "reconnect_time_wait": initial_wait,
                    "connect_timeout": self.connect_timeout,
                    "ping_interval": self.ping_interval,
                    "max_outstanding_pings": self.max_outstanding_pings,
                    "drain_timeout": self.drain_timeout,
                    "pending_size": self.pending_size,
                    "error_cb": self._on_error,
                    "disconnected_cb": self._on_disconnected,
                    "reconnected_cb": self._on_reconnected,
                    "closed_cb": self._on_closed,
                    "reconnect_to_server_handler": self._choose_server,
                }
                await nc.connect(**options)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not expected with max_reconnect_attempts=-1, but never give up.
                self.connect_attempts_failed += 1
                delay = reconnect_delay(
                    attempt,
                    self.reconnect_time_wait,
                    self.max_reconnect_wait,
                    self.reconnect_jitter,
                    self._rng,
                )
                attempt += 1
                _log.warning("nats_connect_failed", error=repr(exc), retry_in=round(delay, 3))
                with contextlib.suppress(Exception):
                    await nc.close()
                await asyncio.sleep(delay)
                continue
            if self._closing:
                with contextlib.suppress(Exception):
                    await nc.close()
                return
            self._ever_connected = True
            self._state = ConnectionState.CONNECTED
            self._connected.set()
            _log.info("nats_connected", url=self.connected_url, name=self.name)
            await self._emit(ConnectionEvent.CONNECTED)
            return

    def _choose_server(
        self, servers: list[NatsServer], server_info: dict[str, Any]
    ) -> tuple[NatsServer | None, float]:
        """nats-py reconnect hook: least-tried server, exponential jittered delay."""
        fewest = min(server.reconnects for server in servers)
        candidates = [server for server in servers if server.reconnects == fewest]
        chosen = self._rng.choice(candidates)
        delay = reconnect_delay(
            fewest,
            self.reconnect_time_wait,
            self.max_reconnect_wait,
            self.reconnect_jitter,
            self._rng,
        )
        return chosen, delay

    async def _on_error(self, error: Exception) -> None:
        self.errors += 1
        if isinstance(error, SlowConsumerError):
            self.slow_consumers += 1
            key = f"slow_consumer:{error.subject}"
        else:
            key = f"error:{type(error).__name__}"
        suppressed = self._log_limiter.allow(key)
        if suppressed is not None:
            _log.warning(
                "nats_error",
                error=str(error) or repr(error),
                state=self.state.value,
                suppressed_since_last=suppressed,
            )
        for listener in list(self._error_listeners):
            try:
                await listener(error)
            except Exception as exc:
                _log.error("nats_error_listener_failed", error=repr(exc))

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self._ever_connected or self._closing:
            return
        self.disconnects += 1
        _log.warning("nats_disconnected", disconnects=self.disconnects)
        await self._emit(ConnectionEvent.DISCONNECTED)

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self._connected.set()
        _log.info("nats_reconnected", url=self.connected_url, reconnects=self.reconnects)
        await self._emit(ConnectionEvent.RECONNECTED)

    async def _on_closed(self) -> None:
        self._connected.clear()
        if self._ever_connected and not self._closing:
            _log.error("nats_connection_closed_unexpectedly")
        if self._state is not ConnectionState.CLOSED:
            self._state = ConnectionState.CLOSED
            await self._emit(ConnectionEvent.CLOSED)

    async def _emit(self, event: ConnectionEvent) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception as exc:
                _log.error("nats_listener_failed", nats_event=event.value, error=repr(exc))
