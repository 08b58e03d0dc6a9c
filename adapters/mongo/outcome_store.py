"""Published signals and their outcomes in MongoDB (collection ``signal_outcomes``).

One document per signal id (:mod:`adapters.wire.outcomes`), replaced by every newer
snapshot (one bulk write of upserts per batch) while the first ``recorded_at_ms`` is kept.
Indexes: unique ``signal_id``; ``(strategy_id, signal_time_ms)``; ``recorded_at_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from adapters.mongo.config_store import DEFAULT_DATABASE, MongoDocument, _guard
from adapters.wire.outcomes import outcome_from_document, outcome_to_document
from application.ports import OutcomeSelection
from domain.live_outcomes import OutcomeRecord

OUTCOME_COLLECTION: Final = "signal_outcomes"


class MongoOutcomeStore:
    """:class:`~application.ports.OutcomeStore` on MongoDB (``name = "mongodb"``)."""

    name: str = "mongodb"

    def __init__(
        self, client: AsyncMongoClient[MongoDocument], database: str = DEFAULT_DATABASE
    ) -> None:
        self._client = client
        self._outcomes: AsyncCollection[MongoDocument] = client[database][OUTCOME_COLLECTION]

    async def ensure_indexes(self) -> None:
        await _guard(
            self._outcomes.create_index(
                [("signal_id", ASCENDING)], unique=True, name="uq_signal_id"
            )
        )
        await _guard(
            self._outcomes.create_index(
                [("strategy_id", ASCENDING), ("signal_time_ms", DESCENDING)],
                name="ix_strategy_time",
            )
        )
        await _guard(
            self._outcomes.create_index([("recorded_at_ms", ASCENDING)], name="ix_recorded")
        )

    async def save(self, records: Sequence[OutcomeRecord]) -> None:
        """One unordered bulk write of upserts for the batch."""
        if not records:
            return
        operations = []
        for record in {r.signal_id: r for r in records}.values():
            document: dict[str, Any] = dict(outcome_to_document(record))
            first = document.pop("recorded_at_ms")
            operations.append(
                UpdateOne(
                    {"signal_id": record.signal_id},
                    {"$set": document, "$setOnInsert": {"recorded_at_ms": first}},
                    upsert=True,
                )
            )
        await _guard(self._outcomes.bulk_write(operations, ordered=False))

    async def _find(self, query: MongoDocument, limit: int) -> list[OutcomeRecord]:
        if limit <= 0:
            return []
        cursor = (
            self._outcomes.find(query, {"_id": 0})
            .sort([("signal_time_ms", DESCENDING), ("signal_id", DESCENDING)])
            .limit(limit)
        )
        return [outcome_from_document(raw) for raw in await _guard(cursor.to_list())]

    async def recent(
        self, strategy_id: str | None, symbol: str | None, limit: int
    ) -> list[OutcomeRecord]:
        query: MongoDocument = {}
        if strategy_id is not None:
            query["strategy_id"] = strategy_id
        if symbol is not None:
            query["symbol"] = symbol
        return await self._find(query, limit)

    async def query(self, selection: OutcomeSelection, limit: int) -> list[OutcomeRecord]:
        query: MongoDocument = {"strategy_id": selection.strategy_id}
        if selection.symbol is not None:
            query["symbol"] = selection.symbol
        if selection.since_ms is not None:
            query["signal_time_ms"] = {"$gte": selection.since_ms}
        if selection.config_version is not None:
            query["config_version"] = selection.config_version
        return await self._find(query, limit)

    async def purge(self, recorded_before_ms: int) -> int:
        result = await _guard(
            self._outcomes.delete_many({"recorded_at_ms": {"$lt": recorded_before_ms}})
        )
        return int(result.deleted_count)

    async def ping(self) -> None:
        await _guard(self._client.admin.command("ping"))
