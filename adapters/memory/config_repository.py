"""In-memory :class:`application.ports.ConfigRepository` (tests, embedded runs).

Behaves like the real stores where it matters to callers: compare-and-set saves, datetimes
come back tz-aware UTC at millisecond precision, returned documents are copies, every call
yields to the event loop once (so concurrent callers really interleave), and setting
``available = False`` makes every call raise :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime

from application.ports import StoreUnavailableError, VersionConflictError
from domain.config import ConfigDocument

_Key = tuple[str, str | None]


def to_store_time(moment: datetime) -> datetime:
    """UTC, truncated to milliseconds: what MongoDB and ``DATETIME(3)`` keep."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: configuration times must be tz-aware")
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


class InMemoryConfigRepository:
    """Configuration layers in a dict keyed by (strategy_id, symbol)."""

    name = "memory"

    def __init__(self, documents: Iterable[ConfigDocument] = ()) -> None:
        self.available = True
        self._documents: dict[_Key, ConfigDocument] = {}
        for document in documents:
            self._documents[(document.strategy_id, document.symbol)] = self._stored(document)

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None:
        await self._enter()
        document = self._documents.get((strategy_id, symbol))
        return None if document is None else self._copy(document)

    async def list(self, strategy_id: str | None = None) -> builtins.list[ConfigDocument]:
        await self._enter()
        found = [
            self._copy(document)
            for (owner, _), document in self._documents.items()
            if strategy_id is None or owner == strategy_id
        ]
        found.sort(key=lambda d: (d.strategy_id, d.symbol is not None, d.symbol or ""))
        return found

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        await self._enter()
        self.put(document, expected_version)

    def put(self, document: ConfigDocument, expected_version: int) -> None:
        """``save`` without yielding to the event loop (for the unit of work)."""
        key = (document.strategy_id, document.symbol)
        current = self._documents.get(key)
        stored_version = 0 if current is None else current.version
        if stored_version != expected_version:
            raise VersionConflictError(
                f"{document.strategy_id}/{document.symbol or 'global'}: stored version is "
                f"{stored_version}, expected {expected_version}"
            )
        self._documents[key] = self._stored(document)

    async def ping(self) -> None:
        await self._enter()

    async def _enter(self) -> None:
        await asyncio.sleep(0)
        if not self.available:
            raise StoreUnavailableError("in-memory config repository is unavailable")

    def _stored(self, document: ConfigDocument) -> ConfigDocument:
        return dataclasses.replace(
            document,
            parameters=dict(document.parameters),
            updated_at=to_store_time(document.updated_at),
            source=self.name,
        )

    @staticmethod
    def _copy(document: ConfigDocument) -> ConfigDocument:
        return dataclasses.replace(document, parameters=dict(document.parameters))
