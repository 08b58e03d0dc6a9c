"""Published signals fanned out to live watchers (the console's server-sent events).

:class:`SignalBroadcast` hands every signal the service has published to each current
subscriber. A subscriber has a bounded queue: a watcher that does not keep up loses its
oldest signals (counted in :attr:`SignalSubscription.dropped`), never blocks the run loop and
never makes it hold memory. :class:`BroadcastingSignalSink` is the sink decorator that feeds
the broadcast once the real sink has accepted the signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from application.ports import SignalSink
from domain.signal import Signal

DEFAULT_SUBSCRIBER_QUEUE = 256


class SignalSubscription:
    """One watcher's queue of signals; iterate it, and :meth:`close` it when done."""

    def __init__(self, broadcast: SignalBroadcast, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._broadcast = broadcast
        self._queue: asyncio.Queue[Signal] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, signal: Signal) -> None:
        """Queue ``signal``; when full, drop the oldest queued one (counted)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(signal)

    async def next(self, timeout: float) -> Signal | None:  # noqa: ASYNC109
        """The next signal, or None when none arrived within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._broadcast.unsubscribe(self)


class SignalBroadcast:
    """Fan-out of published signals to the current subscribers (see the module doc)."""

    def __init__(self) -> None:
        self._subscribers: list[SignalSubscription] = []
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, maxsize: int = DEFAULT_SUBSCRIBER_QUEUE) -> SignalSubscription:
        subscription = SignalSubscription(self, maxsize)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: SignalSubscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, signal: Signal) -> None:
        """Hand ``signal`` to every subscriber (never blocks)."""
        self.published += 1
        for subscription in self._subscribers:
            subscription.offer(signal)


class BroadcastingSignalSink:
    """A :class:`SignalSink` that publishes to ``inner`` and then to ``broadcast``."""

    def __init__(self, inner: SignalSink, broadcast: SignalBroadcast) -> None:
        self.inner = inner
        self.broadcast = broadcast

    async def publish(self, signal: Signal, trace_context: Mapping[str, str] | None = None) -> None:
        await self.inner.publish(signal, trace_context)
        self.broadcast.publish(signal)

    async def flush(self) -> None:
        await self.inner.flush()
