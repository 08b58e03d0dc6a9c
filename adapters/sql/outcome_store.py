"""Published signals and their outcomes in SQL (``signal_outcomes``; MySQL/MariaDB, SQLite).

One row per signal id: the record as JSON text (:mod:`adapters.wire.outcomes`) and the
columns queries filter on. ``save`` is one upsert statement per batch, keeping the row's
first ``recorded_at_ms``. The schema
is migration ``0004_signal_outcomes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, delete, select
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from adapters.sql.config_store import _SqlStore
from adapters.sql.migrations import is_mysql
from adapters.wire.outcomes import outcome_from_document, outcome_to_document
from application.ports import OutcomeSelection
from domain.live_outcomes import OutcomeRecord

OUTCOME_TABLE: Final = Table(
    "signal_outcomes",
    MetaData(),
    Column("id", BigInteger(), primary_key=True, autoincrement=True),
    Column("signal_id", String(64), nullable=False, unique=True),
    Column("strategy_id", String(100), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("config_version", BigInteger(), nullable=False),
    Column("signal_time_ms", BigInteger(), nullable=False),
    Column("recorded_at_ms", BigInteger(), nullable=False),
    Column("document", Text(), nullable=False),
)


_UPDATED: Final = ("strategy_id", "symbol", "config_version", "signal_time_ms", "document")


def _row_values(record: OutcomeRecord) -> dict[str, Any]:
    return {
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "config_version": record.config_version,
        "signal_time_ms": record.signal_time_ms,
        "document": orjson.dumps(outcome_to_document(record)).decode(),
    }


class SqlOutcomeStore(_SqlStore):
    """:class:`~application.ports.OutcomeStore` on SQL (``name``: ``mysql``/``sqlite``)."""

    async def save(self, records: Sequence[OutcomeRecord]) -> None:
        """One statement for the batch: ``INSERT ... ON DUPLICATE KEY UPDATE`` (MySQL) or
        ``INSERT ... ON CONFLICT (signal_id) DO UPDATE`` (SQLite); ``recorded_at_ms`` is
        written on insert only."""
        if not records:
            return
        newest = {record.signal_id: record for record in records}  # one row per id
        rows = [
            {"signal_id": r.signal_id, "recorded_at_ms": r.recorded_at_ms, **_row_values(r)}
            for r in newest.values()
        ]
        t = OUTCOME_TABLE
        statement: Any
        if is_mysql(self._engine.dialect.name):
            mysql_insert = mysql_dialect.insert(t)
            statement = mysql_insert.on_duplicate_key_update(
                {name: mysql_insert.inserted[name] for name in _UPDATED}
            )
        else:
            sqlite_insert = sqlite_dialect.insert(t)
            statement = sqlite_insert.on_conflict_do_update(
                index_elements=[t.c.signal_id],
                set_={name: sqlite_insert.excluded[name] for name in _UPDATED},
            )
        async with self._guarded(), self._engine.begin() as conn:
            await conn.execute(statement, rows)

    async def _select(self, query: Any, limit: int) -> list[OutcomeRecord]:
        if limit <= 0:
            return []
        t = OUTCOME_TABLE
        query = query.order_by(t.c.signal_time_ms.desc(), t.c.signal_id.desc()).limit(limit)
        async with self._guarded(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [self._record(row.document, row.recorded_at_ms) for row in rows]

    @staticmethod
    def _record(document: str, recorded_at_ms: int) -> OutcomeRecord:
        raw = orjson.loads(document)
        raw["recorded_at_ms"] = int(recorded_at_ms)
        return outcome_from_document(raw)

    async def recent(
        self, strategy_id: str | None, symbol: str | None, limit: int
    ) -> list[OutcomeRecord]:
        t = OUTCOME_TABLE
        query = select(t.c.document, t.c.recorded_at_ms)
        if strategy_id is not None:
            query = query.where(t.c.strategy_id == strategy_id)
        if symbol is not None:
            query = query.where(t.c.symbol == symbol)
        return await self._select(query, limit)

    async def query(self, selection: OutcomeSelection, limit: int) -> list[OutcomeRecord]:
        t = OUTCOME_TABLE
        query = select(t.c.document, t.c.recorded_at_ms).where(
            t.c.strategy_id == selection.strategy_id
        )
        if selection.symbol is not None:
            query = query.where(t.c.symbol == selection.symbol)
        if selection.since_ms is not None:
            query = query.where(t.c.signal_time_ms >= selection.since_ms)
        if selection.config_version is not None:
            query = query.where(t.c.config_version == selection.config_version)
        return await self._select(query, limit)

    async def purge(self, recorded_before_ms: int) -> int:
        t = OUTCOME_TABLE
        async with self._guarded(), self._engine.begin() as conn:
            result = await conn.execute(delete(t).where(t.c.recorded_at_ms < recorded_before_ms))
        return int(result.rowcount or 0)
