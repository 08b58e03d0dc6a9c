"""The subscription lifecycle every NATS input shares (market feed, partition feed, partition
router, config-change listener).

:class:`NatsSubscriber`: ``start()`` never blocks — it subscribes at once if NATS is
connected, else as soon as the connection first comes up (nats-py re-subscribes by itself
after a reconnect); a failed attempt is logged and retried at the next connection or
reconnection event, or after ``retry_seconds`` while the connection stays up. A subclass's
``_subscribe()`` is therefore run again after a partial failure and keeps what it made.
``is_subscribed`` / ``wait_subscribed()`` tell whether the subscriptions are in place;
:meth:`NatsSubscriber._drain` drains its subscriptions and
:meth:`NatsSubscriber._stop_listening` ends the lifecycle. A subclass says what to subscribe
in ``_subscribe()``. :func:`drain_all` and :func:`unsubscribe_all` end subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

import structlog
from nats.aio.subscription import Subscription

from adapters.nats.connection import ConnectionEvent, NatsConnection, wait_for_event

_log = structlog.get_logger(__name__)


class NatsSubscriber:
    """Base of a NATS input (module doc). ``log_name`` prefixes its log events."""

    log_name = "nats_input"
    retry_seconds = 1.0

    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        self._subscribed = asyncio.Event()
        self._subscribe_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._resubscribe: asyncio.Task[None] | None = None
        self.subscribe_failures = 0

    @property
    def is_subscribed(self) -> bool:
        return self._subscribed.is_set() and not self._closed

    async def wait_subscribed(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the subscriptions are in place; False if ``timeout`` ran out."""
        return await wait_for_event(self._subscribed, timeout)

    async def start(self) -> None:
        """Subscribe now if connected, else on the first connection. Never blocks."""
        if self._started:
            return
        self._started = True
        self._connection.add_listener(self._on_connection_event)
        if self._connection.is_connected:
            await self._subscribe_once()

    async def _on_connection_event(self, event: ConnectionEvent) -> None:
        if event in (ConnectionEvent.CONNECTED, ConnectionEvent.RECONNECTED):
            await self._subscribe_once()

    async def _subscribe_once(self) -> None:
        async with self._subscribe_lock:
            if self._closed or self._subscribed.is_set():
                return
            try:
                subscribed = await self._subscribe()
            except Exception as exc:
                self.subscribe_failures += 1
                _log.warning(
                    f"{self.log_name}_subscribe_failed",
                    error=repr(exc),
                    retry_in=self.retry_seconds,
                )
                self._retry_later()
                return
            if subscribed:
                self._subscribed.set()

    def _retry_later(self) -> None:
        """Try again in ``retry_seconds`` if the connection is up then (a reconnection
        retries on its own event), until subscribed or closed."""

        async def retry() -> None:
            await asyncio.sleep(self.retry_seconds)
            if self._connection.is_connected:
                await self._subscribe_once()

        if self._resubscribe is None or self._resubscribe.done():
            self._resubscribe = asyncio.create_task(retry(), name=f"{self.log_name}-resubscribe")

    async def _subscribe(self) -> bool:
        """Create the subscriptions (raise to be retried on the next connection event);
        True if they are in place now, False if the subclass sets ``_subscribed`` later."""
        raise NotImplementedError

    async def _drain(
        self,
        subs: list[Subscription],
        timeout: float,  # noqa: ASYNC109
        **context: object,
    ) -> None:
        """Drain ``subs`` within ``timeout`` (see :func:`drain_all`), or unsubscribe them when
        not connected; a timeout (with ``context``) and the drain errors are logged."""
        if not subs or not self._connection.is_connected:
            await unsubscribe_all(subs)
            return
        try:
            errors = await drain_all(subs, timeout)
        except TimeoutError:
            _log.error(f"{self.log_name}_drain_timeout", timeout=timeout, **context)
            return
        for error in errors:
            _log.warning(f"{self.log_name}_drain_error", error=repr(error))

    def _stop_listening(self) -> None:
        """End the lifecycle: no more subscribing, not subscribed any more."""
        self._closed = True
        self._subscribed.clear()
        self._connection.remove_listener(self._on_connection_event)
        if self._resubscribe is not None:
            self._resubscribe.cancel()


async def drain_all(subs: Iterable[Subscription], timeout: float) -> list[BaseException]:  # noqa: ASYNC109
    """Drain ``subs`` (stop interest, let what was received be handled) within ``timeout``;
    the errors of the drains that failed. On timeout they are unsubscribed (what nats-py
    still holds is discarded) and ``TimeoutError`` is raised."""
    subs = list(subs)

    async def drain(sub: Subscription) -> None:
        drain_sub: Callable[[], Awaitable[None]] = sub.drain  # nats-py leaves it unannotated
        await drain_sub()

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(drain(sub) for sub in subs), return_exceptions=True), timeout
        )
    except TimeoutError:
        await unsubscribe_all(subs)
        raise
    return [result for result in results if isinstance(result, BaseException)]


async def unsubscribe_all(subs: Iterable[Subscription | None]) -> None:
    """Unsubscribe each of ``subs`` (errors ignored: the connection may be gone)."""
    for sub in subs:
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
