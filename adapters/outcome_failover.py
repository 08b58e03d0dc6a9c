"""Outcome records on a primary store (MongoDB) mirrored to a fallback (MySQL), never lost
while one of them answers — the same rules as the configuration writes (ADR 7):

- **Writes** go to the primary and are mirrored to the fallback; a failed mirror waits in a
  bounded queue (one entry per signal id, the newest snapshot) and is retried on the next
  operation. With the primary down, writes go to the fallback and wait, the same way, to be
  copied to the primary once it answers. Only when both fail does ``save`` raise
  :class:`~application.ports.StoreUnavailableError` (the caller keeps the records).
- **Reads** come from the primary unless it misses records the fallback acknowledged (then
  from the fallback), and from the fallback when the primary fails.
- Records are idempotent upserts, so "reconciliation" is replaying the queued records (on
  the next ``save``, serialised with it); a queue that overflows drops its oldest entry,
  counted in ``dropped``.
- A failing store is skipped for ``retry_interval_s`` (:class:`adapters.failover.StoreState`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from adapters.failover import DEFAULT_RETRY_INTERVAL_S, StoreState
from application.ports import OutcomeSelection, OutcomeStore, StoreUnavailableError
from domain.live_outcomes import OutcomeRecord

T = TypeVar("T")
DEFAULT_MAX_QUEUED = 50_000


class FailoverOutcomeStore:
    """:class:`~application.ports.OutcomeStore` over a primary and a fallback store."""

    def __init__(
        self,
        primary: OutcomeStore,
        fallback: OutcomeStore,
        *,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        max_queued: int = DEFAULT_MAX_QUEUED,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.primary_state = StoreState("primary", primary.name, retry_interval_s, monotonic)
        self.fallback_state = StoreState("fallback", fallback.name, retry_interval_s, monotonic)
        self._max_queued = max_queued
        self._for_primary: OrderedDict[str, OutcomeRecord] = OrderedDict()
        self._for_fallback: OrderedDict[str, OutcomeRecord] = OrderedDict()
        self.dropped = 0
        # Serialises writes and replays: two concurrent upserts of the same ids deadlock
        # in MySQL (gap locks) and would race the queues.
        self._lock = asyncio.Lock()

    @property
    def queued(self) -> dict[str, int]:
        return {"for_primary": len(self._for_primary), "for_fallback": len(self._for_fallback)}

    def health(self) -> dict[str, Any]:
        return {
            "primary": self.primary_state.as_dict(),
            "fallback": self.fallback_state.as_dict(),
            **self.queued,
            "dropped": self.dropped,
        }

    def _queue(self, queue: OrderedDict[str, OutcomeRecord], records: Sequence[Any]) -> None:
        for record in records:
            queue.pop(record.signal_id, None)
            queue[record.signal_id] = record
        while len(queue) > self._max_queued:
            queue.popitem(last=False)
            self.dropped += 1

    async def _replay(
        self, queue: OrderedDict[str, OutcomeRecord], store: OutcomeStore, state: StoreState
    ) -> None:
        """Send what a store missed, once it is worth trying; never raises."""
        if not queue or not state.worth_trying():
            return
        batch = list(queue.values())
        try:
            await state.call(store.save(batch))
        except StoreUnavailableError:
            return
        for record in batch:
            if queue.get(record.signal_id) is record:
                del queue[record.signal_id]

    async def _catch_up(self) -> None:
        await self._replay(self._for_primary, self.primary, self.primary_state)
        await self._replay(self._for_fallback, self.fallback, self.fallback_state)

    async def save(self, records: Sequence[OutcomeRecord]) -> None:
        if not records:
            return
        async with self._lock:
            await self._save_locked(records)

    async def _save_locked(self, records: Sequence[OutcomeRecord]) -> None:
        await self._catch_up()
        if not self._for_primary and self.primary_state.worth_trying():
            try:
                await self.primary_state.call(self.primary.save(records))
            except StoreUnavailableError:
                pass
            else:
                self.name = self.primary.name
                self._queue(self._for_fallback, records)
                await self._replay(self._for_fallback, self.fallback, self.fallback_state)
                return
        try:
            await self.fallback_state.call(self.fallback.save(records))
        except StoreUnavailableError:
            raise StoreUnavailableError(
                "outcomes: both stores are unavailable "
                f"(primary {self.primary.name}: {self.primary_state.last_error}; "
                f"fallback {self.fallback.name}: {self.fallback_state.last_error})"
            ) from None
        self.name = self.fallback.name
        self._queue(self._for_primary, records)

    async def _read(self, operation: Callable[[OutcomeStore], Awaitable[T]]) -> T:
        if not self._for_primary and self.primary_state.worth_trying():
            try:
                result = await self.primary_state.call(operation(self.primary))
            except StoreUnavailableError:
                pass
            else:
                self.name = self.primary.name
                return result
        try:
            result = await self.fallback_state.call(operation(self.fallback))
        except StoreUnavailableError:
            raise StoreUnavailableError("outcomes: both stores are unavailable") from None
        self.name = self.fallback.name
        return result

    async def recent(
        self, strategy_id: str | None, symbol: str | None, limit: int
    ) -> list[OutcomeRecord]:
        return await self._read(lambda store: store.recent(strategy_id, symbol, limit))

    async def query(self, selection: OutcomeSelection, limit: int) -> list[OutcomeRecord]:
        return await self._read(lambda store: store.query(selection, limit))

    async def purge(self, recorded_before_ms: int) -> int:
        """Purge both stores (each as far as it answers); the larger count is returned."""
        purged = 0
        answered = False
        for store, state in (
            (self.primary, self.primary_state),
            (self.fallback, self.fallback_state),
        ):
            try:
                purged = max(purged, await state.call(store.purge(recorded_before_ms)))
                answered = True
            except StoreUnavailableError:
                continue
        if not answered:
            raise StoreUnavailableError("outcomes: both stores are unavailable")
        return purged

    async def ping(self) -> None:
        await self._read(lambda store: store.ping())
