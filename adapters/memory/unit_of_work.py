"""In-memory :class:`application.ports.ConfigUnitOfWork` (tests, backtests, ``memory`` store).

Atomic like the real stores: one write at a time; when the block ends, the layer (or pause)
and its audit record are stored together (no other coroutine runs in between), or neither
when either store is unavailable or the layer's (or pause's) compare-and-set fails. Versions
come from one sequence per strategy (its layers and its pause switches).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.pause_store import InMemoryPauseStore
from application.ports import StoreUnavailableError, check_pause_version
from domain.config import AuditRecord, ConfigDocument, next_version
from domain.governance import PauseRecord


class _Transaction:
    def __init__(
        self,
        repository: InMemoryConfigRepository,
        strategy_id: str,
        sequence: int,
    ) -> None:
        self._repository = repository
        self._strategy_id = strategy_id
        self._sequence = sequence
        self.saves: builtins.list[tuple[ConfigDocument, int]] = []
        self.pauses: builtins.list[tuple[PauseRecord, int]] = []
        self.records: builtins.list[AuditRecord] = []

    @property
    def store_name(self) -> str:
        return self._repository.name

    async def layers(self) -> builtins.list[ConfigDocument]:
        return await self._repository.list(self._strategy_id)

    async def next_version(self) -> int:
        return max(self._sequence + 1, next_version(await self.layers()))

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        self.saves.append((document, expected_version))

    async def save_pause(self, record: PauseRecord, expected_version: int) -> None:
        self.pauses.append((record, expected_version))

    @property
    def highest_version(self) -> int:
        versions = [d.version for d, _ in self.saves] + [p.version for p, _ in self.pauses]
        return max(versions, default=0)

    async def append(self, record: AuditRecord) -> None:
        self.records.append(record)


class InMemoryConfigUnitOfWork:
    """Layer writes and audit records of an in-memory repository and audit log, together."""

    def __init__(
        self,
        repository: InMemoryConfigRepository,
        audit: InMemoryAuditLog,
        pauses: InMemoryPauseStore | None = None,
    ) -> None:
        self._repository = repository
        self._audit = audit
        self._pauses = pauses if pauses is not None else InMemoryPauseStore()
        self._sequences: dict[str, int] = {}
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[_Transaction]:
        async with self._lock:
            held = max(
                [self._sequences.get(strategy_id, 0)]
                + [p.version for p in self._pauses.records() if p.sequence_key == strategy_id]
            )
            transaction = _Transaction(self._repository, strategy_id, held)
            yield transaction
            if not (
                self._repository.available and self._audit.available and self._pauses.available
            ):
                raise StoreUnavailableError("in-memory configuration store is unavailable")
            for pause, expected_version in transaction.pauses:
                check_pause_version(pause, self._pauses.version_of(pause.key), expected_version)
            for document, expected_version in transaction.saves:
                self._repository.put(document, expected_version)
            for pause, _ in transaction.pauses:
                self._pauses.put(pause)
            for record in transaction.records:
                self._audit.add(record)
            highest = transaction.highest_version
            if highest > self._sequences.get(strategy_id, 0):
                self._sequences[strategy_id] = highest
