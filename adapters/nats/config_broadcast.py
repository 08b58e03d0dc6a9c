"""Configuration-change broadcast between replicas over NATS (``strategies.config.changed``).

A write through the admin API of one replica calls :class:`NatsConfigChangeNotifier` which
publishes ``{"strategy_id", "symbol", "version", "origin"}``; every replica (no queue group)
runs a :class:`NatsConfigChangeListener` that drops its own messages (same ``origin``) and calls
``on_change(strategy_id, symbol, version)`` for the others, typically to invalidate its config
cache. The broadcast is a latency optimisation over the cache TTL: failing to publish is logged
and counted, never raised to the writer (the write itself already succeeded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import orjson
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.nats.connection import ConnectionEvent, NatsConnection, RateLimiter, wait_for_event

_log = structlog.get_logger(__name__)

CONFIG_CHANGED_SUBJECT = "strategies.config.changed"

OnConfigChange = Callable[[str, str | None, int], Awaitable[None]]


def default_instance_id() -> str:
    """Unique per process: ``<hostname>-<pid>-<random>`` (the pod name in Kubernetes)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def encode_config_change(strategy_id: str, symbol: str | None, version: int, origin: str) -> bytes:
    return orjson.dumps(
        {"strategy_id": strategy_id, "symbol": symbol, "version": version, "origin": origin}
    )


class InvalidConfigChangeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode_config_change(raw: bytes) -> tuple[str, str | None, int, str]:
    """``(strategy_id, symbol, version, origin)``; raises InvalidConfigChangeError."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidConfigChangeError("malformed_json", str(exc)) from exc
    if not isinstance(doc, dict):
        raise InvalidConfigChangeError("not_an_object", "payload is not a JSON object")
    strategy_id = doc.get("strategy_id")
    symbol = doc.get("symbol")
    version = doc.get("version")
    origin = doc.get("origin")
    if not isinstance(strategy_id, str) or not strategy_id:
        raise InvalidConfigChangeError("bad_strategy_id", "must be a non-empty string")
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise InvalidConfigChangeError("bad_symbol", "must be null or a non-empty string")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidConfigChangeError("bad_version", "must be an integer >= 0")
    if not isinstance(origin, str) or not origin:
        raise InvalidConfigChangeError("bad_origin", "must be a non-empty string")
    return strategy_id, symbol, version, origin


class NatsConfigChangeNotifier:
    """``ConfigChangeNotifier`` port over NATS core publish."""

    def __init__(
        self,
        connection: NatsConnection,
        instance_id: str,
        subject: str = CONFIG_CHANGED_SUBJECT,
    ) -> None:
        self._connection = connection
        self.instance_id = instance_id
        self.subject = subject
        self.published = 0
        self.errors = 0

    async def notify(self, strategy_id: str, symbol: str | None, version: int) -> None:
        payload = encode_config_change(strategy_id, symbol, version, self.instance_id)
        if not self._connection.is_connected:
            self.errors += 1
            _log.warning(
                "config_change_not_broadcast",
                reason="nats not connected",
                strategy_id=strategy_id,
                symbol=symbol,
                version=version,
            )
            return
        try:
            await self._connection.client.publish(self.subject, payload)
        except Exception as exc:
            self.errors += 1
            _log.warning(
                "config_change_not_broadcast",
                reason=repr(exc),
                strategy_id=strategy_id,
                symbol=symbol,
                version=version,
            )
            return
        self.published += 1


class NatsConfigChangeListener:
    """Applies other replicas' configuration changes (every replica gets every message)."""

    def __init__(
        self,
        connection: NatsConnection,
        on_change: OnConfigChange,
        instance_id: str,
        subject: str = CONFIG_CHANGED_SUBJECT,
        *,
        log_interval: float = 10.0,
    ) -> None:
        self._connection = connection
        self._on_change = on_change
        self.instance_id = instance_id
        self.subject = subject
        self._sub: Subscription | None = None
        self._subscribed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._limiter = RateLimiter(interval=log_interval)

        self.received = 0
        self.applied = 0
        self.ignored_own = 0
        self.invalid = 0
        self.handler_errors = 0
        self.invalid_by_reason: Counter[str] = Counter()

    @property
    def is_subscribed(self) -> bool:
        return self._subscribed.is_set()

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "applied": self.applied,
            "ignored_own": self.ignored_own,
            "invalid": self.invalid,
            "handler_errors": self.handler_errors,
        }

    async def start(self) -> None:
        """Subscribe now if connected, else on the first connection. Never blocks."""
        if self._started:
            return
        self._started = True
        self._connection.add_listener(self._on_connection_event)
        if self._connection.is_connected:
            await self._subscribe()

    async def wait_subscribed(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return await wait_for_event(self._subscribed, timeout)

    async def close(self) -> None:
        self._closed = True
        self._connection.remove_listener(self._on_connection_event)
        sub, self._sub = self._sub, None
        self._subscribed.clear()
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_connection_event(self, event: ConnectionEvent) -> None:
        if event is ConnectionEvent.CONNECTED:
            await self._subscribe()

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._sub is not None or self._closed:
                return
            nc = self._connection.client
            try:
                # No queue group: every replica must receive every change.
                self._sub = await nc.subscribe(self.subject, cb=self._handle)
                await nc.flush()
            except Exception as exc:
                _log.warning("config_listener_subscribe_failed", error=repr(exc))
                return
            self._subscribed.set()

    async def _handle(self, msg: Msg) -> None:
        self.received += 1
        try:
            strategy_id, symbol, version, origin = decode_config_change(msg.data)
        except InvalidConfigChangeError as exc:
            self.invalid += 1
            self.invalid_by_reason[exc.reason] += 1
            suppressed = self._limiter.allow("invalid")
            if suppressed is not None:
                _log.warning(
                    "config_change_invalid",
                    error=str(exc),
                    size=len(msg.data),
                    suppressed_since_last=suppressed,
                )
            return
        if origin == self.instance_id:
            self.ignored_own += 1
            return
        try:
            await self._on_change(strategy_id, symbol, version)
        except Exception as exc:
            self.handler_errors += 1
            _log.error(
                "config_change_handler_failed",
                strategy_id=strategy_id,
                symbol=symbol,
                version=version,
                error=repr(exc),
            )
            return
        self.applied += 1
        _log.info(
            "config_change_applied",
            strategy_id=strategy_id,
            symbol=symbol,
            version=version,
            origin=origin,
        )
