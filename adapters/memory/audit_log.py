"""In-memory :class:`application.ports.AuditLog` (tests, embedded runs).

Newest first means by ``changed_at``, ties broken by append order (later first), as the real
stores do with their insertion ids. ``available = False`` makes every call raise
:class:`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Mapping

from adapters.memory.config_repository import to_store_time
from application.ports import StoreUnavailableError
from domain.config import AuditRecord
from domain.params import ParamValue


class InMemoryAuditLog:
    """An append-only list of audit records."""

    name = "memory"

    def __init__(self) -> None:
        self.available = True
        self._records: builtins.list[tuple[int, AuditRecord]] = []

    async def append(self, record: AuditRecord) -> None:
        await self._enter()
        stored = dataclasses.replace(
            record,
            old_parameters=_copy(record.old_parameters),
            new_parameters=_copy(record.new_parameters),
            changed_at=to_store_time(record.changed_at),
        )
        self._records.append((len(self._records), stored))

    async def list(
        self, strategy_id: str, symbol: str | None = None, limit: int = 100
    ) -> builtins.list[AuditRecord]:
        await self._enter()
        matching = [
            (sequence, record)
            for sequence, record in self._records
            if record.strategy_id == strategy_id and (symbol is None or record.symbol == symbol)
        ]
        matching.sort(key=lambda item: (item[1].changed_at, item[0]), reverse=True)
        return [
            dataclasses.replace(
                record,
                old_parameters=_copy(record.old_parameters),
                new_parameters=_copy(record.new_parameters),
            )
            for _, record in matching[: max(limit, 0)]
        ]

    async def _enter(self) -> None:
        await asyncio.sleep(0)
        if not self.available:
            raise StoreUnavailableError("in-memory audit log is unavailable")


def _copy(parameters: Mapping[str, ParamValue] | None) -> dict[str, ParamValue] | None:
    return None if parameters is None else dict(parameters)
