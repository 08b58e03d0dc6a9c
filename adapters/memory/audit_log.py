"""In-memory :class:`application.ports.AuditLog` (tests, embedded runs).

Newest first is the :class:`~domain.config.AuditPosition` order (time, strategy, version), as
in the real stores. ``available = False`` makes every call raise
:class:`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Mapping

from adapters.memory.config_repository import to_store_time
from application.ports import StoreUnavailableError
from domain.config import AuditQuery, AuditRecord
from domain.params import ParamValue


class InMemoryAuditLog:
    """An append-only list of audit records."""

    name = "memory"

    def __init__(self) -> None:
        self.available = True
        self._records: builtins.list[tuple[int, AuditRecord]] = []

    async def append(self, record: AuditRecord) -> None:
        """Store ``record`` unless the strategy already has one with its version."""
        await self._enter()
        self.add(record)

    def add(self, record: AuditRecord) -> None:
        """``append`` without yielding to the event loop (for the unit of work)."""
        if any(
            held.strategy_id == record.strategy_id and held.version == record.version
            for _, held in self._records
        ):
            return
        stored = dataclasses.replace(
            record,
            old_parameters=_copy(record.old_parameters),
            new_parameters=_copy(record.new_parameters),
            changed_at=to_store_time(record.changed_at),
        )
        self._records.append((len(self._records), stored))

    async def list(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        await self._enter()
        matching = [record for _, record in self._records if query.matches(record)]
        matching.sort(key=lambda record: record.position, reverse=True)
        return [
            dataclasses.replace(
                record,
                old_parameters=_copy(record.old_parameters),
                new_parameters=_copy(record.new_parameters),
            )
            for record in matching[: query.limit]
        ]

    async def _enter(self) -> None:
        await asyncio.sleep(0)
        if not self.available:
            raise StoreUnavailableError("in-memory audit log is unavailable")


def _copy(parameters: Mapping[str, ParamValue] | None) -> dict[str, ParamValue] | None:
    return None if parameters is None else dict(parameters)
