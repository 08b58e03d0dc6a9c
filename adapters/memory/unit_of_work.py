"""In-memory :class:`application.ports.ConfigUnitOfWork` (tests, backtests, ``memory`` store).

Atomic like the real stores: one write at a time; when the block ends, the layer and its
audit record are stored together (no other coroutine runs in between), or neither when
either store is unavailable or the layer's compare-and-set fails.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from application.ports import StoreUnavailableError
from domain.config import AuditRecord, ConfigDocument, next_version


class _Transaction:
    def __init__(self, repository: InMemoryConfigRepository, strategy_id: str) -> None:
        self._repository = repository
        self._strategy_id = strategy_id
        self.saves: builtins.list[tuple[ConfigDocument, int]] = []
        self.records: builtins.list[AuditRecord] = []

    @property
    def store_name(self) -> str:
        return self._repository.name

    async def layers(self) -> builtins.list[ConfigDocument]:
        return await self._repository.list(self._strategy_id)

    async def next_version(self) -> int:
        return next_version(await self.layers())

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        self.saves.append((document, expected_version))

    async def append(self, record: AuditRecord) -> None:
        self.records.append(record)


class InMemoryConfigUnitOfWork:
    """Layer writes and audit records of an in-memory repository and audit log, together."""

    def __init__(self, repository: InMemoryConfigRepository, audit: InMemoryAuditLog) -> None:
        self._repository = repository
        self._audit = audit
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[_Transaction]:
        async with self._lock:
            transaction = _Transaction(self._repository, strategy_id)
            yield transaction
            if not (self._repository.available and self._audit.available):
                raise StoreUnavailableError("in-memory configuration store is unavailable")
            for document, expected_version in transaction.saves:
                self._repository.put(document, expected_version)
            for record in transaction.records:
                self._audit.add(record)
