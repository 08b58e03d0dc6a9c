"""Configuration-change broadcast between replicas over NATS (``strategies.config.changed``).

A write through the admin API of one replica calls :class:`NatsConfigChangeNotifier` which
publishes ``{"strategy_id", "symbol", "version", "origin"}``; every replica (no queue group)
runs a :class:`NatsConfigChangeListener` that drops its own messages (same ``origin``) and calls
``on_change(strategy_id, symbol, version)`` for the others, typically to invalidate its config
cache. The broadcast is a latency optimisation over the cache TTL: failing to publish is logged
and counted, never raised to the writer (the write itself already succeeded).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import orjson
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.nats.connection import NatsConnection, RateLimiter
from adapters.nats.subscription import NatsSubscriber, unsubscribe_all

_log = structlog.get_logger(__name__)

CONFIG_CHANGED_SUBJECT = "strategies.config.changed"

OnConfigChange = Callable[[str, str | None, int], Awaitable[bool]]
"""``(strategy_id, symbol, version) -> reloaded``: False when the change was not news."""


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


class NatsConfigChangeListener(NatsSubscriber):
    """Applies other replicas' configuration changes (every replica gets every message)."""

    log_name = "config_listener"

    def __init__(
        self,
        connection: NatsConnection,
        on_change: OnConfigChange,
        instance_id: str,
        subject: str = CONFIG_CHANGED_SUBJECT,
        *,
        log_interval: float = 10.0,
    ) -> None:
        super().__init__(connection)
        self._on_change = on_change
        self.instance_id = instance_id
        self.subject = subject
        self._sub: Subscription | None = None
        self._limiter = RateLimiter(interval=log_interval)

        self.received = 0
        self.applied = 0
        self.ignored_stale = 0
        self.ignored_own = 0
        self.invalid = 0
        self.handler_errors = 0
        self.invalid_by_reason: Counter[str] = Counter()

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "applied": self.applied,
            "ignored_stale": self.ignored_stale,
            "ignored_own": self.ignored_own,
            "invalid": self.invalid,
            "handler_errors": self.handler_errors,
        }

    async def close(self) -> None:
        self._stop_listening()
        sub, self._sub = self._sub, None
        await unsubscribe_all([sub])

    async def _subscribe(self) -> bool:
        nc = self._connection.client
        if self._sub is None:  # kept when the round trip below failed: not made twice
            # No queue group: every replica must receive every change.
            self._sub = await nc.subscribe(self.subject, cb=self._handle)
        await nc.flush()
        return True

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
        log = _log.bind(strategy_id=strategy_id, symbol=symbol, version=version)
        try:
            reloaded = await self._on_change(strategy_id, symbol, version)
        except Exception as exc:
            self.handler_errors += 1
            log.error("config_change_handler_failed", error=repr(exc))
            return
        if not reloaded:
            self.ignored_stale += 1
            return
        self.applied += 1
        log.info("config_change_applied", origin=origin)
