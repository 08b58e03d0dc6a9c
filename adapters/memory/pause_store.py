"""In-memory :class:`application.ports.PauseStore` (tests, embedded runs, ``memory`` store).

Like the real stores: datetimes come back UTC at millisecond precision, every call yields to
the event loop once, and ``available = False`` makes every call raise
:class:`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses

from adapters.memory.config_repository import to_store_time
from application.ports import StoreUnavailableError
from domain.governance import PauseRecord


class InMemoryPauseStore:
    """Pause records in a dict keyed by pause key."""

    name = "memory"

    def __init__(self) -> None:
        self.available = True
        self._records: dict[str, PauseRecord] = {}

    async def list(self) -> builtins.list[PauseRecord]:
        await self._enter()
        return [self._records[key] for key in sorted(self._records)]

    async def apply(self, record: PauseRecord) -> bool:
        await self._enter()
        return self.put(record)

    def records(self) -> builtins.list[PauseRecord]:
        """``list`` without yielding to the event loop (for the unit of work)."""
        return list(self._records.values())

    def version_of(self, key: str) -> int:
        held = self._records.get(key)
        return 0 if held is None else held.version

    def put(self, record: PauseRecord) -> bool:
        """``apply`` without yielding to the event loop (for the unit of work)."""
        held = self._records.get(record.key)
        if held is not None and held.version >= record.version:
            return False
        self._records[record.key] = dataclasses.replace(
            record, updated_at=to_store_time(record.updated_at), source=self.name
        )
        return True

    async def _enter(self) -> None:
        await asyncio.sleep(0)
        if not self.available:
            raise StoreUnavailableError("in-memory pause store is unavailable")
